#pragma once
// UTF-8 validation for text that must be UTF-8 (plans, scripts) before a parser or JSON library sees it.

#include <cstddef>
#include <string_view>

namespace meridian {

// The offset of the first byte that does not belong to a valid UTF-8 sequence, or npos.
size_t FirstInvalidUtf8(std::string_view s);

}  // namespace meridian
