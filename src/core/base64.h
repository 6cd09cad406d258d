#pragma once
// Standard base64 (RFC 4648 §4, with padding), for bytes that must cross JSON unchanged (secrets that are not
// UTF-8).

#include <optional>
#include <string>
#include <string_view>

namespace meridian {

std::string Base64Encode(std::string_view bytes);
// nullopt when `text` is not base64 (whitespace is not allowed).
std::optional<std::string> Base64Decode(std::string_view text);

}  // namespace meridian
