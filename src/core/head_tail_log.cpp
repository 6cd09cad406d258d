#include "core/head_tail_log.h"

#include <fmt/format.h>

#include <algorithm>

namespace meridian {

void HeadTailLog::Add(const char* data, size_t size) {
  bytes_ += size;
  size_t used = 0;
  if (head_.size() < head_limit_) {
    used = std::min(size, head_limit_ - head_.size());
    head_.append(data, used);
  }
  tail_.append(data + used, size - used);
  if (tail_.size() > 2 * tail_limit_) tail_.erase(0, tail_.size() - tail_limit_);
}

std::string HeadTailLog::Text() const {
  std::string out = head_;
  const uint64_t kept = head_.size() + std::min(tail_.size(), tail_limit_);
  if (bytes_ > kept) out += fmt::format("\n[… {} bytes not kept …]\n", bytes_ - kept);
  out += tail_.size() > tail_limit_ ? tail_.substr(tail_.size() - tail_limit_) : tail_;
  return out;
}

}  // namespace meridian
