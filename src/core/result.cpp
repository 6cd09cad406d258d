#include "core/result.h"

#include <cstdio>
#include <cstdlib>

namespace meridian {

const char* ErrorCodeName(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return "invalid_argument";
    case ErrorCode::kNotFound:
      return "not_found";
    case ErrorCode::kIo:
      return "io";
    case ErrorCode::kTimeout:
      return "timeout";
    case ErrorCode::kDns:
      return "dns";
    case ErrorCode::kConnect:
      return "connect";
    case ErrorCode::kReset:
      return "reset";
    case ErrorCode::kTls:
      return "tls";
    case ErrorCode::kProtocol:
      return "protocol";
    case ErrorCode::kInternal:
      return "internal";
  }
  return "unknown";
}

namespace internal {
void AssertFail(const char* expr, const char* file, int line) {
  std::fprintf(stderr, "meridian: assertion failed: %s at %s:%d\n", expr, file, line);
  std::abort();
}
}  // namespace internal

}  // namespace meridian
