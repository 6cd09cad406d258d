#include "net/tls.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

namespace meridian::net {

std::string TlsErrorText(SSL* ssl) {
  std::string text;
  if (ssl) {
    const long verify = SSL_get_verify_result(ssl);
    if (verify != X509_V_OK)
      text = fmt::format("certificate verify failed: {}", X509_verify_cert_error_string(verify));
  }
  unsigned long e = 0;
  unsigned long last = 0;
  while ((e = ERR_get_error()) != 0) last = e;
  if (text.empty() && last != 0) {
    char buf[256];
    ERR_error_string_n(last, buf, sizeof buf);
    text = buf;
  }
  if (text.empty()) text = "TLS handshake failed";
  return text;
}

Result<std::unique_ptr<TlsContext>> TlsContext::Client(const TlsClientOptions& options) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
  if (!ctx) return MakeError(ErrorCode::kTls, "cannot create a TLS context: " + TlsErrorText());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  if (!options.insecure) {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, nullptr);
    const int ok = options.ca_file.empty()
                       ? SSL_CTX_set_default_verify_paths(ctx)
                       : SSL_CTX_load_verify_locations(ctx, options.ca_file.c_str(), nullptr);
    if (ok != 1) {
      const std::string why = TlsErrorText();
      SSL_CTX_free(ctx);
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("cannot load CA certificates{}: {}",
                                   options.ca_file.empty() ? "" : " from '" + options.ca_file + "'", why));
    }
  } else {
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, nullptr);
  }
  return std::unique_ptr<TlsContext>(new TlsContext(ctx, !options.insecure));
}

Result<std::unique_ptr<TlsContext>> TlsContext::Server(const std::string& cert_file,
                                                       const std::string& key_file) {
  SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
  if (!ctx) return MakeError(ErrorCode::kTls, "cannot create a TLS context: " + TlsErrorText());
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  if (SSL_CTX_use_certificate_chain_file(ctx, cert_file.c_str()) != 1) {
    const std::string why = TlsErrorText();
    SSL_CTX_free(ctx);
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("cannot load certificate '{}': {}", cert_file, why));
  }
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1 ||
      SSL_CTX_check_private_key(ctx) != 1) {
    const std::string why = TlsErrorText();
    SSL_CTX_free(ctx);
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("cannot load private key '{}': {}", key_file, why));
  }
  return std::unique_ptr<TlsContext>(new TlsContext(ctx, false));
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

SSL* TlsContext::NewClient(int fd, const std::string& host) const {
  SSL* ssl = SSL_new(ctx_);
  if (!ssl) return nullptr;
  SSL_set_fd(ssl, fd);
  in6_addr probe{};
  const bool ip_literal =
      inet_pton(AF_INET, host.c_str(), &probe) == 1 || inet_pton(AF_INET6, host.c_str(), &probe) == 1;
  if (!ip_literal) SSL_set_tlsext_host_name(ssl, host.c_str());  // SNI carries names, never addresses
  if (verify_) {
    if (ip_literal) {
      X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host.c_str());
    } else {
      SSL_set1_host(ssl, host.c_str());
    }
  }
  SSL_set_connect_state(ssl);
  return ssl;
}

}  // namespace meridian::net
