#pragma once
// What a child process inherits from meridian's own environment.

#include <map>
#include <string>

namespace meridian {

// Only the variables that describe the machine and the user, never the credentials meridian was started with
// (MERIDIAN_TOKEN, cloud keys, anything else): PATH, HOME, USER, LOGNAME, SHELL, LANG, LANGUAGE, LC_*, TZ,
// TMPDIR, TERM, SSL_CERT_FILE, SSL_CERT_DIR, and a sanitizer build's ASAN/UBSAN/LSAN/TSAN_OPTIONS. A step
// that needs more gets it from its plan's `env` (docs/security.md).
std::map<std::string, std::string> InheritedEnvironment();

}  // namespace meridian
