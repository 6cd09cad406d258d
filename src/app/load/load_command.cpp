// `meridian load URL`: an ad-hoc test in one line, like wrk or hey, on the full engine (executors, phases,
// histograms, open model). Wiring only: flags → RunConfig → Engine → summary.

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <fstream>
#include <optional>
#include <sstream>
#include <string_view>
#include <thread>

#include "app/command.h"
#include "app/common/cli.h"
#include "app/common/follow.h"
#include "app/common/signals.h"
#include "core/core.h"
#include "core/json.h"
#include "http/http.h"
#include "loadgen/loadgen.h"
#include "net/net.h"
#include "stats/stats.h"

namespace meridian::app {
namespace {

constexpr const char* kName = "meridian load";

struct Flags {
  std::string url;
  uint32_t connections = 10;
  std::string duration = "10s";
  std::string rate;
  uint32_t threads = 0;
  std::string method = "GET";
  std::vector<std::string> headers;
  std::string body;
  std::string timeout = "10s";
  std::string connect_timeout = "5s";
  bool insecure = false;
  std::string ca_file;
  uint32_t max_vus = 0;
  std::string stages;
  uint64_t requests = 0;
  uint64_t iterations = 0;
  std::string executor;
  std::string graceful_stop = "30s";
  std::vector<int> expect_status;
  std::vector<std::string> vars;
  std::string name;
  bool json = false;
  std::string summary_file;
  bool quiet = false;
  uint64_t seed = 0;
};

Result<std::string> ReadBody(const std::string& body) {
  if (!body.starts_with("@")) return body;
  std::ifstream in(body.substr(1), std::ios::binary);
  if (!in)
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("--body: cannot read file '{}'", body.substr(1)));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Result<loadgen::ExecutorConfig> BuildExecutor(const Flags& f, const CLI::App& app) {
  using loadgen::ExecutorType;
  auto given = [&](const char* flag) { return app.count(flag) > 0; };
  loadgen::ExecutorConfig e;
  if (!f.executor.empty()) {
    auto t = loadgen::ParseExecutorType(f.executor);
    if (!t.ok()) return MakeError(ErrorCode::kInvalidArgument, "--executor: " + t.error().message);
    e.type = *t;
  } else if (given("--rate")) {
    e.type = given("--stages") ? ExecutorType::kRampingArrivalRate : ExecutorType::kConstantArrivalRate;
  } else if (given("--stages")) {
    e.type = ExecutorType::kRampingVus;
  } else if (given("--requests")) {
    e.type = ExecutorType::kSharedIterations;
  } else if (given("--iterations")) {
    e.type = ExecutorType::kPerVuIterations;
  }
  const bool arrival = e.open_model();
  const bool ramping = e.type == ExecutorType::kRampingVus || e.type == ExecutorType::kRampingArrivalRate;
  auto conflict = [&](const char* flag, const char* why) -> Result<loadgen::ExecutorConfig> {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{} cannot be used with the {} executor ({})",
                                                              flag, loadgen::ExecutorName(e.type), why));
  };
  if (given("--rate") && !arrival)
    return conflict("--rate", "use constant-arrival-rate or ramping-arrival-rate");
  if (given("--max-vus") && !arrival) return conflict("--max-vus", "it applies to arrival-rate executors");
  if (given("--stages") && !ramping) return conflict("--stages", "use ramping-vus or ramping-arrival-rate");
  if (given("--duration") && ramping) return conflict("--duration", "the stages set the duration");
  if (given("--requests") && e.type != ExecutorType::kSharedIterations) {
    return conflict("--requests", "it sets shared-iterations' total");
  }
  if (given("--iterations") && e.type != ExecutorType::kPerVuIterations) {
    return conflict("--iterations", "it sets per-vu-iterations' count per VU");
  }
  if (arrival && !given("--rate") && e.type == ExecutorType::kConstantArrivalRate) {
    return MakeError(ErrorCode::kInvalidArgument, "constant-arrival-rate needs --rate (e.g. --rate 1000)");
  }
  auto duration = DurationFlag("--duration", f.duration);
  if (!duration.ok()) return duration.error();
  auto graceful = DurationFlag("--graceful-stop", f.graceful_stop);
  if (!graceful.ok()) return graceful.error();
  e.graceful_stop_ns = *graceful;
  e.vus = f.connections;
  e.duration_ns = *duration;
  if (e.type == ExecutorType::kPerVuIterations || e.type == ExecutorType::kSharedIterations) {
    e.max_duration_ns = given("--duration") ? *duration : 600 * kNanosPerSecond;
  }
  if (given("--stages")) {
    auto stages = loadgen::ParseStages(f.stages);
    if (!stages.ok()) return MakeError(ErrorCode::kInvalidArgument, "--stages: " + stages.error().message);
    e.stages = *stages;
  }
  if (e.type == ExecutorType::kRampingVus) {
    e.start_vus = given("--connections") ? f.connections : 0;
  }
  if (e.type == ExecutorType::kSharedIterations)
    e.iterations = given("--requests") ? f.requests : f.connections;
  if (e.type == ExecutorType::kPerVuIterations) e.iterations = given("--iterations") ? f.iterations : 1;
  if (arrival) {
    if (given("--rate")) {
      auto rate = loadgen::ParseRate(f.rate);
      if (!rate.ok()) return MakeError(ErrorCode::kInvalidArgument, "--rate: " + rate.error().message);
      e.rate = rate->first;
      e.time_unit_ns = rate->second;
    }
    e.pre_allocated_vus = f.connections;
    double peak = e.rate;
    for (const auto& s : e.stages) peak = std::max(peak, s.target);
    const double peak_per_second = peak * 1e9 / static_cast<double>(e.time_unit_ns);
    // Default: enough VUs to ride out a one-second stall without dropping iterations.
    e.max_vus = given("--max-vus")
                    ? f.max_vus
                    : std::max(f.connections, static_cast<uint32_t>(std::ceil(peak_per_second)));
  }
  if (auto v = e.Validate(); !v.ok()) return v.error();
  return e;
}

void PrintProgress(const loadgen::Progress& p, int64_t total_ns, bool tty) {
  // Seconds after the schedule are the graceful-stop tail (a partial interval): the summary covers them.
  if (p.second * kNanosPerSecond >= total_ns) return;
  const stats::TimelinePoint& pt = *p.point;
  const double failed =
      pt.requests ? 100.0 * static_cast<double>(pt.failures) / static_cast<double>(pt.requests) : 0;
  const std::string text =
      fmt::format("{:>5} / {}  {:>9} req/s  p50 {:>7}  p95 {:>7}  p99 {:>7}  errors {:.2f}%  vus {}{}",
                  FormatDuration((p.second + 1) * kNanosPerSecond), FormatDuration(total_ns), pt.requests,
                  FormatDuration(pt.p50_ns), FormatDuration(pt.p95_ns), FormatDuration(pt.p99_ns), failed,
                  pt.vus_active, pt.dropped ? fmt::format("  dropped {}", pt.dropped) : "");
  if (tty) {
    fmt::print(stderr, "\r\x1b[K  {}", text);
  } else if ((p.second + 1) % 5 == 0) {
    fmt::print(stderr, "  {}\n", text);
  }
  std::fflush(stderr);
}

int RunLoad(const Flags& f, const CLI::App& app) {
  // Request and executor.
  auto url = http::ParseUrl(f.url);
  if (!url.ok()) return Fail(kName, url.error().message, kExitUsage);
  loadgen::RequestSpec spec;
  spec.method = f.method;
  spec.url = f.url;
  spec.name = f.name;
  spec.expect_status = f.expect_status;
  for (const auto& h : f.headers) {
    auto line = http::ParseHeaderLine(h);
    if (!line.ok()) return Fail(kName, "-H: " + line.error().message, kExitUsage);
    spec.headers.push_back(*line);
  }
  auto body = ReadBody(f.body);
  if (!body.ok()) return Fail(kName, body.error().message, kExitUsage);
  spec.body = *body;
  loadgen::VarMap vars;
  std::string vars_error;
  if (!ParseVars(f.vars, &vars, &vars_error, "--var")) return Fail(kName, vars_error, kExitUsage);
  auto executor = BuildExecutor(f, app);
  if (!executor.ok()) return Fail(kName, executor.error().message, kExitUsage);
  auto timeout = DurationFlag("--timeout", f.timeout);
  if (!timeout.ok()) return Fail(kName, timeout.error().message, kExitUsage);
  auto connect_timeout = DurationFlag("--connect-timeout", f.connect_timeout);
  if (!connect_timeout.ok()) return Fail(kName, connect_timeout.error().message, kExitUsage);
  if (*timeout <= 0 || *connect_timeout <= 0)
    return Fail(kName, "time-outs must be greater than 0", kExitUsage);

  loadgen::OriginTable origins;
  auto program = loadgen::RequestProgram::Compile({spec}, vars, 0, origins, "request");
  if (!program.ok()) return Fail(kName, program.error().message, kExitUsage);

  auto config = std::make_shared<loadgen::RunConfig>();
  const bool any_tls =
      std::any_of(origins.origins().begin(), origins.origins().end(), [](const auto& o) { return o.tls(); });
  if (any_tls) {
    auto tls = net::TlsContext::Client(net::TlsClientOptions{f.insecure, f.ca_file});
    if (!tls.ok()) return Fail(kName, tls.error().message, kExitUsage);
    config->tls = std::move(tls).value();
  }
  net::RaiseFileLimit();

  // Resolve and prove the target reachable before anything starts.
  auto prepared = loadgen::PrepareOrigins(origins.origins(), config->tls.get(), *connect_timeout);
  if (!prepared.ok()) return Fail(kName, prepared.error().message, kExitRunError);
  stats::SummaryMeta meta;
  for (const auto& p : *prepared) {
    config->origins.push_back(p.origin);
    meta.dns_lookups.emplace_back(p.origin.host, p.lookup_ns);
  }

  const uint32_t cpus = std::max(1u, std::thread::hardware_concurrency());
  config->threads = f.threads ? f.threads : std::min(cpus, std::max(1u, executor->MaxVus()));
  config->connect_timeout_ns = *connect_timeout;
  config->request_timeout_ns = *timeout;
  config->seed = f.seed ? f.seed : static_cast<uint64_t>(WallNanos());
  config->scenarios.push_back(
      loadgen::ScenarioPlan{"default", *executor, loadgen::DeclarativeFactoryMaker(*program)});

  meta.title = fmt::format("meridian load {} {}", (*program)->requests()[0].method, url->ToString());
  meta.scenarios.push_back(stats::ScenarioMeta{"default", loadgen::ExecutorName(executor->type),
                                               executor->Describe(), executor->open_model()});
  meta.threads = config->threads;
  stats::SeriesNames names;
  names.scenarios = {"default"};
  names.requests.push_back({stats::NameEntry::Kind::kRequest, 0, "", (*program)->requests()[0].name});

  const bool tty = isatty(STDERR_FILENO) == 1;
  const bool progress = !f.quiet;
  const int64_t total_ns = executor->ScheduledDuration();
  if (progress) {
    fmt::print(stderr, "  {} · {} · {} thread{}\n", meta.title, executor->Describe(), config->threads,
               config->threads == 1 ? "" : "s");
  }

  loadgen::Engine engine(config);
  SignalWatcher signals([&](int, int count) {
    if (count == 1) {
      engine.RequestStop();
      fmt::print(stderr, "\n  stopping: finishing running iterations (Ctrl-C again to abort)\n");
    } else {
      engine.RequestAbort();
    }
  });
  auto result = engine.Run([&](const loadgen::Progress& p) {
    if (progress) PrintProgress(p, total_ns, tty);
  });
  if (progress && tty) fmt::print(stderr, "\n");
  if (!result.ok()) return Fail(kName, result.error().message, kExitRunError);

  meta.started_wall_ns = result->started_wall_ns;
  meta.duration_ns = result->duration_ns;
  meta.connections_opened = result->connections_opened;
  meta.retries = result->retries;
  meta.stopped_early = result->stopped_early;
  const nlohmann::ordered_json json = stats::SummaryJson(result->totals, result->timeline, names, meta);
  if (!f.summary_file.empty()) {
    std::ofstream out(f.summary_file);
    out << JsonText(json, 2) << "\n";
    if (!out)
      return Fail(kName, fmt::format("--summary-file: cannot write '{}'", f.summary_file), kExitRunError);
  }
  if (f.json) {
    fmt::print("{}\n", JsonText(json, 2));
  } else {
    fmt::print("{}", stats::SummaryText(result->totals, result->timeline, names, meta));
  }
  std::fflush(stdout);
  return kExitOk;
}

// Flags that mean something else to the peers' users, found before CLI11 would misread them (exact or
// refused, never silently different): `-k` is keep-alive to ab users and "no TLS verification" to curl users,
// so it is refused naming both; a single-dash word (hey's `-disable-keepalive`, `-cpus`, `-host`) is an
// unknown flag, not `-d` with the value "isable-keepalive" or `-h` followed by more letters. Values of
// options that take one are skipped. Returns the one-line problem, or nothing.
std::optional<std::string> PeerFlagProblem(const CLI::App& app, int argc, char** argv) {
  static constexpr std::string_view kNumeric = "cdrtnz";  // counts, durations and rates start with a digit
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") break;
    if (arg.size() < 2 || arg[0] != '-' || arg[1] == '-' ||
        std::isalpha(static_cast<unsigned char>(arg[1])) == 0)
      continue;
    if (arg == "-k") {
      return "-k: not accepted, because it means two things: ab's -k (keep-alive) is always on in meridian, "
             "and "
             "curl's -k (no TLS certificate verification) is --insecure here";
    }
    const CLI::Option* opt = app.get_option_no_throw(std::string{'-', arg[1]});
    if (opt == nullptr) continue;  // CLI11 names it as an unknown flag
    const bool takes_value = opt->get_items_expected_max() > 0;
    const std::string_view rest = arg.substr(2);
    bool word = false;
    if (takes_value && rest.empty()) {
      // Its value follows, unless what follows is a peer's flag (`-m -disable-compression`): no HTTP method,
      // header, duration or count starts with a dash and a letter.
      if (i + 1 < argc && argv[i + 1][0] == '-' &&
          std::isalpha(static_cast<unsigned char>(argv[i + 1][1])) != 0) {
        return fmt::format("{}: missing its value ('{}' is a flag, not a value)", arg, argv[i + 1]);
      }
      ++i;
      continue;
    }
    if (!takes_value) {  // -q, -h: the rest must be more such flags (-qh), not a word
      word = std::any_of(rest.begin(), rest.end(), [&](char c) {
        const CLI::Option* o = app.get_option_no_throw(std::string{'-', c});
        return o == nullptr || o->get_items_expected_max() > 0;
      });
    } else if (kNumeric.find(arg[1]) != std::string_view::npos) {
      word = std::isdigit(static_cast<unsigned char>(rest[0])) == 0 && rest[0] != '.';
    } else {  // -m, -H, -t: a lower-case word with a dash is a flag name, not a value
      word = rest.find('-') != std::string_view::npos &&
             std::all_of(rest.begin(), rest.end(), [](char c) { return (c >= 'a' && c <= 'z') || c == '-'; });
    }
    if (word) {
      return fmt::format(
          "{}: unknown flag (meridian's long flags take two dashes, as --{}; see --help for the flags wrk, "
          "hey "
          "and ab users know)",
          arg, arg.substr(1));
    }
  }
  return std::nullopt;
}

}  // namespace

int LoadMain(int argc, char** argv) {
  Flags f;
  CLI::App app{
      "Send HTTP load to one URL and print a k6-style summary (an ad-hoc test, as with wrk or hey).\n"
      "Closed model by default (-c VUs looping for -d); --rate switches to the open model, where\n"
      "latency is measured from each request's intended start (no coordinated omission).",
      kName};
  app.get_formatter()->column_width(34);
  app.add_option("url", f.url, "Absolute http:// or https:// URL; may use {{var}} templates")->required();
  app.add_option("-c,--connections", f.connections,
                 "VUs, each with its own keep-alive connection (open model: pre-allocated VUs)")
      ->default_val(10)
      ->check(CLI::Range(1u, 1'000'000u).description(""));
  app.add_option("-d,-z,--duration", f.duration, "How long to send load (ms, s, m, h); -z as in hey")
      ->default_val("10s");
  app.add_option("-r,--rate", f.rate, "Open model: iterations per second (1000, 1000/s, 60/m, 5/100ms)");
  app.add_option("-t,--threads", f.threads, "Worker threads (default: CPUs, at most one per VU)")
      ->check(CLI::Range(1u, 1024u).description(""));
  app.add_option("-m,--method", f.method, "HTTP method")->default_val("GET");
  app.add_option("-H,--header", f.headers, "Request header 'Name: value' (repeatable)");
  app.add_option("--body", f.body, "Request body, or @FILE to read it from a file");
  app.add_option("--timeout", f.timeout, "Request time-out: connect to last byte")->default_val("10s");
  app.add_option("--connect-timeout", f.connect_timeout, "Connect (and preflight) time-out")
      ->default_val("5s");
  app.add_flag("--insecure", f.insecure,
               "Do not verify TLS certificates or host names (not -k: that is keep-alive to ab users)");
  bool latency = false;
  app.add_flag("--latency", latency,
               "Accepted for wrk users: the summary always shows the latency percentiles");
  app.add_option("--ca-file", f.ca_file, "PEM bundle of CA certificates to trust instead of the system's");
  app.add_option("--max-vus", f.max_vus,
                 "Open model: most VUs to allocate (default: max(-c, one second of --rate))")
      ->check(CLI::Range(1u, 1'000'000u).description(""));
  app.add_option(
      "--stages", f.stages,
      "Ramp: DURATION:TARGET,... of VUs (ramping-vus) or, with --rate, of rates (ramping-arrival-rate)");
  app.add_option("-n,--requests", f.requests,
                 "Total iterations shared by the VUs (shared-iterations), like ab -n")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1'000'000'000'000}).description(""));
  app.add_option("--iterations", f.iterations, "Iterations per VU (per-vu-iterations)")
      ->check(CLI::Range(uint64_t{1}, uint64_t{1'000'000'000'000}).description(""));
  app.add_option("--executor", f.executor,
                 "Executor: " + loadgen::AllowedExecutorNames() + " (default from flags)");
  app.add_option("--graceful-stop", f.graceful_stop, "Time running iterations get to finish at the end")
      ->default_val("30s");
  app.add_option("--expect-status", f.expect_status, "Statuses that count as success (default: 200-399)")
      ->delimiter(',');
  app.add_option("--var", f.vars, "Template variable NAME=VALUE for {{NAME}} in the URL, headers and body");
  app.add_option("--name", f.name, "Request name in the summary (default: METHOD URL)");
  app.add_flag("--json", f.json, "Print the summary as JSON on stdout");
  app.add_option("--summary-file", f.summary_file, "Also write the JSON summary to this file");
  app.add_flag("-q,--quiet", f.quiet, "No progress output");
  app.add_option("--seed", f.seed, "Seed for {{__RANDOM}} and {{__UUID}} (default: time)");
  SetValueNames(app, {{"url", "URL"},
                      {"-c", "N"},
                      {"-d", "DURATION"},
                      {"-r", "RATE"},
                      {"-t", "N"},
                      {"-m", "METHOD"},
                      {"-H", "HEADER"},
                      {"--body", "BODY|@FILE"},
                      {"--timeout", "DURATION"},
                      {"--connect-timeout", "DURATION"},
                      {"--ca-file", "FILE"},
                      {"--max-vus", "N"},
                      {"--stages", "STAGES"},
                      {"-n", "N"},
                      {"--iterations", "N"},
                      {"--executor", "NAME"},
                      {"--graceful-stop", "DURATION"},
                      {"--expect-status", "CODES"},
                      {"--var", "NAME=VALUE"},
                      {"--name", "NAME"},
                      {"--summary-file", "FILE"},
                      {"--seed", "N"}});
  app.footer(
      "\nExamples:\n"
      "  meridian load http://127.0.0.1:8080/ -c 50 -d 10s                 closed model, like wrk -c50 "
      "-d10s\n"
      "  meridian load http://127.0.0.1:8080/ --rate 2000 -d 30s           open model, 2000 req/s\n"
      "  meridian load http://127.0.0.1:8080/ --stages 10s:100,20s:100,10s:0  ramping VUs\n"
      "  meridian load https://host/api -m POST -H 'Content-Type: application/json' --body @order.json\n"
      "\nExit status: 0 done, 1 the target could not be reached (DNS, connect, TLS), 2 invalid arguments.");
  if (auto problem = PeerFlagProblem(app, argc, argv)) {
    fmt::print(stderr, "{}: {} (see {} --help)\n", kName, *problem, kName);
    return kExitUsage;
  }
  int code = 0;
  if (!ParseCommandLine(app, argc, argv, &code)) return code;
  return RunLoad(f, app);
}

}  // namespace meridian::app
