// The command table, --help on every subcommand, --version, and `meridian target`'s own input checks.
#include <gtest/gtest.h>

#include <cctype>
#include <fstream>
#include <iterator>

#include "process.h"

namespace meridian::testing {
namespace {

using namespace std::chrono_literals;

TEST(Cli, HelpListsEveryCommand) {
  Finished f = RunMeridian({"--help"});
  EXPECT_EQ(f.exit_code, 0);
  EXPECT_NE(f.out.find("load"), std::string::npos);
  EXPECT_NE(f.out.find("target"), std::string::npos);
  Finished none = RunMeridian({});
  EXPECT_EQ(none.exit_code, 2);
}

TEST(Cli, EverySubcommandHasHelp) {
  for (const char* cmd :
       {"load", "target", "run", "validate", "serve", "agent", "submit", "runs", "waiter"}) {
    Finished f = RunMeridian({cmd, "--help"});
    EXPECT_EQ(f.exit_code, 0) << cmd;
    EXPECT_NE(f.out.find("Usage"), std::string::npos) << cmd << f.out;
    EXPECT_NE(f.out.find("Examples"), std::string::npos) << cmd << f.out;
    Finished via_help = RunMeridian({"help", cmd});
    EXPECT_EQ(via_help.exit_code, 0);
    EXPECT_EQ(via_help.out, f.out);
  }
}

// docs/cli.md lists every flag that --help lists.
TEST(Cli, DocsListEveryFlag) {
  std::ifstream in(std::string(MERIDIAN_SOURCE_DIR) + "/docs/cli.md");
  ASSERT_TRUE(in) << "docs/cli.md is missing";
  const std::string docs((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* cmd :
       {"load", "target", "run", "validate", "serve", "agent", "submit", "runs", "waiter"}) {
    const std::string help = RunMeridian({cmd, "--help"}).out;
    for (size_t at = help.find("--"); at != std::string::npos; at = help.find("--", at + 2)) {
      size_t end = at + 2;
      while (end < help.size() && (std::isalnum(static_cast<unsigned char>(help[end])) || help[end] == '-'))
        ++end;
      const std::string flag = help.substr(at, end - at);
      if (flag == "--" || flag == "--help") continue;
      bool found = false;
      for (size_t d = docs.find(flag); d != std::string::npos && !found; d = docs.find(flag, d + 1)) {
        const char next = d + flag.size() < docs.size() ? docs[d + flag.size()] : ' ';
        found = !std::isalnum(static_cast<unsigned char>(next)) && next != '-';
      }
      EXPECT_TRUE(found) << "docs/cli.md does not document " << cmd << " " << flag;
    }
  }
}

// Arguments that travel as JSON (names, regions, requesters, vars) must be UTF-8: refused by flag, exit 2,
// never an abort.
TEST(Cli, ArgumentsThatAreNotUtf8AreRefusedByFlag) {
  const std::string bad = "x\xff\xfey";
  struct Case {
    std::vector<std::string> args;
    std::string flag;
  };
  const Case cases[] = {
      {{"agent", "--control", "http://127.0.0.1:9", "--region", "r", "--name", bad}, "--name"},
      {{"agent", "--control", "http://127.0.0.1:9", "--region=" + bad}, "--region"},
      {{"run", "plan.yaml", "--vars", "k=" + bad}, "--vars"},
      {{"submit", "plan.yaml", "--vars", "k=" + bad}, "--vars"},
      {{"env", "allocate", "--pool", "p", "--requester", bad}, "--requester"},
      {{"env", "allocate", "--pool", "p", "--require", "k=" + bad}, "--require"},
  };
  for (const auto& c : cases) {
    const Finished f = RunMeridian(c.args);
    EXPECT_EQ(f.exit_code, 2) << c.args[0] << " " << c.flag << ": " << f.err;
    EXPECT_NE(f.err.find(c.flag + ": not valid UTF-8"), std::string::npos) << f.err;
  }
  // A command's own arguments after -- are its business.
  const Finished waiter =
      RunMeridian({"waiter", "/nonexistent/RUN.txt", "s", "0s", "--timeout", "1s", "--", "true", bad});
  EXPECT_EQ(waiter.err.find("not valid UTF-8"), std::string::npos) << waiter.err;
}

TEST(Cli, VersionAndUnknownCommand) {
  Finished v = RunMeridian({"--version"});
  EXPECT_EQ(v.exit_code, 0);
  EXPECT_EQ(v.out.rfind("meridian ", 0), 0u);
  Finished u = RunMeridian({"frobnicate"});
  EXPECT_EQ(u.exit_code, 2);
  EXPECT_NE(u.err.find("unknown command 'frobnicate'"), std::string::npos);
}

TEST(TargetCli, BadInputIsOneLineAndExitTwo) {
  struct Case {
    std::vector<std::string> args;
    const char* mentions;
  } cases[] = {
      {{"target", "--error-rate", "2"}, "--error-rate"},
      {{"target", "--latency", "5ms-1ms"}, "--latency"},
      {{"target", "--latency", "fast"}, "--latency"},
      {{"target", "--listen", "nowhere:80"}, "listen address"},
      {{"target", "--body", "lots"}, "--body"},
      {{"target", "--pause-at", "1s"}, "--pause-for"},
      {{"target", "--tls-cert", "/no/cert.pem"}, "--tls-key"},
      {{"target", "--tls-cert", "/no/cert.pem", "--tls-key", "/no/key.pem"}, "/no/cert.pem"},
  };
  for (const auto& c : cases) {
    Finished f = RunMeridian(c.args, 10'000ms);
    EXPECT_EQ(f.exit_code, 2) << c.args[1] << "\n" << f.err;
    EXPECT_NE(f.err.find(c.mentions), std::string::npos) << f.err;
    EXPECT_EQ(std::count(f.err.begin(), f.err.end(), '\n'), 1) << f.err;
  }
}

TEST(TargetCli, AdminPauseAndStats) {
  Target target;
  EXPECT_EQ(HttpGet(target.port(), "/__admin/health"), "ok\n");
  EXPECT_NE(HttpGet(target.port(), "/__admin/pause?for=1s").find("POST"), std::string::npos);
  EXPECT_NE(HttpGet(target.port(), "/__admin/pause?for=50ms", "POST").find("paused"), std::string::npos);
  EXPECT_EQ(HttpGet(target.port(), "/"), "hello world\n");
  EXPECT_EQ(target.StatsField("requests"), 1u);  // admin requests are not counted
}

TEST(TargetCli, StopsOnSigtermAndAfterDuration) {
  Finished f = RunMeridian({"target", "--listen", "127.0.0.1:0", "--duration", "300ms"}, 10'000ms);
  EXPECT_EQ(f.exit_code, 0) << f.err;
  EXPECT_NE(f.out.find("listening on http://127.0.0.1:"), std::string::npos);
  EXPECT_NE(f.err.find("served 0 requests"), std::string::npos);
}

}  // namespace
}  // namespace meridian::testing
