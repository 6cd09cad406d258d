// Long runs: memory over a minute of a script scenario (the real binary, its RSS read from /proc).
//
// Not labelled `threads`: under ThreadSanitizer the process's RSS is mostly TSan's shadow and history memory,
// mapped lazily as new addresses are touched, so it keeps climbing for reasons that are not the program's.
// The ASan+UBSan stage runs it (with LeakSanitizer at exit); the threaded paths it exercises run under TSan
// in the Scripts.* tests.
#include <gtest/gtest.h>
#include <stdlib.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "process.h"

namespace meridian::testing {
namespace {

using namespace std::chrono_literals;

// Memory stays flat over a long run: a script that makes garbage on every iteration (JSON parsed, strings
// built, 2 KiB bodies sent) for 60 s. The process's RSS is sampled every second; after the warm-up (the GC
// heap grows to its trigger size, the allocators to their working set), the last ten seconds may not exceed
// the 20–30 s window by more than a few MiB. A leak of a few hundred bytes per iteration (tens of thousands
// of iterations per second here) would add tens of MiB in that time.
TEST(Scripts, MemoryStaysFlatOverSixtySeconds) {
#if defined(__SANITIZE_ADDRESS__)
  // ASan keeps freed blocks in a quarantine (256 MiB by default) before reusing them, which reads as growth
  // while it fills; a small one keeps the measurement about the program. Every other ASan check stays on.
  const char* asan = getenv("ASAN_OPTIONS");
  setenv("ASAN_OPTIONS", (std::string(asan ? asan : "") + ":quarantine_size_mb=16").c_str(), 1);
#endif
  Target target;
  TempDir dir;
  dir.Write("churn.js", R"js(import { http, check, group } from 'meridian';
const base = __ENV.base;
export default async function () {
  await group('browse', async () => {
    const res = await http.get(`${base}/api/products`);
    check(res, { listed: (r) => Array.isArray(r.data) && r.data.length > 0 });
    const ids = res.data.map((p) => `${p.id}:${p.name}`).join(',');
    const echo = await http.post(`${base}/api/echo`, { ids, at: Date.now(), pad: 'x'.repeat(2048) });
    check(echo, { echoed: (r) => r.status === 200 && JSON.parse(r.data.body).pad.length === 2048 });
  });
}
)js");
  dir.Write("plan.yaml", R"(name: churn
regions: { local: {} }
scenarios:
  churn: { executor: constant-vus, vus: 20, duration: 60s, script: churn.js }
thresholds:
  checks: ['rate==1']
)");
  Process p({MeridianBinary(), "run", dir.path + "/plan.yaml", "--vars", "base=" + target.url(),
             "--state-dir", dir.path, "--workers", "1", "-q", "--summary-file", dir.path + "/summary.json"});
  std::vector<uint64_t> rss_kib;  // one sample per second
  const auto start = std::chrono::steady_clock::now();
  for (auto next = start; next - start < 62s; next += 1s) {
    std::ifstream status("/proc/" + std::to_string(p.pid()) + "/status");
    std::string line;
    uint64_t kib = 0;
    while (std::getline(status, line)) {
      if (line.rfind("VmRSS:", 0) == 0) kib = std::stoull(line.substr(6));
    }
    if (kib == 0) break;  // exited
    rss_kib.push_back(kib);
    // Drain its output until the next sample is due.
    while (std::chrono::steady_clock::now() < next + 1s) {
      p.ReadLine(std::chrono::duration_cast<std::chrono::milliseconds>(next + 1s -
                                                                       std::chrono::steady_clock::now()));
    }
  }
  const Finished f = p.Wait(60s);
  ASSERT_EQ(f.exit_code, 0) << f.err << f.out;
  std::ifstream in(dir.path + "/summary.json");
  const auto summary = nlohmann::json::parse(in);
  const uint64_t iterations = summary["scenarios"][0]["iterations"].get<uint64_t>();
  EXPECT_GT(iterations, 10'000u) << summary.dump();
  EXPECT_EQ(summary["checks"]["count"].get<uint64_t>(), 2 * iterations);
  ASSERT_GE(rss_kib.size(), 58u);
  const auto window_max = [&](size_t from, size_t to) {
    return *std::max_element(rss_kib.begin() + static_cast<long>(from),
                             rss_kib.begin() + static_cast<long>(to));
  };
  const uint64_t warm = window_max(20, 30);
  const uint64_t end = window_max(48, 58);
  std::string samples;
  for (const uint64_t k : rss_kib) samples += std::to_string(k / 1024) + " ";
  std::cout << "RSS per second (MiB): " << samples << "\n";
  EXPECT_LE(end, warm + std::max<uint64_t>(16 * 1024, warm / 8))
      << "RSS per second (MiB): " << samples << "; " << iterations << " iterations";
}

}  // namespace
}  // namespace meridian::testing
