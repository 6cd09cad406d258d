// CLIENTS threads, each with one keep-alive connection, allocate (waiting in the pool's queue when it is
// empty) and deallocate in a loop for SECONDS against a control plane; then the audit log is replayed to
// count environments held by two allocations at once. Prints one JSON line.
//
// Usage: lease_bench URL TOKEN POOL CLIENTS SECONDS [RATE]
// RATE > 0 paces the clients to RATE cycles/s in total (each client RATE/CLIENTS), and latencies are measured
// from each cycle's intended start, so a slow server shows up in them (no coordinated omission); without it
// every client loops as fast as the server answers.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "core/json.h"
#include "http/fetch.h"

using nlohmann::json;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  if (argc != 6 && argc != 7) {
    std::fprintf(stderr, "usage: lease_bench URL TOKEN POOL CLIENTS SECONDS [RATE]\n");
    return 2;
  }
  const std::string url = argv[1], token = argv[2], pool = argv[3];
  const int clients = std::atoi(argv[4]);
  const double seconds = std::atof(argv[5]);
  const double rate = argc == 7 ? std::atof(argv[6]) : 0;
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> errors{0};
  std::vector<std::vector<double>> alloc_ms(static_cast<size_t>(clients)),
      dealloc_ms(static_cast<size_t>(clients));
  std::vector<std::thread> threads;
  const auto start = Clock::now();
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      auto client = meridian::http::BlockingClient::Create(url, token);
      if (!client.ok()) {
        ++errors;
        return;
      }
      const std::string body = meridian::JsonText(
          json{{"pool", pool}, {"requester", "bench-" + std::to_string(c)}, {"wait", "60s"}});
      // Paced clients start spread over one interval.
      const auto interval = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(rate > 0 ? clients / rate : 0));
      auto next = Clock::now() + interval * c / std::max(1, clients);
      while (!stop.load(std::memory_order_relaxed)) {
        if (rate > 0) {
          std::this_thread::sleep_until(next);
          if (stop.load(std::memory_order_relaxed)) break;
        }
        const auto t0 = rate > 0 ? next : Clock::now();
        next += interval;
        auto r = client->Request("POST", "/v1/allocations", body, 120'000'000'000);
        const auto t1 = Clock::now();
        if (!r.ok() || r->status != 201) {
          ++errors;
          continue;
        }
        const std::string id = json::parse(r->body)["id"];
        auto d = client->Request("DELETE", "/v1/allocations/" + id, R"({"outcome":"success"})");
        const auto t2 = Clock::now();
        if (!d.ok() || d->status != 200) ++errors;
        alloc_ms[static_cast<size_t>(c)].push_back(
            std::chrono::duration<double, std::milli>(t1 - t0).count());
        dealloc_ms[static_cast<size_t>(c)].push_back(
            std::chrono::duration<double, std::milli>(t2 - t1).count());
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> alloc, dealloc;
  for (auto& v : alloc_ms) alloc.insert(alloc.end(), v.begin(), v.end());
  for (auto& v : dealloc_ms) dealloc.insert(dealloc.end(), v.begin(), v.end());
  std::sort(alloc.begin(), alloc.end());
  std::sort(dealloc.begin(), dealloc.end());
  auto pct = [](const std::vector<double>& v, double p) {
    return v.empty() ? 0.0
                     : v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
  };
  // Replay the audit log: an allocate of an environment that is still held is a double allocation.
  auto admin = meridian::http::BlockingClient::Create(url, token);
  std::map<std::string, std::string> holder;
  uint64_t doubles = 0, audited = 0;
  int64_t after = 0;
  while (admin.ok()) {
    auto r = admin->Request("GET", "/v1/audit?limit=10000&after=" + std::to_string(after));
    if (!r.ok() || r->status != 200) break;
    const json page = json::parse(r->body)["audit"];
    if (page.empty()) break;
    for (const auto& row : page) {
      after = row["id"];
      const std::string env = row["environment"], action = row["action"];
      if (action == "allocate") {
        ++audited;
        if (holder.count(env)) ++doubles;
        holder[env] = row["allocation"];
      } else if (action == "deallocate" || action == "expire") {
        holder.erase(env);
      }
    }
  }
  std::printf("%s\n", meridian::JsonText(json{{"clients", clients},
                                              {"offered_rate", rate},
                                              {"seconds", elapsed},
                                              {"cycles", alloc.size()},
                                              {"cycles_per_s", static_cast<double>(alloc.size()) / elapsed},
                                              {"alloc_p50_ms", pct(alloc, 0.50)},
                                              {"alloc_p99_ms", pct(alloc, 0.99)},
                                              {"alloc_max_ms", alloc.empty() ? 0.0 : alloc.back()},
                                              {"dealloc_p99_ms", pct(dealloc, 0.99)},
                                              {"errors", errors.load()},
                                              {"audited_allocations", audited},
                                              {"double_allocations", doubles}})
                          .c_str());
  return doubles == 0 && errors.load() == 0 ? 0 : 1;
}
