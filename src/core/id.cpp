#include "core/id.h"

#include <openssl/rand.h>

#include <cstdlib>
#include <vector>

namespace meridian {

std::string_view IdPrefix(IdKind kind) {
  switch (kind) {
    case IdKind::kRun:
      return "r-";
    case IdKind::kAgent:
      return "ag-";
    case IdKind::kAllocation:
      return "a-";
  }
  std::abort();
}

std::string NewId(IdKind kind) {
  std::string id(IdPrefix(kind));
  id += RandomHex(kind == IdKind::kAllocation ? 8 : 6);
  return id;
}

std::string RandomHex(size_t bytes) {
  std::vector<unsigned char> b(bytes);
  if (RAND_bytes(b.data(), static_cast<int>(b.size())) != 1) std::abort();  // never hand out a guessable name
  return Hex(b.data(), b.size());
}

std::string Hex(const unsigned char* p, size_t n) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kDigits[p[i] >> 4]);
    out.push_back(kDigits[p[i] & 15]);
  }
  return out;
}

}  // namespace meridian
