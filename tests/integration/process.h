#pragma once
// Test helpers: run the real `meridian` binary as a child process with deadlines (nothing here can hang a
// test), and a minimal blocking HTTP GET for the target's admin API.

#include <stdlib.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace meridian::testing {

// A directory under /tmp, removed with everything in it on destruction.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/meridian-test-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
  void Write(const std::string& name, const std::string& text) const {
    std::filesystem::create_directories(std::filesystem::path(path + "/" + name).parent_path());
    std::ofstream(path + "/" + name) << text;
  }
};

// Path of the binary under test (set by CMake).
std::string MeridianBinary();

struct Finished {
  int exit_code = -1;  // -1: killed at the deadline
  std::string out;
  std::string err;
};

class Process {
 public:
  // `env`: NAME=VALUE entries added to (or replacing in) the test's own environment.
  explicit Process(const std::vector<std::string>& args, const std::vector<std::string>& env = {});
  ~Process();  // kills the child if it still runs
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // Reads stdout until a line is complete or the deadline passes; returns "" on time-out.
  std::string ReadLine(std::chrono::milliseconds deadline);
  void Signal(int sig);
  // What the child wrote to stderr so far.
  const std::string& Stderr();
  // Waits for exit (killing the child at the deadline) and collects the remaining output.
  Finished Wait(std::chrono::milliseconds deadline);

 private:
  void Pump(int timeout_ms);
  pid_t pid_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string out_;
  std::string err_;
  size_t line_pos_ = 0;
  bool exited_ = false;
  int status_ = 0;
};

// Runs a full command line (program first) to completion (killed at `deadline`).
Finished RunFull(const std::vector<std::string>& args,
                 std::chrono::milliseconds deadline = std::chrono::milliseconds(90'000));

// Runs meridian with args to completion (at most `deadline`).
Finished RunMeridian(const std::vector<std::string>& args,
                     std::chrono::milliseconds deadline = std::chrono::milliseconds(60'000));

// A `meridian target` on 127.0.0.1:0, stopped on destruction.
class Target {
 public:
  explicit Target(std::vector<std::string> extra = {});
  const std::string& url() const { return url_; }  // "http://127.0.0.1:PORT" or https
  int port() const { return port_; }
  // GET /__admin/stats, parsed fields.
  std::string Stats() const;
  uint64_t StatsField(const std::string& field) const;

 private:
  std::unique_ptr<Process> process_;
  std::string url_;
  int port_ = 0;
};

// A blocking GET to 127.0.0.1:port with a deadline; returns the body ("" on failure).
std::string HttpGet(int port, const std::string& path, const std::string& method = "GET");

// The same over TLS (no certificate verification; SNI "admin.test").
std::string HttpsGet(int port, const std::string& path);

struct HttpReply {
  int status = 0;  // 0: no response
  std::string body;
  std::string head;  // status line and headers
};
// One request to 127.0.0.1:port (Connection: close) with extra header lines ("Authorization: Bearer x").
HttpReply HttpCall(int port, const std::string& method, const std::string& path,
                   const std::vector<std::string>& headers = {}, const std::string& body = "");

// A port on 127.0.0.1 with nothing listening.
int UnusedPort();

// The store a test's control plane uses: "sqlite:DIR/meridian.db", or, where ctest runs the test against the
// test PostgreSQL server (MERIDIAN_TEST_POSTGRES set: the `postgres.` copies of the distributed and lease
// tests), a new database on it. A database that cannot be made fails the test.
std::string TestStoreSpec(const std::string& dir);

// Writes a self-signed certificate for localhost and 127.0.0.1 (DIR/cert.pem, DIR/key.pem) with the openssl
// command; false if that failed.
bool GenerateTestCertificate(const std::string& dir);

}  // namespace meridian::testing
