// Tokens and server.yaml.

#include <fmt/format.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "control/control.h"
#include "core/duration.h"
#include "plan/reader.h"

namespace meridian::control {
namespace {
constexpr const char* kScopes[] = {"runs:read", "runs:write", "agent", "env:allocate", "env:admin"};

std::string Hex(const unsigned char* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    out.push_back(d[p[i] >> 4]);
    out.push_back(d[p[i] & 15]);
  }
  return out;
}
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

std::string NewToken() {
  unsigned char b[32];
  if (RAND_bytes(b, sizeof b) != 1) std::abort();  // no randomness: never hand out a guessable token
  return Hex(b, sizeof b);
}

Result<ServerConfig> LoadServerConfig(const std::string& path) {
  std::ifstream in(path);
  if (!in)
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}: cannot read the server config", path));
  std::stringstream ss;
  ss << in.rdbuf();
  plan::Reader reader(path);
  try {
    const YAML::Node root = YAML::Load(ss.str());
    plan::Fields f(reader, root, "");
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
    YAML::Node tokens = f.Get("tokens");
    if (!tokens || !tokens.IsSequence() || tokens.size() == 0) {
      f.Fail("tokens",
             "must list at least one token (every route needs one): - { name, scopes, sha256 | "
             "token_file | token_env }");
    }
    for (size_t i = 0; i < tokens.size(); ++i) {
      const std::string at = fmt::format("tokens[{}]", i);
      plan::Fields t(reader, tokens[i], at);
      TokenSpec spec;
      spec.name = t.String("name", "");
      if (spec.name.empty()) t.Fail("name", "is required");
      YAML::Node scopes = t.Get("scopes");
      if (!scopes || !scopes.IsSequence() || scopes.size() == 0) {
        t.Fail("scopes", "must list scopes (runs:read, runs:write, agent, env:allocate, env:admin)");
      }
      for (size_t j = 0; j < scopes.size(); ++j) {
        const std::string s = plan::ScalarText(reader, scopes[j], fmt::format("{}.scopes[{}]", at, j));
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
      }
      t.Done();
      c.tokens.push_back(std::move(spec));
    }
    f.Done();
    return c;
  } catch (const plan::PlanError& e) {
    return MakeError(ErrorCode::kInvalidArgument, e.message);
  } catch (const YAML::Exception& e) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}:{}:{}: not valid YAML: {}", path,
                                                              e.mark.line + 1, e.mark.column + 1, e.msg));
  }
}

}  // namespace meridian::control
