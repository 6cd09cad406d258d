#pragma once
// RFC 9110 lexical helpers shared by the request serialiser, the request parser and the response parser
// (internal to src/http).

#include <strings.h>

#include <array>
#include <string_view>

namespace meridian::http {

// tchar: the characters of tokens (methods, header field names).
inline constexpr std::array<bool, 256> kTokenChars = [] {
  std::array<bool, 256> t{};
  for (int ch = '0'; ch <= '9'; ++ch) t[ch] = true;
  for (int ch = 'a'; ch <= 'z'; ++ch) t[ch] = true;
  for (int ch = 'A'; ch <= 'Z'; ++ch) t[ch] = true;
  for (char ch : std::string_view("!#$%&'*+-.^_`|~")) t[static_cast<unsigned char>(ch)] = true;
  return t;
}();

inline bool IsTokenChar(char c) { return kTokenChars[static_cast<unsigned char>(c)]; }

// Strips optional white space (SP, HTAB) at both ends.
inline std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

inline bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && strncasecmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace meridian::http
