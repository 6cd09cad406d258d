#include "core/environment.h"

#include <cstring>
#include <string_view>

extern char** environ;

namespace meridian {

std::map<std::string, std::string> InheritedEnvironment() {
  static constexpr std::string_view kNames[] = {
      "PATH",         "HOME",        "USER", "LOGNAME",       "SHELL",        "LANG",         "LANGUAGE",
      "TZ",           "TMPDIR",      "TERM", "SSL_CERT_FILE", "SSL_CERT_DIR", "ASAN_OPTIONS", "UBSAN_OPTIONS",
      "LSAN_OPTIONS", "TSAN_OPTIONS"};
  std::map<std::string, std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr) continue;
    const std::string_view name(*e, static_cast<size_t>(eq - *e));
    bool keep = name.starts_with("LC_");
    for (const auto& n : kNames) keep = keep || name == n;
    if (keep) out.emplace(std::string(name), eq + 1);
  }
  return out;
}

}  // namespace meridian
