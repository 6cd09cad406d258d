// Simulates many agents reporting to one control plane (`meridian serve`), to measure ingest cost: each agent
// registers, joins one run, and sends one interval snapshot with SERIES series every second. Reports the
// control plane's CPU share (from /proc/PID/stat) over the reporting window and the report round-trip times.
//
//   ingest_sim --control URL --runs-token T --agent-token T --pid PID [--agents 200] [--series 50] [--seconds
//   20] [--regions 1] [--names 1] [--fast]
//
// --regions R spreads the agents over R regions (sim-0 ...); --names N gives the plan N request names that
// the series cycle through (n0 ...); --fast sends the seconds back to back instead of one per second, to make
// a long run's history quickly (bench/dashboard's first paint of a 1-hour run); its CPU share then means
// little.

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/json.h"
#include "http/fetch.h"
#include "stats/histogram.h"
#include "stats/metrics.h"
#include "stats/wire.h"

using namespace meridian;
using nlohmann::json;

namespace {

int64_t ProcessCpuNs(int pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = s.rfind(')');
  std::istringstream rest(s.substr(close + 2));
  std::string field;
  long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  return (utime + stime) * (1'000'000'000 / sysconf(_SC_CLK_TCK));
}

std::string Arg(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == name) return argv[i + 1];
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string control = Arg(argc, argv, "--control", "http://127.0.0.1:7070");
  const std::string runs_token = Arg(argc, argv, "--runs-token", "");
  const std::string agent_token = Arg(argc, argv, "--agent-token", "");
  const int pid = std::stoi(Arg(argc, argv, "--pid", "0"));
  const int agents = std::stoi(Arg(argc, argv, "--agents", "200"));
  const int series = std::stoi(Arg(argc, argv, "--series", "50"));
  const int seconds = std::stoi(Arg(argc, argv, "--seconds", "20"));
  const int regions = std::max(1, std::stoi(Arg(argc, argv, "--regions", "1")));
  const int names = std::max(1, std::stoi(Arg(argc, argv, "--names", "1")));
  bool fast = false;
  for (int i = 1; i < argc; ++i) fast |= std::string(argv[i]) == "--fast";
  if (agents % regions != 0) return fmt::print(stderr, "--agents must be a multiple of --regions\n"), 2;
  const int threads = 8;

  std::vector<http::BlockingClient> clients;
  std::vector<std::string> ids;
  for (int i = 0; i < agents; ++i) {
    auto c = http::BlockingClient::Create(control, agent_token);
    if (!c.ok()) return fmt::print(stderr, "{}\n", c.error().message), 2;
    auto r = c->Request(
        "POST", "/v1/agents",
        JsonText(json{{"name", fmt::format("sim-{}", i)},
                      {"region", regions == 1 ? std::string("sim") : fmt::format("sim-{}", i % regions)},
                      {"capacity", 1}}));
    if (!r.ok() || r->status != 201) return fmt::print(stderr, "register failed\n"), 1;
    const json registered = json::parse(r->body);
    ids.push_back(registered["id"]);
    // Every later call of this agent carries the secret it was given (as `meridian agent` does).
    c->SetHeader("Meridian-Agent-Secret", registered.value("secret", ""));
    clients.push_back(std::move(c).value());
  }
  auto runs = http::BlockingClient::Create(control, runs_token);
  std::string region_list, request_list;
  for (int r = 0; r < regions; ++r) {
    region_list +=
        fmt::format("{}{}: {{ agents: {} }}", r ? ", " : "",
                    regions == 1 ? std::string("sim") : fmt::format("sim-{}", r), agents / regions);
  }
  for (int n = 0; n < names; ++n) {
    request_list += fmt::format("{}{{ name: n{}, url: \"http://127.0.0.1:9/{}\" }}", n ? ", " : "", n, n);
  }
  const std::string plan = fmt::format(
      "name: ingest\nstart_buffer: 2s\nheartbeat_timeout: 60s\nready_timeout: 60s\ndrain_grace: 30s\n"
      "regions: {{ {} }}\nscenarios:\n  s: {{ executor: constant-vus, vus: {}, duration: {}s, "
      "graceful_stop: 0s, requests: [{}] }}\n",
      region_list, agents, seconds, request_list);
  auto created = runs->Request("POST", "/v1/runs", JsonText(json{{"plan", plan}}));
  if (!created.ok() || created->status != 201)
    return fmt::print(stderr, "create failed: {}\n", created.ok() ? created->body : created.error().message),
           1;
  const std::string run = json::parse(created->body)["id"];
  for (int i = 0; i < agents; ++i) {
    for (int attempt = 0; attempt < 100; ++attempt) {
      auto w = clients[i].Request("GET", fmt::format("/v1/agents/{}/work", ids[i]), "", 10'000'000'000);
      if (w.ok() && w->status == 200) break;
    }
    auto r = clients[i].Request("POST", fmt::format("/v1/runs/{}/agents/{}/ready", run, ids[i]), "{}");
    if (!r.ok() || r->status != 200)
      return fmt::print(stderr, "ready failed: {}\n", r.ok() ? r->body : ""), 1;
  }
  int64_t start_at = 0;
  while (start_at == 0) {
    auto s = clients[0].Request("GET", fmt::format("/v1/runs/{}/start?wait=2s", run), "", 10'000'000'000);
    if (s.ok() && s->status == 200) start_at = json::parse(s->body)["start_at_ns"];
  }
  // One agent's second: SERIES series (request names × statuses), realistic latency histograms.
  stats::IntervalSnapshot proto;
  for (int k = 0; k < series; ++k) {
    stats::RequestSample r;
    r.status = k % 10 == 9 ? 500 : 200;
    r.error = r.status == 500 ? stats::ErrorKind::kHttp5xx : stats::ErrorKind::kNone;
    auto& st = proto.Series(stats::SeriesKey{0, static_cast<uint16_t>(k % names), r.status, r.error});
    for (int n = 0; n < 200; ++n) {
      r.total_ns = 1'000'000 + (n * 7919 % 200) * 50'000;
      r.ttfb_ns = r.total_ns - 20'000;
      st.Record(r);
    }
  }
  proto.Scenario(0).iterations = 1000;
  while (WallNanos() < start_at) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const int64_t cpu0 = ProcessCpuNs(pid), wall0 = MonoNanos();
  std::atomic<uint64_t> sent{0}, failed{0};
  std::vector<std::vector<int64_t>> rtts(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      for (int sec = 0; sec < seconds; ++sec) {
        const int64_t due = wall0 + static_cast<int64_t>(sec + 1) * 1'000'000'000;
        while (!fast && MonoNanos() < due) std::this_thread::sleep_for(std::chrono::microseconds(200));
        stats::IntervalSnapshot snap = proto;
        snap.second = sec;
        snap.final = sec + 1 == seconds;
        const std::string body = stats::EncodeSnapshot(snap);
        for (int i = t; i < agents; i += threads) {
          const int64_t t0 = MonoNanos();
          auto r =
              clients[i].Request("PUT", fmt::format("/v1/runs/{}/agents/{}/reports/{}", run, ids[i], sec),
                                 body, 10'000'000'000, "application/octet-stream");
          rtts[t].push_back(MonoNanos() - t0);
          const bool ok = r.ok() && r->status == 200;
          if (!ok && failed.fetch_add(1) == 0) {
            fmt::print(stderr, "first failed report: {}\n",
                       r.ok() ? fmt::format("{} {}", r->status, r->body) : r.error().message);
          }
          if (ok) ++sent;
        }
      }
    });
  }
  for (auto& th : pool) th.join();
  const int64_t cpu1 = ProcessCpuNs(pid), wall1 = MonoNanos();
  for (int i = 0; i < agents; ++i) {
    (void)clients[i].Request("POST", fmt::format("/v1/runs/{}/agents/{}/done", run, ids[i]),
                             JsonText(json{{"last_seq", seconds - 1}}));
  }
  std::vector<int64_t> all;
  for (auto& v : rtts) all.insert(all.end(), v.begin(), v.end());
  std::sort(all.begin(), all.end());
  auto pct = [&](double p) { return all.empty() ? 0 : all[static_cast<size_t>(p / 100 * (all.size() - 1))]; };
  const double cpu_share = static_cast<double>(cpu1 - cpu0) / static_cast<double>(wall1 - wall0);
  fmt::print("{}\n", meridian::JsonText(json{{"agents", agents},
                                             {"series", series},
                                             {"seconds", seconds},
                                             {"reports", sent.load()},
                                             {"failed", failed.load()},
                                             {"report_bytes", stats::EncodeSnapshot(proto).size()},
                                             {"control_cpu_share", cpu_share},
                                             {"rtt_p50_ms", pct(50) / 1e6},
                                             {"rtt_p99_ms", pct(99) / 1e6},
                                             {"run", run}}));
  return 0;
}
