// Tokens and server.yaml.

#include <fcntl.h>
#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "config/reader.h"
#include "control/control.h"
#include "core/duration.h"
#include "core/files.h"
#include "core/id.h"

namespace meridian::control {
namespace {
constexpr const char* kScopes[] = {"runs:read", "runs:write", "agent", "env:allocate", "env:admin"};
}  // namespace

bool ValidScope(const std::string& scope) {
  for (const char* s : kScopes) {
    if (scope == s) return true;
  }
  return false;
}

std::string HashToken(const std::string& token) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(token.data(), token.size(), md, &len, EVP_sha256(), nullptr);
  return Hex(md, len);
}

std::string KeyedHash(const std::string& key, const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), md, &len);
  return Hex(md, len);
}

Result<std::string> LoadOrCreateServerKey(const std::string& dir) {
  if (auto d = MakePrivateDirectories(dir); !d.ok()) return d.error();
  const std::string path = (std::filesystem::path(dir.empty() ? "." : dir) / "server.key").string();
  std::ifstream in(path, std::ios::binary);
  if (in) {
    std::string key((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (key.size() != 32) {
      return MakeError(ErrorCode::kIo,
                       fmt::format("{}: not a server key (32 bytes); remove it to make a new one (every "
                                   "agent registers again)",
                                   path));
    }
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) ::chmod(path.c_str(), 0600);
    return key;
  }
  std::string key(32, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), 32) != 1) std::abort();
  if (auto w = WritePrivateFile(path, key); !w.ok()) return w.error();
  return key;
}

std::string NewToken() { return RandomHex(32); }

Result<ServerConfig> LoadServerConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}: cannot read the server config", path));
  std::stringstream ss;
  ss << in.rdbuf();
  config::Reader reader(path);
  try {
    const YAML::Node root = config::LoadYaml(reader, ss.str());
    config::Fields f(reader, root, "");
    ServerConfig c;
    c.listen = f.String("listen", c.listen);
    c.store = f.String("store", c.store);
    c.data_dir = f.String("data_dir", "");
    c.registry = f.String("registry", "");
    if (!c.registry.empty() && c.registry[0] != '/') {  // relative to server.yaml
      const auto dir = std::filesystem::path(path).parent_path();
      if (!dir.empty()) c.registry = (dir / c.registry).string();
    }
    c.requests_per_second = f.Number("requests_per_second", c.requests_per_second);
    if (!(c.requests_per_second > 0)) f.Fail("requests_per_second", "must be greater than 0");
    if (f.Has("max_body")) {
      auto size = ParseByteSize(f.String("max_body", ""));
      if (!size.ok() || *size <= 0) f.Fail("max_body", "is not a byte size (e.g. 8MiB)");
      c.max_body_bytes = static_cast<size_t>(*size);
    } else {
      (void)f.Get("max_body");
    }
    c.max_headers = f.Uint("max_headers", c.max_headers, 10, 10'000);
    c.long_poll_ns = f.Duration("long_poll", c.long_poll_ns, false);
    c.max_connections = f.Uint("max_connections", c.max_connections, 16, 1'000'000);
    if (f.Has("max_buffered")) {
      auto size = ParseByteSize(f.String("max_buffered", ""));
      if (!size.ok() || *size < 1024 * 1024)
        f.Fail("max_buffered", "is not a byte size of at least 1MiB (e.g. 256MiB)");
      c.max_buffered_bytes = static_cast<size_t>(*size);
    }
    if (c.max_buffered_bytes < c.max_body_bytes) {
      f.Fail(f.Has("max_buffered") ? "max_buffered" : "max_body", "max_buffered must be at least max_body");
    }
    c.request_timeout_ns = f.Duration("request_timeout", c.request_timeout_ns, false);
    c.max_active_runs_per_token =
        static_cast<uint32_t>(f.Uint("max_active_runs_per_token", c.max_active_runs_per_token, 1, 100'000));
    c.max_waiting_allocations_per_token = static_cast<uint32_t>(
        f.Uint("max_waiting_allocations_per_token", c.max_waiting_allocations_per_token, 1, 1'000'000));
    c.max_ready_timeout_ns = f.Duration("max_ready_timeout", c.max_ready_timeout_ns, false);
    c.max_agents = static_cast<uint32_t>(f.Uint("max_agents", c.max_agents, 1, 1'000'000));
    c.forget_agents_after_ns = f.Duration("forget_agents_after", c.forget_agents_after_ns, false);
    if (YAML::Node r = f.Get("retention")) {
      config::Fields rf(reader, r, "retention");
      // 0 keeps forever.
      c.retention.runs_ns = rf.Duration("runs", c.retention.runs_ns);
      c.retention.allocations_ns = rf.Duration("allocations", c.retention.allocations_ns);
      c.retention.audit_ns = rf.Duration("audit", c.retention.audit_ns);
      rf.Done();
    }
    YAML::Node tokens = f.Get("tokens");
    if (!tokens || !tokens.IsSequence() || tokens.size() == 0) {
      f.Fail("tokens",
             "must list at least one token (every route needs one): - { name, scopes, sha256 | "
             "token_file | token_env }");
    }
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string at = fmt::format("tokens[{}]", i);
      config::Fields t(reader, tokens[i], at);
      TokenSpec spec;
      spec.name = t.String("name", "");
      if (spec.name.empty()) t.Fail("name", "is required");
      YAML::Node scopes = t.Get("scopes");
      if (!scopes || !scopes.IsSequence() || scopes.size() == 0) {
        t.Fail("scopes", "must list scopes (runs:read, runs:write, agent, env:allocate, env:admin)");
      }
      for (size_t j = 0; j < scopes.size(); ++j) {
        const std::string s = config::ScalarText(reader, scopes[j], fmt::format("{}.scopes[{}]", at, j));
        if (!ValidScope(s)) {
          reader.Fail(scopes[j], fmt::format("{}.scopes[{}]", at, j),
                      fmt::format("'{}' is not a scope (allowed: runs:read, runs:write, agent, env:allocate, "
                                  "env:admin)",
                                  s));
        }
        spec.scopes.push_back(s);
      }
      const std::string sha = t.String("sha256", "");
      const std::string file = t.String("token_file", "");
      const std::string env = t.String("token_env", "");
      if (!sha.empty() + !file.empty() + !env.empty() != 1) {
        t.Fail("sha256", "give exactly one of sha256, token_file, token_env");
      }
      if (!sha.empty()) {
        if (sha.size() != 64 || sha.find_first_not_of("0123456789abcdef") != std::string::npos) {
          t.Fail("sha256", "must be 64 lower-case hex digits (sha256sum of the token)");
        }
        spec.hash_hex = sha;
      } else if (!file.empty()) {
        std::ifstream tf(file);
        std::string secret;
        if (!tf || !std::getline(tf, secret) || secret.empty())
          t.Fail("token_file", "cannot read a token from " + file);
        spec.hash_hex = HashToken(secret);
      } else {
        const char* v = std::getenv(env.c_str());
        if (!v || !*v) t.Fail("token_env", fmt::format("the environment variable {} is not set", env));
        spec.hash_hex = HashToken(v);
        c.token_env.push_back(env);
      }
      t.Done();
      c.tokens.push_back(std::move(spec));
    }
    f.Done();
    return c;
  } catch (const config::ReadError& e) {
    return MakeError(ErrorCode::kInvalidArgument, e.message);
  } catch (const YAML::Exception& e) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}:{}:{}: not valid YAML: {}", path,
                                                              e.mark.line + 1, e.mark.column + 1, e.msg));
  }
}

}  // namespace meridian::control
