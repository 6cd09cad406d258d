// Differential fuzzing of the response parser: the same bytes fed whole, split at fuzzer-chosen offsets and
// fed byte by byte must give the same result. The parser keeps no bytes between calls, so a split is where a
// stateful parser breaks first.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "http/response_parser.h"

namespace {

struct Outcome {
  bool complete, failed, keep_alive;
  int status;
  uint64_t body;
  size_t consumed;
  std::string body_bytes, headers;
  bool operator==(const Outcome& o) const {
    return complete == o.complete && failed == o.failed && status == o.status && body == o.body &&
           consumed == o.consumed && body_bytes == o.body_bytes &&
           (!complete || keep_alive == o.keep_alive) && (!complete || headers == o.headers);
  }
};

Outcome Parse(const uint8_t* data, size_t size, const std::vector<size_t>& cuts, bool head, bool eof) {
  meridian::http::ResponseParser p;
  Outcome o{};
  p.CaptureBody(&o.body_bytes, 4096);
  p.CaptureHeaders(&o.headers);
  p.Reset(head);
  size_t pos = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(size);
  for (size_t end : ends) {
    if (end <= pos) continue;
    const size_t want = end - pos;
    const size_t n = p.Feed(reinterpret_cast<const char*>(data) + pos, want);
    if (n > want) __builtin_trap();
    pos += n;
    o.consumed = pos;
    if (n < want || p.complete() || p.failed()) break;
  }
  if (eof && !p.complete() && !p.failed() && pos == size) p.FeedEof();
  o.complete = p.complete();
  o.failed = p.failed();
  o.keep_alive = p.keep_alive();
  o.status = p.status();
  o.body = p.body_bytes();
  if (o.complete && o.failed) __builtin_trap();
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const bool head = data[0] & 1;
  const bool eof = data[0] & 2;
  const uint8_t stride = data[1];
  data += 2;
  size -= 2;
  const Outcome whole = Parse(data, size, {}, head, eof);
  std::vector<size_t> cuts;
  for (size_t at = 1 + stride % 7; at < size; at += 1 + (at * 31 + stride) % 13) cuts.push_back(at);
  if (!(Parse(data, size, cuts, head, eof) == whole)) __builtin_trap();
  if (size < 512) {
    std::vector<size_t> every;
    for (size_t i = 1; i < size; ++i) every.push_back(i);
    if (!(Parse(data, size, every, head, eof) == whole)) __builtin_trap();
  }
  return 0;
}
