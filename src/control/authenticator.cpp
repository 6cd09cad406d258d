#include "control/authenticator.h"

#include <openssl/crypto.h>

#include <algorithm>
#include <cctype>

namespace meridian::control {

namespace {

bool SameSecret(const std::string& a, const std::string& b) {
  return a.size() == b.size() && CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace

Authenticator::Authenticator(const std::vector<TokenSpec>& tokens) {
  for (const auto& t : tokens) tokens_.push_back(Known{t.hash_hex, http::Caller{t.name, t.scopes}});
}

const http::Caller* Authenticator::Authenticate(const http::ServerRequest& req) const {
  const std::string auth = req.Header("authorization");
  if (auth.size() < 8 || !std::equal(auth.begin(), auth.begin() + 7, "Bearer ", [](char a, char b) {
        return std::tolower(static_cast<unsigned char>(a)) == std::tolower(static_cast<unsigned char>(b));
      })) {
    return nullptr;
  }
  const std::string hash = HashToken(auth.substr(7));
  const http::Caller* found = nullptr;
  for (const auto& t : tokens_) {  // every one compared: the time does not tell which matched
    if (SameSecret(t.hash_hex, hash)) found = &t.caller;
  }
  return found;
}

bool RateLimiter::Take(const std::string& token, int64_t now_mono) {
  Bucket& b = buckets_[token];
  const double burst = 2 * per_second_;
  if (b.last == 0) b.tokens = burst;
  b.tokens = std::min(burst, b.tokens + static_cast<double>(now_mono - b.last) / 1e9 * per_second_);
  b.last = now_mono;
  if (b.tokens < 1) return false;
  b.tokens -= 1;
  return true;
}

bool AgentSecretMatches(const std::string& key, const std::string& secret_hash, const std::string& secret) {
  if (secret_hash.empty() || secret.empty()) return false;
  return SameSecret(KeyedHash(key, secret), secret_hash);
}

void LoginCodes::Add(const std::string& code, std::string token, int64_t expires_mono) {
  codes_[HashToken(code)] = Pending{std::move(token), expires_mono};
}

std::optional<std::string> LoginCodes::Redeem(const std::string& code, int64_t now_mono) {
  std::erase_if(codes_, [&](const auto& entry) { return entry.second.expires_mono <= now_mono; });
  auto it = codes_.find(HashToken(code));
  if (it == codes_.end()) return std::nullopt;
  std::string token = std::move(it->second.token);
  codes_.erase(it);
  return token;
}

}  // namespace meridian::control
