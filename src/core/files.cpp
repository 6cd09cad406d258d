#include "core/files.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

namespace meridian {

Result<void> MakePrivateDirectories(const std::string& dir) {
  if (dir.empty()) return {};
  std::filesystem::path path(dir);
  std::filesystem::path built;
  for (const auto& part : path) {
    built /= part;
    struct stat st {};
    if (::stat(built.c_str(), &st) == 0) {
      if (!S_ISDIR(st.st_mode)) {
        return MakeError(ErrorCode::kIo, fmt::format("{}: not a directory", built.string()));
      }
      if (part == ".meridian" && st.st_uid == ::geteuid() && (st.st_mode & 077) != 0) {
        ::chmod(built.c_str(), 0700);
      }
      continue;
    }
    if (::mkdir(built.c_str(), 0700) != 0 && errno != EEXIST) {
      return MakeError(ErrorCode::kIo,
                       fmt::format("cannot create {}: {}", built.string(), std::strerror(errno)));
    }
    ::chmod(built.c_str(), 0700);  // whatever the umask took away or added
  }
  return {};
}

Result<void> WritePrivateFile(const std::string& path, const std::string& content) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0)
    return MakeError(ErrorCode::kIo, fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  ::fchmod(fd, 0600);
  size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      const int err = errno;
      ::close(fd);
      return MakeError(ErrorCode::kIo, fmt::format("cannot write {}: {}", path, std::strerror(err)));
    }
    done += static_cast<size_t>(n);
  }
  if (::close(fd) != 0)
    return MakeError(ErrorCode::kIo, fmt::format("cannot write {}: {}", path, std::strerror(errno)));
  return {};
}

}  // namespace meridian
