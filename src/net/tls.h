#pragma once
// OpenSSL contexts for the load client and the built-in target. Connections hold an SSL* on a non-blocking
// fd.

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "core/result.h"

namespace meridian::net {

struct TlsClientOptions {
  bool insecure = false;  // skip certificate and host name verification
  std::string ca_file;    // PEM bundle to trust instead of the system store
};

class TlsContext {
 public:
  static Result<std::unique_ptr<TlsContext>> Client(const TlsClientOptions& options);
  static Result<std::unique_ptr<TlsContext>> Server(const std::string& cert_file,
                                                    const std::string& key_file);
  ~TlsContext();
  SSL_CTX* get() const { return ctx_; }
  bool verify() const { return verify_; }

  // A client SSL* for `fd` with SNI and (unless insecure) host name verification set for `host`.
  SSL* NewClient(int fd, const std::string& host) const;

 private:
  explicit TlsContext(SSL_CTX* ctx, bool verify) : ctx_(ctx), verify_(verify) {}
  SSL_CTX* ctx_;
  bool verify_;
};

// The newest OpenSSL error queue entry (and the verify result when relevant) as one line; clears the queue.
std::string TlsErrorText(SSL* ssl = nullptr);

}  // namespace meridian::net
