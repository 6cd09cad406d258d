#pragma once
// Files that hold what only the server's user may read (the store, its key, run artefacts): directories are
// created 0700 and files 0600, whatever the umask.

#include <string>

#include "core/result.h"

namespace meridian {

// Creates `dir` and its missing parents with mode 0700 ("" does nothing). A directory named `.meridian` (the
// embedded state directory) that exists already is tightened to 0700 when the user owns it.
Result<void> MakePrivateDirectories(const std::string& dir);

// Writes `content` to `path` (replacing it) with mode 0600.
Result<void> WritePrivateFile(const std::string& path, const std::string& content);

}  // namespace meridian
