// What a child inherits from meridian's own environment.
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string_view>

#include "process/process.h"

extern char** environ;

namespace meridian::process {
namespace {

bool MachineVariable(std::string_view name) {
  static constexpr std::string_view kNames[] = {
      "PATH",         "HOME",        "USER", "LOGNAME",       "SHELL",        "LANG",         "LANGUAGE",
      "TZ",           "TMPDIR",      "TERM", "SSL_CERT_FILE", "SSL_CERT_DIR", "ASAN_OPTIONS", "UBSAN_OPTIONS",
      "LSAN_OPTIONS", "TSAN_OPTIONS"};
  if (name.starts_with("LC_")) return true;
  for (const auto& n : kNames) {
    if (name == n) return true;
  }
  return false;
}

// Each "NAME=value" of meridian's environment.
template <class F>
void ForEachVariable(F&& f) {
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    const char* eq = std::strchr(*e, '=');
    if (eq == nullptr) continue;
    f(std::string_view(*e, static_cast<size_t>(eq - *e)), eq + 1);
  }
}

}  // namespace

std::map<std::string, std::string> MachineEnvironment() {
  std::map<std::string, std::string> out;
  ForEachVariable([&](std::string_view name, const char* value) {
    if (MachineVariable(name)) out.emplace(std::string(name), value);
  });
  return out;
}

std::vector<std::string> ChildEnvironment(Inherit from, const std::set<std::string>& hidden,
                                          const std::map<std::string, std::string>& set) {
  std::map<std::string, std::string> env;
  ForEachVariable([&](std::string_view name, const char* value) {
    if (from == Inherit::kMachine && !MachineVariable(name)) return;
    env.emplace(std::string(name), value);
  });
  for (const auto& name : hidden) env.erase(name);
  for (const auto& [k, v] : set) env[k] = v;
  std::vector<std::string> out;
  out.reserve(env.size());
  for (const auto& [k, v] : env) out.push_back(k + "=" + v);
  return out;
}

std::string FindExecutable(const std::string& name) {
  if (name.empty()) return {};
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  const std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
  size_t i = 0;
  while (i <= dirs.size()) {
    const size_t j = std::min(dirs.find(':', i), dirs.size());
    const std::string candidate = (j == i ? std::string(".") : dirs.substr(i, j - i)) + "/" + name;
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
    i = j + 1;
  }
  return {};
}

}  // namespace meridian::process
