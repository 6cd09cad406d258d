// User-typed text: URLs, durations, sizes, header lines, stages and {{templates}} never crash, and what
// parses round-trips.
#include <cstddef>
#include <cstdint>
#include <random>
#include <string>

#include "core/duration.h"
#include "http/request.h"
#include "http/url.h"
#include "loadgen/executor.h"
#include "loadgen/template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (auto url = meridian::http::ParseUrl(text); url.ok()) {
    auto again = meridian::http::ParseUrl(url->ToString());
    if (!again.ok() || again->host != url->host || again->port != url->port || again->target != url->target) {
      __builtin_trap();
    }
  }
  (void)meridian::ParseDuration(text);
  (void)meridian::ParseByteSize(text);
  (void)meridian::http::ParseHeaderLine(text);
  (void)meridian::loadgen::ParseStages(text);
  auto t = meridian::loadgen::Template::Compile(text, {{"base", "http://h"}}, "fuzz");
  if (t.ok()) {
    std::mt19937_64 rng(1);
    std::string out;
    t->Render(out, meridian::loadgen::RenderContext{1, 2, &rng});
  }
  return 0;
}
