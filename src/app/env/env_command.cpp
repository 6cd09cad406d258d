// `meridian env allocate | deallocate | renew | exec | list | show | reinstate | drain | sync`: the CLI of
// the environment leases on a control plane (DESIGN §9). `exec` is what a CI job calls.

#include <fmt/format.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "app/command.h"
#include "app/common/cli.h"
#include "app/common/follow.h"
#include "app/common/signals.h"
#include "core/base64.h"
#include "core/duration.h"
#include "core/id.h"
#include "core/json.h"
#include "envpool/registry.h"
#include "http/fetch.h"
#include "process/process.h"

namespace meridian::app {
namespace {

using json = nlohmann::ordered_json;
constexpr const char* kName = "meridian env";

struct Reply {
  int status = 0;
  json body;
  std::string message;         // the error's message when status >= 300
  int64_t retry_after_s = -1;  // Retry-After, when the server sent one
};

Result<Reply> Call(http::BlockingClient& client, const std::string& method, const std::string& path,
                   const std::string& body = "", int64_t timeout_ns = 30'000'000'000,
                   const std::string& content_type = "application/json") {
  auto r = client.Request(method, path, body, timeout_ns, content_type);
  if (!r.ok()) return r.error();
  Reply reply;
  reply.status = r->status;
  reply.retry_after_s = r->retry_after_s;
  reply.body = json::parse(r->body, nullptr, false);
  if (r->status >= 300) {
    reply.message = r->body;
    if (reply.body.is_object() && reply.body.contains("error") && reply.body["error"].is_object()) {
      reply.message = reply.body["error"].value("message", r->body);
    }
  }
  return reply;
}

// Call, again while the answer is "not now" (429, 503: the server names when in Retry-After) or the
// connection failed, for up to `patience`: what ends a lease must not be lost to a busy moment.
Result<Reply> CallPatiently(http::BlockingClient& client, const std::string& method, const std::string& path,
                            const std::string& body, std::chrono::seconds patience) {
  const auto until = std::chrono::steady_clock::now() + patience;
  while (true) {
    auto r = Call(client, method, path, body);
    const bool again = !r.ok() || r->status == 429 || r->status == 503;
    if (!again || std::chrono::steady_clock::now() >= until) return r;
    const int64_t wait_s = r.ok() && r->retry_after_s >= 0 ? std::clamp<int64_t>(r->retry_after_s, 1, 30) : 1;
    fmt::print(stderr, "{}: {} {}: {}; retrying in {} s\n", kName, method, path,
               r.ok() ? fmt::format("{} {}", r->status, r->message) : r.error().message, wait_s);
    std::this_thread::sleep_for(std::chrono::seconds(wait_s));
  }
}

std::string EnvName(const std::string& key) {
  std::string out;
  for (char c : key)
    out += std::isalnum(static_cast<unsigned char>(c))
               ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
               : '_';
  return out;
}

std::string Text(const json& v) { return v.is_string() ? v.get<std::string>() : JsonText(v); }

// The variables `exec` exports: MERIDIAN_ALLOCATION_ID, MERIDIAN_ENV_COUNT, per environment i
// MERIDIAN_ENV_<i>_{ID,POOL,REGION,ACCOUNT,CAP_<KEY>} and its credentials as MERIDIAN_ENV_<i>_<KEY>; the
// first environment also unprefixed: MERIDIAN_ENV_ID …, and its credentials under their own names (AWS_… as
// the credentials command printed them).
std::map<std::string, std::string> ExportedVariables(const json& a) {
  std::map<std::string, std::string> vars;
  vars["MERIDIAN_ALLOCATION_ID"] = a.value("id", "");
  vars["MERIDIAN_ALLOCATION_EXPIRES_AT"] = a.value("expires_at", "");
  const json& envs = a["environments"];
  vars["MERIDIAN_ENV_COUNT"] = std::to_string(envs.size());
  const json creds = a.value("credentials", json::object());
  for (size_t i = 0; i < envs.size(); ++i) {
    const json& e = envs[i];
    std::vector<std::string> prefixes = {fmt::format("MERIDIAN_ENV_{}_", i)};
    if (i == 0) prefixes.push_back("MERIDIAN_ENV_");
    for (const auto& p : prefixes) {
      vars[p + "ID"] = e.value("id", "");
      vars[p + "POOL"] = e.value("pool", "");
      vars[p + "REGION"] = e.value("region", "");
      vars[p + "ACCOUNT"] = e.value("account", "");
      const json caps = e.value("capabilities", json::object());
      for (const auto& [k, v] : caps.items()) vars[p + "CAP_" + EnvName(k)] = Text(v);
    }
    const std::string id = e.value("id", "");
    if (creds.contains(id)) {
      for (const auto& [k, v] : creds[id].items()) {
        // A secret that is not UTF-8 arrives as {"base64": "..."}: exported as its bytes, or, when they hold
        // a NUL (which no variable can), encoded under NAME_BASE64.
        std::string name = EnvName(k), value = Text(v);
        if (v.is_object() && v.size() == 1 && v.contains("base64") && v["base64"].is_string()) {
          auto bytes = Base64Decode(v["base64"].get<std::string>());
          if (bytes && bytes->find('\0') == std::string::npos) {
            value = *bytes;
          } else {
            name += "_BASE64";
            value = v["base64"].get<std::string>();
          }
        }
        vars[fmt::format("MERIDIAN_ENV_{}_{}", i, name)] = value;
        if (i == 0) vars[name] = value;
      }
    }
  }
  return vars;
}

void PrintAllocation(const json& a) {
  fmt::print("allocation {}  pool {}  requester {}  {}  expires {}\n", a.value("id", ""), a.value("pool", ""),
             a.value("requester", ""), a.value("state", ""), a.value("expires_at", ""));
  for (const auto& e : a["environments"]) {
    std::string caps;
    const json capabilities = e.value("capabilities", json::object());
    for (const auto& [k, v] : capabilities.items()) caps += fmt::format(" {}={}", k, Text(v));
    fmt::print("  {}  region={} account={}{}\n", e.value("id", ""), e.value("region", ""),
               e.value("account", ""), caps);
  }
  if (a.contains("credentials") && !a["credentials"].empty()) {
    fmt::print("  credentials for {} environment(s) (shown with --json)\n", a["credentials"].size());
  }
}

}  // namespace

int EnvMain(int argc, char** argv) {
  std::string control = "http://127.0.0.1:7070", token_file;
  if (const char* c = std::getenv("MERIDIAN_CONTROL"); c && *c) control = c;
  std::string pool, requester, wait = "0s", duration, key, outcome = "success", id, file, state;
  std::vector<std::string> require, command;
  uint32_t count = 1;
  bool as_json = false;
  CLI::App app{
      "Lease test environments from a control plane's pools: allocate, renew, deallocate, or run a\n"
      "command with environments held around it (exec); administer pools (list, drain, reinstate,\n"
      "sync the registry).",
      kName};
  app.get_formatter()->column_width(34);
  app.add_option("--control", control,
                 "Control plane URL(s), comma-separated for replicas (default: $MERIDIAN_CONTROL or "
                 "http://127.0.0.1:7070)");
  app.add_option("--token-file", token_file, "File holding the token (default: $MERIDIAN_TOKEN)");
  app.add_flag("--json", as_json, "Print the server's JSON");
  app.require_subcommand(1);
  app.fallthrough();  // --control, --token-file, --json also after the subcommand
  auto add_request = [&](CLI::App* sub) {
    sub->add_option("--pool", pool, "Pool to allocate from")->required();
    sub->add_option("--require", require, "Capability: KEY=VALUE, KEY=A,B or 'KEY in [A, B]' (repeatable)");
    sub->add_option("--count", count, "How many environments, all or none")
        ->default_val(1)
        ->check(CLI::Range(1, 1000));
    sub->add_option("--wait", wait,
                    "Wait in the pool's FIFO queue this long when none is free (0: fail at once)")
        ->default_val("0s");
    sub->add_option("--duration", duration,
                    "Lease length (default: the pool's; renewable up to its max_duration)");
    sub->add_option("--requester", requester,
                    "Who is asking (default: $CI_JOB_ID-style name or the token's)");
    sub->add_option("--idempotency-key", key, "Same key, same allocation: safe retries");
  };
  auto* allocate = app.add_subcommand(
      "allocate", "Allocate environments and print them (and their credentials with --json)");
  add_request(allocate);
  auto* deallocate = app.add_subcommand("deallocate", "End an allocation; cleanup runs (idempotent)");
  deallocate->add_option("id", id, "Allocation ID")->required();
  deallocate->add_option("--outcome", outcome, "success, failure or cancelled")
      ->default_val("success")
      ->check(CLI::IsMember({"success", "failure", "cancelled"}));
  auto* renew = app.add_subcommand("renew", "Extend an allocation (up to the pool's max_duration)");
  renew->add_option("id", id, "Allocation ID")->required();
  renew->add_option("--duration", duration, "From now (default: the pool's default_duration)");
  auto* exec = app.add_subcommand("exec",
                                  "Allocate, run CMD with the environments exported, renew while it runs, "
                                  "always deallocate; exits with CMD's code");
  add_request(exec);
  // CMD is everything after `--`, taken before CLI11 parses (its own options, such as sh's -c, stay CMD's).
  auto* list = app.add_subcommand("list", "Pools (counts by state) and their environments");
  list->add_option("--pool", pool, "Only this pool");
  list->add_option("--state", state, "Only environments in this state")
      ->check(CLI::IsMember({"available", "allocated", "cleaning", "dirty"}));
  auto* show = app.add_subcommand("show", "An allocation (a-…) or an environment, with its last cleanup log");
  show->add_option("id", id, "Allocation or environment ID")->required();
  auto* reinstate =
      app.add_subcommand("reinstate", "Put a dirty or drained environment back in service (env:admin)");
  reinstate->add_option("id", id, "Environment ID")->required();
  auto* drain =
      app.add_subcommand("drain", "Stop allocating an environment; its current lease runs on (env:admin)");
  drain->add_option("id", id, "Environment ID")->required();
  auto* sync = app.add_subcommand("sync", "Validate a registry file and apply it to the server (env:admin)");
  sync->add_option("file", file, "Registry YAML (pools and environments)")->required();
  SetValueNames(app, {{"--control", "URL"}, {"--token-file", "FILE"}});
  app.footer(
      "\nExamples:\n"
      "  meridian env exec --pool aws --require region=us-east-1 --wait 10m -- ./integration-tests.sh\n"
      "  meridian env allocate --pool stacks --count 2 --duration 2h --json\n"
      "  meridian env deallocate a-1a2b3c4d5e6f7a8b --outcome failure\n"
      "  meridian env list --state dirty\n"
      "  meridian env sync deploy/environments.yaml\n"
      "\nexec exports MERIDIAN_ALLOCATION_ID, MERIDIAN_ENV_ID/_POOL/_REGION/_ACCOUNT/_CAP_<KEY> (and\n"
      "MERIDIAN_ENV_<i>_… for each environment), and the credentials under their own names.\n"
      "Exit status: 0 done, 1 the control plane refused or failed, 2 invalid arguments, 75 no capacity\n"
      "(423: retry later); exec exits with CMD's status.");
  int code = 0;
  for (int i = 1; i < argc; ++i) {
    if (std::string_view(argv[i]) == "--") {
      command.assign(argv + i + 1, argv + argc);
      argc = i;
      break;
    }
  }
  if (!ParseCommandLine(app, argc, argv, &code)) return code;
  if (exec->parsed() && command.empty())
    return Fail(kName, "exec needs a command: exec --pool P -- CMD [ARGS...]", kExitUsage);
  if (!exec->parsed() && !command.empty())
    return Fail(kName, "only exec takes a command after --", kExitUsage);
  std::string error;
  const std::string token = LoadCliToken(token_file, &error);
  if (!error.empty()) return Fail(kName, error, kExitUsage);
  auto client = http::BlockingClient::Create(control, token);
  if (!client.ok()) return Fail(kName, client.error().message, kExitUsage);
  constexpr int kExitNoCapacity = 75;  // EX_TEMPFAIL

  auto fail_reply = [&](const std::string& what, const Result<Reply>& r) {
    if (!r.ok()) return Fail(kName, fmt::format("{}: {}", what, r.error().message), kExitRunError);
    if (r->status == 423) return Fail(kName, fmt::format("{}: {}", what, r->message), kExitNoCapacity);
    return Fail(kName, fmt::format("{}: {} {}", what, r->status, r->message),
                r->status == 400 ? kExitUsage : kExitRunError);
  };

  auto allocation_request = [&]() -> Result<json> {
    json body = {{"pool", pool}, {"count", count}};
    if (!requester.empty()) body["requester"] = requester;
    if (!key.empty()) body["idempotency_key"] = key;
    auto w = DurationFlag("--wait", wait);
    if (!w.ok()) return w.error();
    body["wait"] = FormatDuration(*w);
    if (!duration.empty()) {
      auto d = DurationFlag("--duration", duration);
      if (!d.ok()) return d.error();
      body["duration"] = FormatDuration(*d);
    }
    json req = json::object();
    for (const auto& r : require) {
      auto parsed = envpool::ParseRequirement(r);
      if (!parsed.ok()) return parsed.error();
      req[parsed->first] = parsed->second.size() == 1 ? json(parsed->second[0]) : json(parsed->second);
    }
    if (!req.empty()) body["require"] = req;
    return body;
  };
  auto do_allocate = [&](json* out) -> int {
    auto body = allocation_request();
    if (!body.ok()) return Fail(kName, body.error().message, kExitUsage);
    // An idempotency key makes a retry after a lost response safe; one is made up when none was given.
    if (!body->contains("idempotency_key")) {
      body->emplace("idempotency_key",
                    fmt::format("cli-{}-{}-{}", getpid(), ::time(nullptr), std::random_device{}()));
    }
    const int64_t wait_ns = *DurationFlag("--wait", wait);
    auto r = Call(*client, "POST", "/v1/allocations", body->dump(), wait_ns + 30'000'000'000);
    if (!r.ok()) {  // the connection failed: retry once with the same key
      r = Call(*client, "POST", "/v1/allocations", body->dump(), wait_ns + 30'000'000'000);
    }
    if (!r.ok() || r->status >= 300) return fail_reply(fmt::format("allocate from pool {}", pool), r);
    *out = r->body;
    return kExitOk;
  };

  if (allocate->parsed()) {
    json a;
    if (int c = do_allocate(&a); c != kExitOk) return c;
    if (as_json) {
      fmt::print("{}\n", JsonText(a, 2));
    } else {
      PrintAllocation(a);
    }
    return kExitOk;
  }
  if (deallocate->parsed() || renew->parsed() || reinstate->parsed() || drain->parsed()) {
    std::string method = "POST", path, body = "{}";
    if (deallocate->parsed()) {
      method = "DELETE";
      path = "/v1/allocations/" + id;
      body = JsonText(json{{"outcome", outcome}});
    } else if (renew->parsed()) {
      path = "/v1/allocations/" + id + "/renew";
      if (!duration.empty()) {
        auto d = DurationFlag("--duration", duration);
        if (!d.ok()) return Fail(kName, d.error().message, kExitUsage);
        body = JsonText(json{{"duration", FormatDuration(*d)}});
      }
    } else {
      path = "/v1/environments/" + id + (reinstate->parsed() ? "/reinstate" : "/drain");
    }
    auto r = deallocate->parsed() || renew->parsed()
                 ? CallPatiently(*client, method, path, body, std::chrono::seconds(60))
                 : Call(*client, method, path, body);
    if (!r.ok() || r->status >= 300) return fail_reply(fmt::format("{} {}", method, path), r);
    if (as_json) {
      fmt::print("{}\n", JsonText(r->body, 2));
    } else if (deallocate->parsed() || renew->parsed()) {
      PrintAllocation(r->body);
    } else {
      fmt::print("{}  {}{}\n", r->body.value("id", id), r->body.value("state", ""),
                 r->body.value("draining", false) ? " (draining)" : "");
    }
    return kExitOk;
  }
  if (list->parsed()) {
    auto pools = Call(*client, "GET", "/v1/pools");
    if (!pools.ok() || pools->status >= 300) return fail_reply("GET /v1/pools", pools);
    std::string q = "/v1/environments?pool=" + pool + (state.empty() ? "" : "&state=" + state);
    auto envs = Call(*client, "GET", q);
    if (!envs.ok() || envs->status >= 300) return fail_reply("GET /v1/environments", envs);
    if (as_json) {
      fmt::print(
          "{}\n",
          JsonText(json{{"pools", pools->body["pools"]}, {"environments", envs->body["environments"]}}, 2));
      return kExitOk;
    }
    fmt::print("{:<20} {:>5} {:>9} {:>9} {:>8} {:>5} {:>8} {:>7}\n", "POOL", "ENVS", "AVAILABLE", "ALLOCATED",
               "CLEANING", "DIRTY", "DRAINING", "WAITING");
    for (const auto& p : pools->body["pools"]) {
      if (!pool.empty() && p.value("name", "") != pool) continue;
      const json& c = p["counts"];
      fmt::print("{:<20} {:>5} {:>9} {:>9} {:>8} {:>5} {:>8} {:>7}\n", p.value("name", ""),
                 p.value("environments", 0), c.value("available", 0), c.value("allocated", 0),
                 c.value("cleaning", 0), c.value("dirty", 0), c.value("draining", 0), p.value("waiting", 0));
    }
    fmt::print("\n{:<24} {:<16} {:<10} {:<20} {}\n", "ENVIRONMENT", "POOL", "STATE", "ALLOCATION", "NOTE");
    for (const auto& e : envs->body["environments"]) {
      fmt::print("{:<24} {:<16} {:<10} {:<20} {}{}\n", e.value("id", ""), e.value("pool", ""),
                 e.value("state", ""), e.value("allocation", ""),
                 e.value("draining", false) ? "[draining] " : "", e.value("note", ""));
    }
    return kExitOk;
  }
  if (show->parsed()) {
    auto r =
        Call(*client, "GET",
             (id.starts_with(IdPrefix(IdKind::kAllocation)) ? "/v1/allocations/" : "/v1/environments/") + id);
    if (r.ok() && r->status == 404 && id.starts_with(IdPrefix(IdKind::kAllocation)))
      r = Call(*client, "GET", "/v1/environments/" + id);
    if (!r.ok() || r->status >= 300) return fail_reply("show " + id, r);
    if (as_json || !r->body.contains("state") || r->body.contains("environments")) {
      if (!as_json && r->body.contains("environments")) {
        PrintAllocation(r->body);
        return kExitOk;
      }
      fmt::print("{}\n", JsonText(r->body, 2));
      return kExitOk;
    }
    const json& e = r->body;
    fmt::print("{}  pool {}  {}{}  since {}\n", e.value("id", ""), e.value("pool", ""), e.value("state", ""),
               e.value("draining", false) ? " (draining)" : "", e.value("since", ""));
    fmt::print("region {}  account {}\n", e.value("region", ""), e.value("account", ""));
    if (e.contains("allocation")) fmt::print("allocation {}\n", e.value("allocation", ""));
    if (e.contains("note")) fmt::print("note: {}\n", e.value("note", ""));
    const std::string log = e.value("cleanup_log", "");
    if (!log.empty()) fmt::print("last cleanup log:\n{}{}", log, log.back() == '\n' ? "" : "\n");
    return kExitOk;
  }
  if (sync->parsed()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return Fail(kName, fmt::format("{}: cannot read the registry", file), kExitUsage);
    std::stringstream ss;
    ss << in.rdbuf();
    if (auto local = envpool::ParseRegistry(ss.str(), file); !local.ok()) {
      return Fail(kName, local.error().message, kExitUsage);
    }
    std::string encoded;
    for (char c : file)
      encoded += std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '/' || c == '-' || c == '_'
                     ? std::string(1, c)
                     : fmt::format("%{:02X}", static_cast<unsigned char>(c));
    auto r = Call(*client, "POST", "/v1/environments/sync?file=" + encoded, ss.str(), 30'000'000'000,
                  "application/yaml");
    if (!r.ok() || r->status >= 300) return fail_reply("sync " + file, r);
    if (as_json) {
      fmt::print("{}\n", JsonText(r->body, 2));
    } else {
      const json& b = r->body;
      fmt::print("synced {}: {} pool(s); added {}, updated {}, draining {}, retired {}\n", file,
                 b["pools"].size(), b["added"].size(), b["updated"].size(), b["draining"].size(),
                 b["retired"].size());
      for (const char* what : {"added", "updated", "draining", "retired"}) {
        for (const auto& e : b[what]) fmt::print("  {:<9} {}\n", what, e.get<std::string>());
      }
    }
    return kExitOk;
  }

  // exec: allocate, run, renew, deallocate.
  std::atomic<pid_t> child{0};
  std::atomic<int> forwarded{0};
  // Signals are handled by one thread from here on; before the allocation they end the command at once.
  SignalWatcher signals([&](int sig, int) {
    forwarded = sig;
    if (pid_t p = child.load(); p > 0) kill(p, sig);
  });
  json a;
  if (int c = do_allocate(&a); c != kExitOk) return c;
  const std::string allocation = a.value("id", "");
  auto release = [&](const std::string& result) {
    auto r = CallPatiently(*client, "DELETE", "/v1/allocations/" + allocation,
                           JsonText(json{{"outcome", result}}), std::chrono::seconds(120));
    if (!r.ok() || r->status >= 300) {
      fail_reply("deallocate " + allocation, r);
      return false;
    }
    fmt::print(stderr, "{}: deallocated {} ({})\n", kName, allocation, result);
    return true;
  };
  if (forwarded.load() != 0) {  // interrupted while allocating
    release("cancelled");
    return 128 + forwarded.load();
  }
  fmt::print(
      stderr, "{}: allocated {} ({}) until {}\n", kName, allocation,
      [&] {
        std::string ids;
        for (const auto& e : a["environments"]) ids += (ids.empty() ? "" : ", ") + e.value("id", "");
        return ids;
      }(),
      a.value("expires_at", ""));
  // The child's environment: ours (the token included: the command may call meridian) plus the exported
  // variables; it stays in our process group, so a terminal's Ctrl-C reaches it as it would without us.
  process::SpawnOptions o;
  o.argv = command;
  o.env = process::ChildEnvironment(process::Inherit::kAll, {}, ExportedVariables(a));
  auto spawned = process::Spawn(o);
  if (!spawned.ok()) {
    release("failure");
    return Fail(kName, spawned.error().message, 127);
  }
  const pid_t pid = *spawned;
  child = pid;
  if (forwarded.load() != 0) kill(pid, forwarded.load());
  // Renew at half the lease's remaining time until CMD ends (or the pool's maximum refuses).
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  std::thread renewer([&] {
    auto renew_client = http::BlockingClient::Create(control, token);
    if (!renew_client.ok()) return;
    int64_t left_s = a.value("expires_in_s", int64_t{60});
    std::unique_lock<std::mutex> lock(mu);
    while (!done) {
      const auto pause = std::chrono::seconds(std::max<int64_t>(1, left_s / 2));
      if (cv.wait_for(lock, pause, [&] { return done; })) break;
      lock.unlock();
      json body = json::object();
      if (!duration.empty()) body["duration"] = FormatDuration(*DurationFlag("--duration", duration));
      auto r = Call(*renew_client, "POST", "/v1/allocations/" + allocation + "/renew", JsonText(body));
      lock.lock();
      if (r.ok() && r->status == 200) {
        left_s = r->body.value("expires_in_s", left_s);
      } else if (r.ok() && r->status == 409) {
        fmt::print(stderr, "{}: not renewed: {}\n", kName, r->message);
        return;
      } else {
        left_s = std::max<int64_t>(2, left_s / 2);  // transient: try again sooner
      }
    }
  });
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  child = 0;
  {
    std::lock_guard<std::mutex> lock(mu);
    done = true;
  }
  cv.notify_all();
  renewer.join();
  const int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  release(exit_code == 0 ? "success" : "failure");
  return exit_code;
}

}  // namespace meridian::app
