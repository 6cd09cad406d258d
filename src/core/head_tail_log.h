#pragma once
// A bounded log of a child process's output: the first `head` bytes, then the newest `tail` bytes, with the
// count of what was dropped between them. Used by command steps and by the environment pools' hooks.

#include <cstddef>
#include <cstdint>
#include <string>

namespace meridian {

class HeadTailLog {
 public:
  HeadTailLog(size_t head_bytes = 16 * 1024, size_t tail_bytes = 48 * 1024)
      : head_limit_(head_bytes), tail_limit_(tail_bytes) {}
  void Add(const char* data, size_t size);
  uint64_t bytes() const { return bytes_; }  // everything added, kept or not
  // head, then "[… N bytes not kept …]" when some were dropped, then the tail.
  std::string Text() const;

 private:
  size_t head_limit_, tail_limit_;
  std::string head_, tail_;  // tail_ holds at most twice tail_limit_ between trims
  uint64_t bytes_ = 0;
};

}  // namespace meridian
