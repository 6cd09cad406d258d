// Micro benchmarks of the hot path (Google Benchmark): histogram record and merge, response parsing, request
// serialisation. Run by bench/run; results in bench/RESULTS.md.
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "http/request.h"
#include "http/response_parser.h"
#include "http/url.h"
#include "loadgen/template.h"
#include "stats/histogram.h"

namespace {

using meridian::stats::Histogram;

void BM_HistogramRecord(benchmark::State& state) {
  std::mt19937_64 rng(1);
  std::lognormal_distribution<double> d(13.0, 1.0);
  std::vector<int64_t> values(4096);
  for (auto& v : values) v = static_cast<int64_t>(d(rng));
  Histogram h;
  size_t i = 0;
  for (auto _ : state) {
    h.Record(values[i++ & 4095]);
  }
  benchmark::DoNotOptimize(h.count());
}
BENCHMARK(BM_HistogramRecord);

void BM_HistogramMerge(benchmark::State& state) {
  std::mt19937_64 rng(2);
  std::lognormal_distribution<double> d(13.0, 1.0);
  Histogram a;
  for (int i = 0; i < 100'000; ++i) a.Record(static_cast<int64_t>(d(rng)));
  for (auto _ : state) {
    Histogram total;
    total.Merge(a);
    benchmark::DoNotOptimize(total.count());
  }
}
BENCHMARK(BM_HistogramMerge);

void BM_HistogramP99(benchmark::State& state) {
  std::mt19937_64 rng(3);
  std::lognormal_distribution<double> d(13.0, 1.0);
  Histogram a;
  for (int i = 0; i < 100'000; ++i) a.Record(static_cast<int64_t>(d(rng)));
  for (auto _ : state) benchmark::DoNotOptimize(a.ValueAtPercentile(99));
}
BENCHMARK(BM_HistogramP99);

void BM_HistogramEncode(benchmark::State& state) {
  std::mt19937_64 rng(4);
  std::lognormal_distribution<double> d(13.0, 1.0);
  Histogram a;
  for (int i = 0; i < 100'000; ++i) a.Record(static_cast<int64_t>(d(rng)));
  size_t bytes = 0;
  for (auto _ : state) {
    const std::string e = a.Encode();
    bytes = e.size();
    benchmark::DoNotOptimize(e.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_HistogramEncode);

// nginx's response to `return 200 "hello world\n"`.
const std::string kNginx =
    "HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\nDate: Sat, 21 Nov 2026 20:00:00 GMT\r\n"
    "Content-Type: text/plain\r\nContent-Length: 12\r\nConnection: keep-alive\r\n\r\nhello world\n";

void BM_ParseResponse(benchmark::State& state) {
  meridian::http::ResponseParser p;
  for (auto _ : state) {
    p.Reset();
    benchmark::DoNotOptimize(p.Feed(kNginx));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kNginx.size()));
}
BENCHMARK(BM_ParseResponse);

void BM_ParseResponseByteByByte(benchmark::State& state) {
  meridian::http::ResponseParser p;
  for (auto _ : state) {
    p.Reset();
    for (char c : kNginx) p.Feed(&c, 1);
    benchmark::DoNotOptimize(p.complete());
  }
}
BENCHMARK(BM_ParseResponseByteByByte);

void BM_ParseChunked(benchmark::State& state) {
  std::string wire = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 16; ++i) wire += "400;ext=1\r\n" + std::string(1024, 'x') + "\r\n";
  wire += "0\r\nX-Trailer: t\r\n\r\n";
  meridian::http::ResponseParser p;
  for (auto _ : state) {
    p.Reset();
    benchmark::DoNotOptimize(p.Feed(wire));
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * wire.size()));
}
BENCHMARK(BM_ParseChunked);

void BM_SerializeRequest(benchmark::State& state) {
  auto url = meridian::http::ParseUrl("http://127.0.0.1:8080/api/cart?id=1");
  const meridian::http::HeaderList headers{{"Accept", "application/json"}, {"Authorization", "Bearer abc"}};
  std::string out;
  for (auto _ : state) {
    out.clear();
    meridian::http::AppendRequestHead(out, "POST", url->target, url->HostHeader(), headers, 64);
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_SerializeRequest);

void BM_RenderTemplate(benchmark::State& state) {
  auto t =
      meridian::loadgen::Template::Compile("/users/{{__VU}}/orders/{{__ITER}}?trace={{__UUID}}", {}, "bench");
  std::mt19937_64 rng(5);
  std::string out;
  uint64_t iter = 0;
  for (auto _ : state) {
    out.clear();
    t->Render(out, meridian::loadgen::RenderContext{42, iter++, &rng});
    benchmark::DoNotOptimize(out.data());
  }
}
BENCHMARK(BM_RenderTemplate);

}  // namespace

BENCHMARK_MAIN();
