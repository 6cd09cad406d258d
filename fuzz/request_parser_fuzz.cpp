// The target server's request-head parser and request-body framing on arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "http/request_parser.h"
#include "http/response_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  meridian::http::RequestHead head;
  const char* error = nullptr;
  const auto status = meridian::http::ParseRequestHead(text, head, &error);
  if (status == meridian::http::ParseStatus::kError && error == nullptr) __builtin_trap();
  if (status == meridian::http::ParseStatus::kComplete) {
    if (head.head_bytes > size || head.method.empty() || head.target.empty()) __builtin_trap();
    // The prefix up to the head's end parses to the same head.
    meridian::http::RequestHead again;
    if (meridian::http::ParseRequestHead(text.substr(0, head.head_bytes), again, &error) !=
            meridian::http::ParseStatus::kComplete ||
        again.head_bytes != head.head_bytes || again.content_length != head.content_length) {
      __builtin_trap();
    }
    meridian::http::ResponseParser body;
    body.BeginBody(head.chunked, static_cast<uint64_t>(head.content_length < 0 ? 0 : head.content_length));
    const size_t used = body.Feed(text.substr(head.head_bytes));
    if (used > size - head.head_bytes) __builtin_trap();
  }
  (void)meridian::http::QueryParam(text, "delay");
  return 0;
}
