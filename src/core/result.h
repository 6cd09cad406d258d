#pragma once
// Result<T>: the value of an operation that can fail, or the Error saying why. Used at module edges instead
// of exceptions (see STYLE.md); exceptions are reserved for the top of a subcommand or an HTTP handler.
// A module with errors of its own (the lease core's LeaseError) names its error type: Result<T, LeaseError>.

#include <string>
#include <utility>
#include <variant>

#include "core/assert.h"

namespace meridian {

enum class ErrorCode {
  kInvalidArgument,  // bad user input: flags, URLs, plans, bodies
  kNotFound,
  kIo,
  kTimeout,
  kDns,
  kConnect,
  kReset,
  kTls,
  kProtocol,
  kInternal,
};

const char* ErrorCodeName(ErrorCode code);

struct Error {
  ErrorCode code = ErrorCode::kInternal;
  std::string message;
};

template <class T, class E = Error>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(E error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }

  T& value() & {
    MERIDIAN_RELEASE_ASSERT(ok());
    return std::get<0>(v_);
  }
  const T& value() const& {
    MERIDIAN_RELEASE_ASSERT(ok());
    return std::get<0>(v_);
  }
  T&& value() && {
    MERIDIAN_RELEASE_ASSERT(ok());
    return std::get<0>(std::move(v_));
  }
  const E& error() const {
    MERIDIAN_RELEASE_ASSERT(!ok());
    return std::get<1>(v_);
  }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, E> v_;
};

template <class E>
class [[nodiscard]] Result<void, E> {
 public:
  Result() = default;
  Result(E error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)
  bool ok() const { return ok_; }
  explicit operator bool() const { return ok_; }
  const E& error() const {
    MERIDIAN_RELEASE_ASSERT(!ok_);
    return error_;
  }

 private:
  E error_;
  bool ok_ = true;
};

inline Error MakeError(ErrorCode code, std::string message) { return Error{code, std::move(message)}; }

}  // namespace meridian
