#pragma once
// The subcommand table entry. Each subcommand's wiring lives in src/app/<command>/ and holds no logic.

namespace meridian::app {

// argv[0] is "meridian <command>"; returns the process exit code:
// 0 success, 1 run error, 2 usage or invalid input (99: a threshold failed, from `run`).
using CommandMain = int (*)(int argc, char** argv);

struct Command {
  const char* name;
  const char* summary;
  CommandMain main;
};

int LoadMain(int argc, char** argv);
int TargetMain(int argc, char** argv);
int RunMain(int argc, char** argv);
int ValidateMain(int argc, char** argv);
int ServeMain(int argc, char** argv);
int AgentMain(int argc, char** argv);
int SubmitMain(int argc, char** argv);
int RunsMain(int argc, char** argv);
int WaiterMain(int argc, char** argv);
int EnvMain(int argc, char** argv);

}  // namespace meridian::app
