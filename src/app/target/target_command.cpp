// `meridian target`: the built-in system under test. Wiring only: flags → TargetOptions → TargetServer.

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <thread>

#include "app/command.h"
#include "app/common/cli.h"
#include "app/common/signals.h"
#include "core/core.h"
#include "target/target.h"

namespace meridian::app {
namespace {

constexpr const char* kName = "meridian target";

// "0.01", "1%" → 0.01
Result<double> ParseShare(const std::string& text) {
  std::string number = text;
  double scale = 1;
  if (!number.empty() && number.back() == '%') {
    number.pop_back();
    scale = 0.01;
  }
  char* end = nullptr;
  const double v = std::strtod(number.c_str(), &end) * scale;
  if (number.empty() || end != number.c_str() + number.size() || !(v >= 0 && v <= 1)) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        fmt::format("--error-rate: '{}' is not a share between 0 and 1 (e.g. 0.01 or 1%)", text));
  }
  return v;
}

}  // namespace

int TargetMain(int argc, char** argv) {
  target::TargetOptions o;
  std::string body = "12", latency, error_rate, pause_at, pause_for, idle_timeout = "60s", duration,
              timer_spin = "300us";
  bool no_admin = false;
  CLI::App app{
      "Serve HTTP/1.1 as a configurable system under test: keep-alive, body size, fixed or random\n"
      "latency, an error rate and a pause window (to show coordinated omission). Binds loopback by default.",
      kName};
  app.get_formatter()->column_width(30);
  app.add_option("-l,--listen", o.listen, "Address to listen on; port 0 picks a free port")
      ->default_val(o.listen);
  app.add_option("-t,--threads", o.threads, "Threads, each with its own listener (default: CPUs)")
      ->check(CLI::Range(1, 1024).description(""));
  app.add_option("--body", body, "Response body size (12, 4k, 1MiB); the body is 'hello world\\n' repeated")
      ->default_val("12");
  app.add_option("--latency", latency,
                 "Extra latency per response: fixed (10ms) or uniform range (5ms-20ms)");
  app.add_option("--error-rate", error_rate, "Share of responses that are 500 (0.01 or 1%)");
  app.add_option("--pause-at", pause_at,
                 "Pause all responses this long after the first request (with --pause-for)");
  app.add_option("--pause-for", pause_for, "Length of the pause");
  app.add_option("--idle-timeout", idle_timeout, "Close keep-alive connections idle this long (0: never)")
      ->default_val("60s");
  app.add_option("--tls-cert", o.tls_cert, "PEM certificate chain: serve https");
  app.add_option("--tls-key", o.tls_key, "PEM private key for --tls-cert");
  app.add_option("--seed", o.seed, "Seed for the error and latency draws")->default_val(1);
  app.add_option(
         "--timer-spin", timer_spin,
         "Poll instead of sleeping when a delayed response is due this soon: virtual machines wake late "
         "(0: always sleep)")
      ->default_val("300us");
  app.add_option("--duration", duration, "Stop after this long (default: until SIGINT/SIGTERM)");
  app.add_flag("--no-admin", no_admin, "Do not serve /__admin/ (stats, pause, health)");
  SetValueNames(app, {{"-l", "ADDR"},
                      {"-t", "N"},
                      {"--body", "SIZE"},
                      {"--latency", "DURATION[-DURATION]"},
                      {"--error-rate", "SHARE"},
                      {"--pause-at", "DURATION"},
                      {"--pause-for", "DURATION"},
                      {"--idle-timeout", "DURATION"},
                      {"--tls-cert", "FILE"},
                      {"--tls-key", "FILE"},
                      {"--seed", "N"},
                      {"--duration", "DURATION"},
                      {"--timer-spin", "DURATION"}});
  app.footer(
      "\nPer request, query parameters shape the response: ?status=404 ?delay=20ms ?size=4k ?chunked ?close\n"
      "?early_hints. Admin: GET /__admin/stats, POST /__admin/pause?for=1s, GET /__admin/health.\n"
      "The first line on stdout is 'meridian target listening on URL'.\n"
      "\nExamples:\n"
      "  meridian target --listen 127.0.0.1:8080 --latency 10ms\n"
      "  meridian target --listen 127.0.0.1:0 --pause-at 5s --pause-for 1s\n"
      "  meridian target --tls-cert cert.pem --tls-key key.pem --error-rate 1%");
  int code = 0;
  if (!ParseCommandLine(app, argc, argv, &code)) return code;

  auto size = ParseByteSize(body);
  if (!size.ok()) return Fail(kName, "--body: " + size.error().message, kExitUsage);
  o.body_bytes = *size;
  if (!latency.empty()) {
    const size_t dash = latency.find('-');
    auto lo = DurationFlag("--latency", latency.substr(0, dash));
    if (!lo.ok()) return Fail(kName, lo.error().message, kExitUsage);
    o.latency_min_ns = o.latency_max_ns = *lo;
    if (dash != std::string::npos) {
      auto hi = DurationFlag("--latency", latency.substr(dash + 1));
      if (!hi.ok()) return Fail(kName, hi.error().message, kExitUsage);
      o.latency_max_ns = *hi;
    }
  }
  if (!error_rate.empty()) {
    auto share = ParseShare(error_rate);
    if (!share.ok()) return Fail(kName, share.error().message, kExitUsage);
    o.error_rate = *share;
  }
  if (pause_at.empty() != pause_for.empty()) {
    return Fail(kName, "--pause-at and --pause-for must be given together", kExitUsage);
  }
  if (!pause_at.empty()) {
    auto at = DurationFlag("--pause-at", pause_at);
    if (!at.ok()) return Fail(kName, at.error().message, kExitUsage);
    auto len = DurationFlag("--pause-for", pause_for);
    if (!len.ok()) return Fail(kName, len.error().message, kExitUsage);
    o.pause_at_ns = *at;
    o.pause_for_ns = *len;
  }
  auto idle = DurationFlag("--idle-timeout", idle_timeout);
  if (!idle.ok()) return Fail(kName, idle.error().message, kExitUsage);
  o.idle_timeout_ns = *idle;
  auto spin = DurationFlag("--timer-spin", timer_spin);
  if (!spin.ok()) return Fail(kName, spin.error().message, kExitUsage);
  o.timer_spin_ns = *spin;
  int64_t run_for = 0;
  if (!duration.empty()) {
    auto d = DurationFlag("--duration", duration);
    if (!d.ok()) return Fail(kName, d.error().message, kExitUsage);
    run_for = *d;
  }
  o.admin = !no_admin;

  std::atomic<bool> stop{false};
  SignalWatcher signals([&](int, int) { stop.store(true); });
  auto server = target::TargetServer::Start(o);
  if (!server.ok()) {
    const int exit = server.error().code == ErrorCode::kInvalidArgument ? kExitUsage : kExitRunError;
    return Fail(kName, server.error().message, exit);
  }
  const auto& s = *server;
  std::string shape = fmt::format("body {}", FormatBytes(static_cast<double>(o.body_bytes)));
  if (o.latency_max_ns > 0) {
    shape += o.latency_min_ns == o.latency_max_ns
                 ? fmt::format(", latency {}", FormatDuration(o.latency_min_ns))
                 : fmt::format(", latency {}-{}", FormatDuration(o.latency_min_ns),
                               FormatDuration(o.latency_max_ns));
  }
  if (o.error_rate > 0) shape += fmt::format(", error rate {:g}%", o.error_rate * 100);
  if (o.pause_at_ns >= 0) {
    shape += fmt::format(", pause {} after the first request for {}", FormatDuration(o.pause_at_ns),
                         FormatDuration(o.pause_for_ns));
  }
  fmt::print("meridian target listening on {}://{} ({})\n", s->tls() ? "https" : "http",
             s->endpoint().ToString(), shape);
  std::fflush(stdout);
  const int64_t deadline = run_for > 0 ? MonoNanos() + run_for : INT64_MAX;
  while (!stop.load() && MonoNanos() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  s->Stop();
  s->Wait();
  const target::TargetStats st = s->Stats();
  fmt::print(stderr, "meridian target: served {} requests on {} connections\n", st.requests,
             st.connections_accepted);
  return kExitOk;
}

}  // namespace meridian::app
