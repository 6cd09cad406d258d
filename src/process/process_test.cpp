#include "process/process.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

namespace meridian::process {
namespace {

bool Has(const std::vector<std::string>& env, const std::string& line) {
  return std::find(env.begin(), env.end(), line) != env.end();
}

bool HasName(const std::vector<std::string>& env, const std::string& name) {
  return std::any_of(env.begin(), env.end(), [&](const std::string& l) { return l.starts_with(name + "="); });
}

TEST(ChildEnvironment, MachineOnlyKeepsThePathAndDropsEverythingElse) {
  setenv("MERIDIAN_TOKEN", "secret-token", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "secret-key", 1);
  setenv("LC_TIME", "C", 1);
  const auto env = ChildEnvironment(Inherit::kMachine, {}, {{"STEP", "1"}});
  EXPECT_TRUE(HasName(env, "PATH"));
  EXPECT_TRUE(Has(env, "LC_TIME=C"));
  EXPECT_TRUE(Has(env, "STEP=1"));
  EXPECT_FALSE(HasName(env, "MERIDIAN_TOKEN"));
  EXPECT_FALSE(HasName(env, "AWS_SECRET_ACCESS_KEY"));
  EXPECT_EQ(MachineEnvironment().count("AWS_SECRET_ACCESS_KEY"), 0u);
}

TEST(ChildEnvironment, AllKeepsEverythingButTheHiddenNamesAndSetReplaces) {
  setenv("MERIDIAN_TOKEN", "secret-token", 1);
  setenv("MERIDIAN_TEST_KEPT", "kept", 1);
  setenv("MERIDIAN_TEST_REPLACED", "old", 1);
  const auto env = ChildEnvironment(Inherit::kAll, {"MERIDIAN_TOKEN"}, {{"MERIDIAN_TEST_REPLACED", "new"}});
  EXPECT_TRUE(Has(env, "MERIDIAN_TEST_KEPT=kept"));
  EXPECT_TRUE(Has(env, "MERIDIAN_TEST_REPLACED=new"));
  EXPECT_FALSE(Has(env, "MERIDIAN_TEST_REPLACED=old"));
  EXPECT_FALSE(HasName(env, "MERIDIAN_TOKEN"));
  // A hidden name the caller sets on purpose is passed.
  EXPECT_TRUE(Has(ChildEnvironment(Inherit::kAll, {"MERIDIAN_TOKEN"}, {{"MERIDIAN_TOKEN", "mine"}}),
                  "MERIDIAN_TOKEN=mine"));
}

TEST(FindExecutable, SearchesThePathAndTakesNamesWithASlashAsTheyAre) {
  EXPECT_EQ(FindExecutable("sh").substr(FindExecutable("sh").rfind('/')), "/sh");
  EXPECT_EQ(FindExecutable("./x"), "./x");
  EXPECT_EQ(FindExecutable("meridian-no-such-command"), "");
}

// Output of a child, read until it closes its end; then it is reaped.
struct Ran {
  std::string out;
  int status = 0;
};
Ran Collect(pid_t pid, int read_end) {
  Ran r;
  char buf[4096];
  ssize_t n;
  while ((n = read(read_end, buf, sizeof buf)) > 0) r.out.append(buf, static_cast<size_t>(n));
  close(read_end);
  while (waitpid(pid, &r.status, 0) < 0 && errno == EINTR) {
  }
  return r;
}

class Spawning : public ::testing::TestWithParam<bool> {};  // the parameter: a death signal (vfork + exec)

TEST_P(Spawning, GivesTheChildItsArgumentsEnvironmentDescriptorsDirectoryAndGroup) {
  const std::string dir =
      std::filesystem::temp_directory_path() / ("meridian-process-" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  int out[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  SpawnOptions o;
  o.argv = {"sh", "-c", "echo \"$1 $GREETING\"; pwd; echo err >&2; cat; cut -d' ' -f5 /proc/$$/stat", "sh",
            "hello"};
  o.env = ChildEnvironment(Inherit::kMachine, {}, {{"GREETING", "world"}});
  o.fds = {{0, -1}, {1, out[1]}, {2, out[1]}};
  o.cwd = dir;
  o.own_group = true;
  o.death_signal = GetParam() ? SIGKILL : 0;
  auto pid = Spawn(o);
  close(out[1]);
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  const Ran r = Collect(*pid, out[0]);
  EXPECT_EQ(r.out, "hello world\n" + dir + "\nerr\n" + std::to_string(*pid) + "\n");
  EXPECT_TRUE(WIFEXITED(r.status) && WEXITSTATUS(r.status) == 0);
  std::filesystem::remove_all(dir);
}

TEST_P(Spawning, MovesDescriptorsThatATargetWouldOverwrite) {
  // The parent's 40 becomes the child's 41 and the other way round.
  int a[2], b[2];
  ASSERT_EQ(pipe2(a, O_CLOEXEC), 0);
  ASSERT_EQ(pipe2(b, O_CLOEXEC), 0);
  ASSERT_EQ(dup3(a[1], 40, O_CLOEXEC), 40);
  ASSERT_EQ(dup3(b[1], 41, O_CLOEXEC), 41);
  close(a[1]);
  close(b[1]);
  SpawnOptions o;
  o.argv = {"sh", "-c", "echo to-41 >/proc/self/fd/41; echo to-40 >/proc/self/fd/40"};  // dash: one-digit fds
  o.env = ChildEnvironment(Inherit::kMachine, {}, {});
  o.fds = {{41, 40}, {40, 41}};
  o.death_signal = GetParam() ? SIGKILL : 0;
  auto pid = Spawn(o);
  close(40);
  close(41);
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  int status = 0;
  waitpid(*pid, &status, 0);
  char buf[64] = {};
  EXPECT_EQ(std::string(buf, static_cast<size_t>(read(a[0], buf, sizeof buf))), "to-41\n");
  EXPECT_EQ(std::string(buf, static_cast<size_t>(read(b[0], buf, sizeof buf))), "to-40\n");
  close(a[0]);
  close(b[0]);
}

TEST_P(Spawning, NamesACommandThatIsNotFoundOrCannotRun) {
  SpawnOptions o;
  o.argv = {"meridian-no-such-command"};
  o.death_signal = GetParam() ? SIGKILL : 0;
  auto missing = Spawn(o);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(missing.error().message, "meridian-no-such-command: command not found");

  const std::string file =
      std::filesystem::temp_directory_path() / ("meridian-noexec-" + std::to_string(getpid()));
  std::ofstream(file) << "#!/bin/sh\n";
  std::filesystem::permissions(file,
                               std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  o.argv = {file};
  auto denied = Spawn(o);
  std::filesystem::remove(file);
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error().code, ErrorCode::kIo);
  EXPECT_EQ(denied.error().message, "cannot start " + file + ": Permission denied");
}

TEST_P(Spawning, RunsAnExecutableTextFileWithoutInterpreterLineUnderTheShell) {
  const std::string file =
      std::filesystem::temp_directory_path() / ("meridian-noshebang-" + std::to_string(getpid()));
  std::ofstream(file) << "echo \"no interpreter line: $1\"\n";
  std::filesystem::permissions(file, std::filesystem::perms::owner_all);
  int out[2];
  ASSERT_EQ(pipe2(out, O_CLOEXEC), 0);
  SpawnOptions o;
  o.argv = {file, "arg"};
  o.env = ChildEnvironment(Inherit::kMachine, {}, {});
  o.fds = {{1, out[1]}};
  o.death_signal = GetParam() ? SIGKILL : 0;
  auto pid = Spawn(o);
  close(out[1]);
  ASSERT_TRUE(pid.ok()) << pid.error().message;
  const Ran r = Collect(*pid, out[0]);
  std::filesystem::remove(file);
  EXPECT_EQ(r.out, "no interpreter line: arg\n");
}

INSTANTIATE_TEST_SUITE_P(PosixSpawnAndVfork, Spawning, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& p) {
                           return p.param ? "vfork" : "posix_spawn";
                         });

TEST(Spawn, AChildThatDiesWithItsParentEndsWithTheThreadThatStartedIt) {
  pid_t child = -1;
  std::thread([&] {
    SpawnOptions o;
    o.argv = {"sleep", "600"};
    o.env = ChildEnvironment(Inherit::kMachine, {}, {});
    o.death_signal = SIGKILL;
    auto pid = Spawn(o);
    if (pid.ok()) child = *pid;
  }).join();
  ASSERT_GT(child, 0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

}  // namespace
}  // namespace meridian::process
