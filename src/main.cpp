// meridian: one binary, a table of subcommands. Each subcommand's wiring is in src/app/<command>/.

#include <fmt/format.h>

#include <cstring>
#include <string_view>

#include "app/command.h"
#include "core/version.h"
#include "net/socket.h"

namespace {

constexpr meridian::app::Command kCommands[] = {
    {"run", "run a plan here: embedded control plane, one agent per region, summary and CI exit code",
     meridian::app::RunMain},
    {"validate", "validate a plan strictly and print it normalised with a timeline per region",
     meridian::app::ValidateMain},
    {"load", "send HTTP load to one URL and print a summary (like wrk or hey, with an open model)",
     meridian::app::LoadMain},
    {"target", "serve HTTP as a configurable system under test (latency, errors, pauses)",
     meridian::app::TargetMain},
    {"serve", "run the control plane (API, orchestrator, store) for agents on other hosts",
     meridian::app::ServeMain},
    {"agent", "run a load agent for one region against a control plane", meridian::app::AgentMain},
    {"submit", "run a plan on a control plane and follow it (same progress and exit codes as run)",
     meridian::app::SubmitMain},
    {"runs", "list, show, abort runs on a control plane; export reports (json, csv, junit)",
     meridian::app::RunsMain},
    {"waiter", "hold a command until a run's start instant plus a delay, then exec it",
     meridian::app::WaiterMain},
    {"env", "lease test environments from pools: allocate, exec, renew, deallocate; drain, reinstate, sync",
     meridian::app::EnvMain},
};

void Usage(std::FILE* out) {
  fmt::print(out,
             "meridian {} — distributed load tests, staged test plans and CI environment leases\n\n"
             "Usage: meridian COMMAND [ARGS...]\n\nCommands:\n",
             meridian::kVersion);
  for (const auto& c : kCommands) fmt::print(out, "  {:<10} {}\n", c.name, c.summary);
  fmt::print(out,
             "\nRun 'meridian COMMAND --help' for a command's options.\n"
             "Options: -h, --help   this text;  -V, --version   the version\n"
             "Exit status: 0 success, 99 a threshold failed, 1 run error, 2 usage or invalid input.\n");
}

}  // namespace

int main(int argc, char** argv) {
  meridian::net::IgnoreSigpipe();
  if (argc < 2) {
    Usage(stderr);
    return 2;
  }
  const std::string_view first = argv[1];
  if (first == "-h" || first == "--help" || first == "help") {
    if (first == "help" && argc > 2) {
      for (const auto& c : kCommands) {
        if (std::strcmp(argv[2], c.name) == 0) {
          const std::string name = fmt::format("meridian {}", c.name);
          char help[] = "--help";
          char* args[] = {const_cast<char*>(name.c_str()), help, nullptr};
          return c.main(2, args);
        }
      }
    }
    Usage(stdout);
    return 0;
  }
  if (first == "-V" || first == "--version" || first == "version") {
    fmt::print("meridian {}\n", meridian::kVersion);
    return 0;
  }
  for (const auto& c : kCommands) {
    if (first == c.name) {
      const std::string name = fmt::format("meridian {}", c.name);
      argv[1] = const_cast<char*>(name.c_str());
      return c.main(argc - 1, argv + 1);
    }
  }
  std::string names;
  for (const auto& c : kCommands) names += (names.empty() ? "" : ", ") + std::string(c.name);
  fmt::print(stderr, "meridian: unknown command '{}' (commands: {}; see meridian --help)\n", first, names);
  return 2;
}
