#pragma once
// PRIVATE to control (scripts/lint keeps other modules out).
// Who is calling: the bearer token a request carries, compared by its SHA-256 with every configured token in
// constant time, *returned* as the caller (its name and scopes) to the dispatcher, which checks the route's
// scope and hands the caller to the handler; a per-token request rate (a token bucket); an agent's secret,
// kept as an HMAC under the server's key.

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "control/control.h"
#include "http/router.h"
#include "http/server.h"

namespace meridian::control {

class Authenticator {
 public:
  explicit Authenticator(const std::vector<TokenSpec>& tokens);
  // The caller the request's `Authorization: Bearer` token names; nullptr when it carries none or an unknown
  // one.
  const http::Caller* Authenticate(const http::ServerRequest& req) const;

 private:
  struct Known {
    std::string hash_hex;
    http::Caller caller;
  };
  std::vector<Known> tokens_;
};

// Requests per second per token, with a burst of twice that.
class RateLimiter {
 public:
  explicit RateLimiter(double per_second) : per_second_(per_second) {}
  // Takes one request from the token's bucket at `now_mono`; false when it is empty.
  bool Take(const std::string& token, int64_t now_mono);

 private:
  struct Bucket {
    double tokens = 0;
    int64_t last = 0;
  };
  double per_second_;
  std::map<std::string, Bucket> buckets_;
};

// One-time dashboard login codes (`meridian run --dashboard` prints a link with one in its fragment, which
// no server and no log sees): each is exchanged once, before it expires, for the token it stands for. Kept
// as SHA-256 hashes.
class LoginCodes {
 public:
  void Add(const std::string& code, std::string token, int64_t expires_mono);
  // The token `code` stands for, and the code is gone; nullopt for an unknown, used or expired code.
  std::optional<std::string> Redeem(const std::string& code, int64_t now_mono);

 private:
  struct Pending {
    std::string token;
    int64_t expires_mono = 0;
  };
  std::map<std::string, Pending> codes_;  // by the code's hash
};

// Whether `secret` (an agent's Meridian-Agent-Secret header) is the one whose keyed hash is `secret_hash`.
bool AgentSecretMatches(const std::string& key, const std::string& secret_hash, const std::string& secret);

}  // namespace meridian::control
