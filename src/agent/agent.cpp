#include "agent/agent.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/clock.h"
#include "core/duration.h"
#include "core/json.h"
#include "core/log.h"
#include "core/version.h"
#include "http/fetch.h"
#include "loadgen/engine.h"
#include "loadgen/origins.h"
#include "net/tls.h"
#include "plan/plan.h"
#include "script/script.h"
#include "stats/wire.h"
#include "steps/statsd.h"
#include "steps/steps.h"

namespace meridian::agent {

using nlohmann::json;

namespace {

json ParseJson(const std::string& body) {
  json j = json::parse(body, nullptr, false);
  return j.is_discarded() ? json::object() : j;
}

// This binary, which is also `meridian waiter` for command steps.
std::string SelfPath() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "meridian";
}

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0) return "agent";
  return buf;
}

}  // namespace

// One run on this agent: the engine, and the reporter thread that delivers its snapshots.
class Agent::RunExecution {
 public:
  RunExecution(Agent& agent, std::string run_id) : agent_(agent), run_id_(std::move(run_id)) {}

  void RequestStop() {
    stop_.store(true);
    if (auto* e = engine_.load()) e->RequestStop();
    if (auto* s = steps_.load()) s->StopAll();
  }
  void Wake() { cv_.notify_all(); }

  void Execute(const json& work) {
    const std::string region = work.value("region", "");
    const uint32_t slot = work.value("slot", 0u);
    auto plan = plan::ParsePlan(work.value("plan", ""), "plan.yaml");
    if (!plan.ok()) return NotReady(plan.error().message);
    auto client = agent_.Client();
    if (!client.ok()) return NotReady(client.error().message);
    control_ = std::make_unique<http::BlockingClient>(std::move(client).value());

    // Compile the whole plan (name tables are global), run only this slot's shares.
    const auto shares = plan::SharesFor(*plan, plan::AgentSlot{region, slot});
    loadgen::OriginTable origins;
    std::vector<std::shared_ptr<const loadgen::RequestProgram>> programs(plan->scenarios.size());
    uint16_t series = 0;
    for (size_t i = 0; i < plan->scenarios.size(); ++i) {
      const auto& s = plan->scenarios[i];
      if (s.requests.empty()) continue;
      auto program = loadgen::RequestProgram::Compile(s.requests, plan->vars, series, origins,
                                                      "scenarios." + s.name + ".requests");
      if (!program.ok()) return NotReady(program.error().message);
      programs[i] = *program;
      series = static_cast<uint16_t>(series + s.requests.size());
    }
    auto config = std::make_shared<loadgen::RunConfig>();
    // Scripts name their hosts at run time: any of them may use https.
    const bool any_script = std::any_of(plan->scenarios.begin(), plan->scenarios.end(),
                                        [](const auto& s) { return !s.script.empty(); });
    const bool any_tls = any_script || std::any_of(origins.origins().begin(), origins.origins().end(),
                                                   [](const auto& o) { return o.tls(); });
    if (any_tls) {
      auto tls = net::TlsContext::Client(net::TlsClientOptions{plan->insecure, ""});
      if (!tls.ok()) return NotReady(tls.error().message);
      config->tls = std::move(tls).value();
    }
    auto prepared = loadgen::PrepareOrigins(origins.origins(), config->tls.get(), plan->connect_timeout_ns);
    if (!prepared.ok()) return NotReady(prepared.error().message);
    for (const auto& p : *prepared) config->origins.push_back(p.origin);
    uint32_t vus = 0;
    for (const auto& share : shares) {
      const auto& s = plan->scenarios[share.scenario];
      loadgen::IterationFactoryMaker maker;
      if (!s.script.empty()) {
        auto options = ScriptOptionsFor(*plan, s);
        if (!options.ok()) return NotReady(options.error().message);
        maker = script::ScriptFactoryMaker(*options);
      } else {
        maker = loadgen::DeclarativeFactoryMaker(programs[share.scenario]);
      }
      loadgen::ScenarioPlan sp{s.name, share.executor, std::move(maker), static_cast<int>(share.scenario)};
      config->scenarios.push_back(std::move(sp));
      vus += share.executor.MaxVus();
    }
    const uint32_t cpus = std::max(1u, std::thread::hardware_concurrency());
    const uint32_t threads = agent_.options_.workers ? agent_.options_.workers : cpus;
    config->threads = std::max(1u, std::min(threads, std::max(1u, vus)));
    config->connect_timeout_ns = plan->connect_timeout_ns;
    config->request_timeout_ns = plan->timeout_ns;
    config->seed = static_cast<uint64_t>(WallNanos()) ^ std::hash<std::string>()(agent_.id_);
    config->await_start = [this] { return AwaitStart(); };
    // The plan's names first (the control plane derives the same); scripts add theirs, and each report
    // carries the ones added since the previous report (reports are delivered in order).
    config->names = std::make_shared<stats::NameRegistry>(plan::Names(*plan).requests);
    names_ = config->names;
    names_sent_ = config->names->size();

    // This slot's instances of the region's steps (instance i runs on slot i % agents of the region).
    std::vector<steps::InstanceSpec> specs;
    const plan::Region* mine = plan->FindRegion(region);
    const uint32_t slots = mine ? std::max(1u, mine->agents) : 1u;
    for (const auto& st : plan->steps) {
      if (st.region != region) continue;
      for (uint32_t i = 0; i < st.instances; ++i) {
        if (i % slots != slot) continue;
        steps::InstanceSpec spec;
        spec.step = st.name;
        spec.instance = i;
        spec.argv = st.Argv();
        spec.env = st.env;
        spec.cwd = st.cwd;
        spec.run_delay_ns = st.run_delay_ns;
        spec.run_max_time_ns = st.run_max_time_ns;
        spec.stop_grace_ns = st.stop_grace_ns;
        spec.restart_on_failure = st.restart_on_failure;
        specs.push_back(std::move(spec));
      }
    }
    for (const auto& spec : specs) {
      std::error_code ec;
      if (!spec.cwd.empty() && !std::filesystem::is_directory(spec.cwd, ec)) {
        return NotReady(
            fmt::format("steps.{}.cwd: '{}' is not a directory on this agent", spec.step, spec.cwd));
      }
    }
    // Each instance's StatsD goes to its own socket ($MERIDIAN_STATSD), so its samples carry step and
    // instance.
    std::unique_ptr<steps::StatsdReceiver> statsd;
    if (!specs.empty()) {
      std::vector<std::string> ids;
      for (const auto& spec : specs) ids.push_back(fmt::format("{}#{}", spec.step, spec.instance));
      auto opened = steps::StatsdReceiver::Open(ids);
      if (!opened.ok()) return NotReady(opened.error().message);
      statsd = std::move(opened).value();
      for (size_t i = 0; i < specs.size(); ++i) specs[i].env["MERIDIAN_STATSD"] = statsd->Address(i);
    }
    statsd_ = statsd.get();
    steps::SupervisorConfig steps_config;
    steps_config.meridian_binary = SelfPath();
    steps_config.run_id = run_id_;
    steps::Supervisor supervisor(steps_config, std::move(specs));
    if (!supervisor.empty()) steps_.store(&supervisor);
    if (stop_.load()) supervisor.StopAll();

    std::thread reporter([this] { ReportLoop(); });
    loadgen::Engine engine(config);
    engine_.store(&engine);
    if (stop_.load()) engine.RequestStop();
    uint64_t requests = 0;
    auto result = engine.Run([&](const loadgen::Progress& p) {
      for (const auto& [k, s] : p.interval->series) requests += s.requests;
      Report(*p.interval);
    });
    engine_.store(nullptr);
    // The run drains only after every step ended (heartbeats go on meanwhile).
    const auto step_results = supervisor.Wait();
    steps_.store(nullptr);
    if (statsd) {
      statsd->Stop();  // its last seconds are queued before done
      if (statsd->dropped() > 0) {
        agent_.Log(
            fmt::format("run {}: {} StatsD lines from steps dropped (malformed, sets, or too many series)",
                        run_id_, statsd->dropped()));
      }
    }
    if (!result.ok()) {
      if (!ready_sent_) {  // preparing failed (a script that does not compile here): say so at once
        engine_.store(nullptr);
        finished_.store(true);
        Wake();
        reporter.join();
        return NotReady(result.error().message);
      }
      agent_.Log(fmt::format("run {}: {}", run_id_, result.error().message));
      finished_.store(true);
      Wake();
      reporter.join();
      return;
    }
    // The actual start on the control plane's clock: wall time of the first worker's wake-up plus the offset.
    if (result->began_mono_ns > 0) {
      started_ns_ = WallNanos() - (MonoNanos() - result->began_mono_ns) + agent_.clock_.offset_ns;
    }
    // When its last iteration or step ended, likewise: rates divide by the time the work lasted, not by the
    // schedule (iterations in their graceful stop run past it).
    if (result->start_mono_ns > 0 && result->duration_ns > 0) {
      load_ended_ns_ = WallNanos() - (MonoNanos() - (result->start_mono_ns + result->duration_ns)) +
                       agent_.clock_.offset_ns;
    }
    for (const auto& r : step_results) {
      if (r.ended_ns > 0) load_ended_ns_ = std::max(load_ended_ns_, r.ended_ns + agent_.clock_.offset_ns);
    }
    finished_.store(true);
    Wake();
    reporter.join();
    SendDone(requests, result->connections_opened, result->retries, step_results);
  }

 private:
  void NotReady(const std::string& why) {
    agent_.Log(fmt::format("run {}: cannot prepare: {}", run_id_, why));
    auto client = agent_.Client();
    if (!client.ok()) return;
    (void)client->Request("POST", fmt::format("/v1/runs/{}/agents/{}/ready", run_id_, agent_.id_),
                          JsonText(json{{"error", why}}));
  }

  // Reports ready, then waits for the common start instant; returns it on the monotonic clock, or -1.
  static Result<std::shared_ptr<const script::ScriptOptions>> ScriptOptionsFor(const plan::Plan& plan,
                                                                               const plan::Scenario& s) {
    auto o = std::make_shared<script::ScriptOptions>();
    o->bundle.entry = s.script;
    o->bundle.files = plan.files;
    o->scenario = s.name;
    o->iteration_timeout_ns = s.iteration_timeout_ns;
    o->insecure = plan.insecure;
    for (const auto& [k, v] : plan.vars) o->env[k] = v;
    if (!s.base_url.empty()) {
      auto t = loadgen::Template::Compile(s.base_url, plan.vars, "scenarios." + s.name + ".base_url");
      if (!t.ok()) return t.error();
      if (!t->is_static()) {
        return MakeError(ErrorCode::kInvalidArgument,
                         "scenarios." + s.name + ".base_url: per-iteration variables are not allowed here");
      }
      o->base_url = t->static_text();
    }
    return std::shared_ptr<const script::ScriptOptions>(std::move(o));
  }

  int64_t AwaitStart() {
    ready_sent_ = true;
    const std::string ready = fmt::format("/v1/runs/{}/agents/{}/ready", run_id_, agent_.id_);
    for (int attempt = 0; !agent_.abort_.load() && !stop_.load(); ++attempt) {
      // The clock as measured for this run (the control plane shows it in the run's agents and summary).
      auto r = control_->Request(
          "POST", ready,
          JsonText(json{{"clock_offset_ns", agent_.clock_.offset_ns}, {"rtt_ns", agent_.clock_.rtt_ns}}));
      if (r.ok() && r->status == 200) break;
      if (r.ok() && (r->status == 409 || r->status == 403 || r->status == 404)) return -1;
      agent_.Backoff(attempt);
    }
    if (stop_.load() || agent_.abort_.load()) return -1;
    agent_.Log(fmt::format("run {}: ready; waiting for the common start", run_id_));
    const std::string path =
        fmt::format("/v1/runs/{}/start?wait={}ms", run_id_, agent_.long_poll_ns_ / 1'000'000);
    for (int attempt = 0; !agent_.abort_.load() && !stop_.load();) {
      auto r = control_->Request("GET", path, "", agent_.long_poll_ns_ + 10 * kNanosPerSecond);
      if (r.ok() && r->status == 200) {
        const json j = ParseJson(r->body);
        const int64_t start_at = j.value("start_at_ns", int64_t{0});
        if (start_at <= 0) continue;
        // Control-plane wall clock → this agent's wall clock → its monotonic clock.
        const int64_t local_wall = start_at - agent_.clock_.offset_ns;
        const int64_t mono = MonoNanos() + (local_wall - WallNanos());
        agent_.Log(fmt::format("run {}: starts in {}", run_id_,
                               FormatDuration(std::max<int64_t>(0, mono - MonoNanos()))));
        if (statsd_ != nullptr) {
          statsd_->Start(
              mono, names_, [this](stats::IntervalSnapshot& s) { Report(s); },
              [this](const std::string& line) { agent_.Log(fmt::format("run {}: {}", run_id_, line)); });
        }
        if (auto* st = steps_.load()) {
          if (auto started = st->Start(local_wall); !started.ok()) agent_.Log(started.error().message);
        }
        return mono;
      }
      if (r.ok() && r->status == 404) continue;   // not known yet: poll again
      if (r.ok() && r->status == 409) return -1;  // the run ended before it started
      agent_.Backoff(attempt++);
    }
    return -1;
  }

  // Encodes a snapshot with the name-table entries added since the previous report (the load's seconds and
  // the steps' StatsD seconds come from two threads; reports keep the order in which they are encoded).
  void Report(const stats::IntervalSnapshot& snapshot) {
    std::lock_guard lock(report_mu_);
    std::vector<std::pair<uint16_t, stats::NameEntry>> new_names;
    for (auto& e : names_->From(names_sent_))
      new_names.emplace_back(names_sent_ + new_names.size(), std::move(e));
    names_sent_ += new_names.size();
    Enqueue(stats::EncodeSnapshot(snapshot, &new_names));
  }

  void Enqueue(std::string report) {
    std::lock_guard lock(mu_);
    queue_.push_back({next_seq_++, std::move(report)});
    cv_.notify_all();
  }

  // Sends reports in order; a report leaves the queue only once the control plane acknowledged it.
  void ReportLoop() {
    auto client = agent_.Client();
    if (!client.ok()) return;
    int attempt = 0;
    while (true) {
      std::pair<int64_t, std::string> item;
      {
        std::unique_lock lock(mu_);
        // Between reports (preparing, waiting for the start, a quiet second) a heartbeat every 500 ms keeps
        // the agent alive in the control plane's eyes.
        const bool woke = cv_.wait_for(lock, std::chrono::milliseconds(500), [&] {
          return !queue_.empty() || finished_.load() || agent_.abort_.load();
        });
        if (!woke) {
          lock.unlock();
          auto hb =
              client->Request("POST", fmt::format("/v1/runs/{}/agents/{}/heartbeat", run_id_, agent_.id_),
                              "{}", 5 * kNanosPerSecond);
          if (hb.ok() && hb->status == 200 && ParseJson(hb->body).value("stop", false)) RequestStop();
          continue;
        }
        if (queue_.empty() || agent_.abort_.load()) return;
        item = queue_.front();
      }
      std::string path = fmt::format("/v1/runs/{}/agents/{}/reports/{}", run_id_, agent_.id_, item.first);
      auto r = client->Request("PUT", path, item.second, 10 * kNanosPerSecond, "application/octet-stream");
      if (r.ok() && (r->status == 200 || r->status == 409)) {
        attempt = 0;
        const json j = ParseJson(r->body);
        std::lock_guard lock(mu_);
        if (r->status == 409) {
          cancelled_ = true;  // the run ended on the control plane: nothing more will be accepted
          queue_.clear();
        } else {
          queue_.pop_front();
          acked_ = item.first;
        }
        if (j.value("stop", false)) RequestStop();
        continue;
      }
      if (r.ok() && r->status >= 400 && r->status < 500) {
        agent_.Log(
            fmt::format("run {}: report {} refused ({}): {}", run_id_, item.first, r->status, r->body));
        std::lock_guard lock(mu_);
        queue_.pop_front();  // a malformed report will not get better by resending it
        continue;
      }
      if (attempt == 0) {
        agent_.Log(fmt::format("run {}: control plane unreachable ({}); keeping {} report(s) to resend",
                               run_id_, r.ok() ? fmt::format("status {}", r->status) : r.error().message,
                               queue_.size()));
      }
      agent_.Backoff(attempt++);
    }
  }

  void SendDone(uint64_t requests, uint64_t connections, uint64_t retries,
                const std::vector<steps::InstanceResult>& step_results) {
    const int64_t last_seq = next_seq_ - 1;
    // Step instances' times go to the control plane's clock.
    const int64_t offset = agent_.clock_.offset_ns;
    // Logs share a budget that keeps done well under the control plane's body limit (8 MiB by default): each
    // keeps its head and tail within its share.
    constexpr size_t kLogBudget = 4u << 20;
    const size_t share =
        step_results.empty() ? kLogBudget : std::max<size_t>(1024, kLogBudget / step_results.size());
    const auto trimmed = [&](const std::string& log) {
      if (log.size() <= share) return log;
      return log.substr(0, share / 4) + fmt::format("\n[… {} bytes not sent …]\n", log.size() - share) +
             log.substr(log.size() - (share - share / 4));
    };
    const auto on_control_clock = [&](int64_t ns) { return ns ? ns + offset : 0; };
    json instances = json::array();
    for (const auto& r : step_results) {
      instances.push_back({{"step", r.step},
                           {"instance", r.instance},
                           {"state", r.state},
                           {"exit_code", r.exit_code},
                           {"signal", r.signal},
                           {"restarts", r.restarts},
                           {"intended_ns", on_control_clock(r.intended_ns)},
                           {"started_ns", on_control_clock(r.started_ns)},
                           {"ended_ns", on_control_clock(r.ended_ns)},
                           {"cpu_seconds", r.cpu_seconds},
                           {"max_rss_bytes", r.max_rss_bytes},
                           {"log_bytes", r.log_bytes},
                           {"error", r.error},
                           {"log", trimmed(r.log)}});
    }
    const std::string body = JsonText(json{{"last_seq", last_seq},
                                           {"requests", requests},
                                           {"connections", connections},
                                           {"retries", retries},
                                           {"started_ns", started_ns_},
                                           {"load_ended_ns", load_ended_ns_},
                                           {"steps", instances}});
    for (int attempt = 0; !agent_.abort_.load() && !cancelled_; ++attempt) {
      auto r =
          control_->Request("POST", fmt::format("/v1/runs/{}/agents/{}/done", run_id_, agent_.id_), body);
      if (r.ok() && (r->status == 200 || r->status == 409)) break;
      if (r.ok() && r->status >= 400 && r->status < 500 && r->status != 429) {
        agent_.Log(fmt::format("run {}: done refused ({}): {}", run_id_, r->status, r->body));
        break;  // it will not get better by resending it
      }
      agent_.Backoff(attempt);
    }
    agent_.Log(fmt::format("run {}: done: {} requests in {} reports (last seq {}, acknowledged {})", run_id_,
                           requests, next_seq_, last_seq, acked_));
  }

  Agent& agent_;
  std::string run_id_;
  std::unique_ptr<http::BlockingClient> control_;
  std::atomic<loadgen::Engine*> engine_{nullptr};
  std::atomic<steps::Supervisor*> steps_{nullptr};
  steps::StatsdReceiver* statsd_ = nullptr;  // set before the engine starts
  std::shared_ptr<stats::NameRegistry> names_;
  std::mutex report_mu_;
  size_t names_sent_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> finished_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<int64_t, std::string>> queue_;
  int64_t next_seq_ = 0;
  int64_t acked_ = -1;
  bool ready_sent_ = false;  // engine thread only
  bool cancelled_ = false;
  int64_t started_ns_ = 0;
  int64_t load_ended_ns_ = 0;
};

Agent::Agent(AgentOptions options) : options_(std::move(options)) {
  if (options_.name.empty()) options_.name = Hostname();
}
Agent::~Agent() = default;

void Agent::Log(const std::string& line) {
  const std::string text =
      EscapeForLog(fmt::format("agent {} [{}]: {}", options_.name, options_.region, line));
  if (options_.log) {
    options_.log(text);
  } else {
    fmt::print(stderr, "{}\n", text);
  }
}

void Agent::Backoff(int attempt) {
  // 100 ms doubling to 2 s, with jitter, interruptible by Abort.
  const int64_t base = std::min<int64_t>(2'000'000'000, 100'000'000LL << std::min(attempt, 5));
  const int64_t wait =
      base / 2 + static_cast<int64_t>(static_cast<uint64_t>(MonoNanos()) % static_cast<uint64_t>(base / 2));
  const int64_t until = MonoNanos() + wait;
  while (MonoNanos() < until && !abort_.load()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

void Agent::Stop() {
  stop_.store(true);
  std::lock_guard lock(current_mu_);
  if (current_) current_->RequestStop();
}

void Agent::Drain() {
  if (!drain_.exchange(true)) Log("draining: no new work; a run in progress finishes");
}

// Tells the control plane this agent is leaving; it answers 409 while the agent's part in a run is not over
// (its done being processed): a few tries.
void Agent::Deregister() {
  if (id_.empty()) return;
  auto client = Client();
  for (int attempt = 0; client.ok() && attempt < 10 && !abort_.load(); ++attempt) {
    auto r = client->Request("DELETE", fmt::format("/v1/agents/{}", id_));
    if (r.ok() && (r->status == 200 || r->status == 404)) {
      Log(fmt::format("drained: {} deregistered", id_));
      return;
    }
    Backoff(attempt);
  }
  Log(fmt::format("drained: {} not deregistered (the control plane forgets it when it is idle)", id_));
}

void Agent::Abort() {
  abort_.store(true);
  Stop();
  std::lock_guard lock(current_mu_);
  if (current_) current_->Wake();
}

ClockSample Agent::MeasureClock() {
  auto client = http::BlockingClient::Create(options_.control_url, options_.token);
  ClockSample best{0, INT64_MAX};
  if (!client.ok()) return ClockSample{};
  for (int i = 0; i < 8; ++i) {
    auto r = client->Request("GET", "/v1/time", "", 5 * kNanosPerSecond);
    if (!r.ok() || r->status != 200) continue;
    const json j = ParseJson(r->body);
    const int64_t t1 = j.value("server_ns", int64_t{0}), t2 = j.value("sent_ns", int64_t{0});
    const int64_t t0 = r->sent_wall_ns, t3 = r->received_wall_ns;
    const int64_t rtt = (t3 - t0) - (t2 - t1);
    if (rtt < best.rtt_ns) best = ClockSample{((t1 - t0) + (t2 - t3)) / 2, rtt};
  }
  return best.rtt_ns == INT64_MAX ? ClockSample{} : best;
}

Result<http::BlockingClient> Agent::Client() const {
  auto client = http::BlockingClient::Create(options_.control_url, options_.token);
  if (client.ok() && !secret_.empty()) client->SetHeader("Meridian-Agent-Secret", secret_);
  return client;
}

bool Agent::Register() {
  auto client = Client();
  if (!client.ok()) return false;
  clock_ = MeasureClock();
  const json body = {
      {"id", id_},
      {"name", options_.name},
      {"region", options_.region},
      {"version", kVersion},
      {"capacity", options_.workers ? options_.workers : std::max(1u, std::thread::hardware_concurrency())},
      {"clock_offset_ns", clock_.offset_ns},
      {"rtt_ns", clock_.rtt_ns}};
  auto r = client->Request("POST", "/v1/agents", JsonText(body));
  if (!r.ok()) {
    Log("cannot register: " + r.error().message);
    return false;
  }
  if (r->status == 403 && !id_.empty()) {
    // The id is bound to a secret this process does not hold: register as a new agent.
    Log(fmt::format("registration as {} refused ({}): registering with a new id", id_, r->body));
    id_.clear();
    secret_.clear();
    return false;
  }
  if (r->status != 201) {
    Log(fmt::format("registration refused ({}): {}", r->status, r->body));
    return false;
  }
  const json j = ParseJson(r->body);
  id_ = j.value("id", "");
  if (j.contains("secret")) secret_ = j.value("secret", "");  // a new id: its own secret
  long_poll_ns_ = j.value("long_poll_ms", int64_t{2000}) * 1'000'000;
  Log(fmt::format("registered as {} (clock offset {}{}, rtt {})", id_, clock_.offset_ns < 0 ? "-" : "",
                  FormatDuration(std::abs(clock_.offset_ns)), FormatDuration(clock_.rtt_ns)));
  return !id_.empty();
}

Result<void> Agent::Run() {
  auto client = Client();
  if (!client.ok()) return client.error();
  if (options_.region.empty()) return MakeError(ErrorCode::kInvalidArgument, "--region is required");
  bool registered = false;
  for (int attempt = 0; !stop_.load(); ++attempt) {
    if (drain_.load()) {
      if (registered) Deregister();
      break;
    }
    if (!registered) {
      registered = Register();
      if (!registered) {
        Backoff(attempt);
        continue;
      }
    }
    client->SetHeader("Meridian-Agent-Secret", secret_);
    auto r = client->Request("GET", fmt::format("/v1/agents/{}/work", id_), "",
                             long_poll_ns_ + 10 * kNanosPerSecond);
    if (!r.ok()) {
      Backoff(attempt);
      continue;
    }
    if (r->status == 404) {
      registered = false;  // the control plane forgot us (a new store): register again
      continue;
    }
    if (r->status == 403 && r->body.find("agent_secret") != std::string::npos) {
      registered = false;  // the control plane does not know this secret (a new server key): register again
      id_.clear();
      secret_.clear();
      continue;
    }
    if (r->status == 401 || r->status == 403) {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("the control plane refused the token: {}", r->body));
    }
    if (r->status != 200) {
      if (r->status != 204) Backoff(attempt);
      continue;
    }
    attempt = 0;
    const json work = ParseJson(r->body);
    const std::string run_id = work.value("run", "");
    // The clock may have drifted (or the answer now comes from another replica) since the last measure: each
    // run's start instant is converted with a fresh one.
    if (runs_++ > 0) {
      if (const ClockSample fresh = MeasureClock(); fresh.rtt_ns > 0) {
        clock_ = fresh;
        Log(fmt::format("run {}: clock offset {}{}, rtt {}", run_id, clock_.offset_ns < 0 ? "-" : "",
                        FormatDuration(std::abs(clock_.offset_ns)), FormatDuration(clock_.rtt_ns)));
      }
    }
    Log(fmt::format("run {}: assigned region {} slot {}", run_id, work.value("region", ""),
                    work.value("slot", 0)));
    RunExecution exec(*this, run_id);
    {
      std::lock_guard lock(current_mu_);
      current_ = &exec;
      if (stop_.load()) exec.RequestStop();
    }
    exec.Execute(work);
    {
      std::lock_guard lock(current_mu_);
      current_ = nullptr;
    }
    if (options_.once) break;
  }
  return {};
}

}  // namespace meridian::agent
