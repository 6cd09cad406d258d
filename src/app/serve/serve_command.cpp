// `meridian serve`: the control plane as a long-running server.

#include <fmt/format.h>
#include <systemd/sd-daemon.h>

#include <chrono>
#include <csignal>
#include <thread>

#include "app/command.h"
#include "app/common/cli.h"
#include "app/common/signals.h"
#include "control/control.h"
#include "core/log.h"
#include "net/event_loop.h"
#include "net/socket.h"

namespace meridian::app {

int ServeMain(int argc, char** argv) {
  constexpr const char* kName = "meridian serve";
  std::string listen, store_spec, config_path;
  CLI::App app{
      "Run the control plane: the /v1 API for runs and agents, the orchestrator and the store.\n"
      "Every route needs a bearer token configured in server.yaml (tokens: name, scopes, sha256 |\n"
      "token_file | token_env). A restarted server resumes the runs it was orchestrating.",
      kName};
  app.get_formatter()->column_width(30);
  app.add_option("-c,--config", config_path, "server.yaml: listen, store, data_dir, registry, tokens, limits")
      ->required();
  app.add_option("-l,--listen", listen,
                 "Listen address, overriding server.yaml (127.0.0.1:7070, :0 for any port)");
  app.add_option(
      "--store", store_spec,
      "Store, overriding server.yaml: sqlite:PATH, or postgres://USER@HOST:PORT/DB?… (libpq's URL; "
      "the password from $PGPASSWORD or ~/.pgpass rather than the command line)");
  SetValueNames(app, {{"-c", "FILE"}, {"-l", "ADDR"}, {"--store", "SPEC"}});
  app.footer(
      "\nExamples:\n"
      "  meridian serve -c server.yaml\n"
      "  meridian serve -c server.yaml -l 0.0.0.0:7070 --store sqlite:/var/lib/meridian/meridian.db\n"
      "  PGPASSWORD=… meridian serve -c server.yaml --store "
      "'postgres://meridian@db:5432/meridian?sslmode=require'\n"

      "\nPrints 'listening on http://ADDR' on stdout once ready. SIGTERM or Ctrl-C stops it; runs resume on "
      "restart.\nSIGHUP re-reads the environment registry named by server.yaml's `registry:` (see meridian "
      "env).\n"
      "Exit status: 0 stopped, 1 cannot start (store, address), 2 invalid config.");
  int code = 0;
  if (!ParseCommandLine(app, argc, argv, &code)) return code;
  auto config = control::LoadServerConfig(config_path);
  if (!config.ok()) return Fail(kName, config.error().message, kExitUsage);
  if (!listen.empty()) config->listen = listen;
  if (!store_spec.empty()) config->store = store_spec;
  // Descriptors: as many as the hard limit allows (connections, hooks, the store). A store that cannot grow
  // its files (RLIMIT_FSIZE) is an error on the request, not a signal that kills the server.
  net::RaiseFileLimit();
  std::signal(SIGXFSZ, SIG_IGN);
  auto store = store::OpenStore(config->store);
  if (!store.ok()) return Fail(kName, store.error().message, kExitRunError);
  // A server that was just killed may still hold the database until PostgreSQL ends its session: wait a
  // little for it before refusing to start.
  for (int attempt = 0;; ++attempt) {
    auto r = (*store)->ClaimSoleServer();
    if (r.ok()) break;
    if (attempt == 0) LogWarn("{}; waiting up to 15 s for it to go", r.error().message);
    if (attempt >= 75) return Fail(kName, r.error().message, kExitRunError);
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  LogInfo("store: {} (schema version {})", (*store)->Describe(), (*store)->SchemaVersion());
  net::EventLoop loop;
  if (auto r = loop.Init(); !r.ok()) return Fail(kName, r.error().message, kExitRunError);
  control::ControlPlane cp(loop, std::move(store).value(), *config);
  SignalWatcher signals(
      [&](int sig, int) {
        if (sig != SIGHUP) return loop.Post([&] { loop.Stop(); });
        loop.Post([&] {  // re-read the environment registry; a bad file changes nothing
          if (auto r = cp.Reload(); !r.ok()) LogError("SIGHUP: registry not synced: {}", r.error().message);
        });
      },
      /*hangup=*/true);
  if (auto r = cp.Start(); !r.ok()) return Fail(kName, r.error().message, kExitRunError);
  const std::string host = config->listen.substr(0, config->listen.rfind(':'));
  fmt::print("listening on http://{}:{}\n", host.empty() ? "0.0.0.0" : host, cp.port());
  fmt::print(
      "dashboard: http://{}:{}/ (it asks for a token with runs:read; leases: env:allocate or env:admin)\n",
      host.empty() || host == "0.0.0.0" ? "127.0.0.1" : host, cp.port());
  std::fflush(stdout);
  // systemd's Type=notify: ready once the store is migrated and the port is open (a no-op elsewhere).
  (void)sd_notifyf(0, "READY=1\nSTATUS=listening on port %u", static_cast<unsigned>(cp.port()));
  loop.Run();
  (void)sd_notify(0, "STOPPING=1");
  return kExitOk;
}

}  // namespace meridian::app
