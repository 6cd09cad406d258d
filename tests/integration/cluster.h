#pragma once
// A control plane (`meridian serve` with a SQLite or PostgreSQL store and three tokens) and its agents as
// real processes on loopback, for the integration tests.

#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <signal.h>
#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "process.h"

namespace meridian::testing {

using namespace std::chrono_literals;

inline std::string Sha256(const std::string& s) {
  unsigned char md[32];
  unsigned int len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr);
  std::string hex;
  for (unsigned i = 0; i < len; ++i)
    hex += "0123456789abcdef"[md[i] >> 4], hex += "0123456789abcdef"[md[i] & 15];
  return hex;
}

constexpr const char* kRunsToken = "runs-secret-1";
constexpr const char* kAgentToken = "agent-secret-2";
constexpr const char* kReadToken = "read-secret-3";

class Cluster {
 public:
  // `store`: the server's store (default: TestStoreSpec, a new SQLite file or PostgreSQL database).
  explicit Cluster(const std::string& store = "") {
    char tmpl[] = "/tmp/meridian-dist-XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::ofstream(dir_ + "/runs.token") << kRunsToken << "\n";
    std::ofstream(dir_ + "/agent.token") << kAgentToken << "\n";
    std::ofstream(dir_ + "/server.yaml")
        << "store: " << (store.empty() ? TestStoreSpec(dir_) : store) << "\n"
        << "data_dir: " << dir_ << "\n"
        << "long_poll: 500ms\n"
        << "tokens:\n"
        << "  - { name: ci, scopes: [runs:read, runs:write], sha256: " << Sha256(kRunsToken) << " }\n"
        << "  - { name: agents, scopes: [agent], sha256: " << Sha256(kAgentToken) << " }\n"
        << "  - { name: dashboard, scopes: [runs:read], sha256: " << Sha256(kReadToken) << " }\n";
  }
  ~Cluster() {
    agents_.clear();
    server_.reset();
    std::filesystem::remove_all(dir_);
  }

  void StartServer(int port = 0) {
    server_ = std::make_unique<Process>(std::vector<std::string>{
        MeridianBinary(), "serve", "-c", dir_ + "/server.yaml", "-l", "127.0.0.1:" + std::to_string(port)});
    const std::string line = server_->ReadLine(10'000ms);
    ASSERT_NE(line.find("listening on http://"), std::string::npos) << line;
    url_ = line.substr(line.find("http://"));
    while (!url_.empty() && (url_.back() == '\n' || url_.back() == '\r')) url_.pop_back();
    port_ = std::stoi(url_.substr(url_.rfind(':') + 1));
  }
  // SIGTERM, and what the server printed.
  Finished StopServer() {
    server_->Signal(SIGTERM);
    Finished f = server_->Wait(10'000ms);
    server_.reset();
    return f;
  }
  void KillServer() {
    server_->Signal(SIGKILL);
    server_->Wait(5'000ms);
    server_.reset();
  }
  // An agent that serves one run and exits (`once`), or every run until it is stopped.
  // `control`: its --control (default: this server's URL).
  Process& StartAgent(const std::string& region, const std::string& name, bool once = true,
                      const std::string& control = "") {
    std::vector<std::string> args{MeridianBinary(), "agent",
                                  "--control",      control.empty() ? url_ : control,
                                  "--region",       region,
                                  "--name",         name,
                                  "--token-file",   dir_ + "/agent.token",
                                  "--workers",      "1"};
    if (once) args.push_back("--once");
    agents_.push_back(std::make_unique<Process>(args));
    return *agents_.back();
  }
  // Waits until the server lists `n` agents.
  void AwaitAgents(size_t n) {
    for (int i = 0; i < 200; ++i) {
      auto r = HttpCall(port_, "GET", "/v1/agents", {std::string("Authorization: Bearer ") + kReadToken});
      if (r.status == 200 && nlohmann::json::parse(r.body)["agents"].size() >= n) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "agents did not register";
  }
  // Waits until the server lists a run in state running (10 s at most).
  bool AwaitRunning() {
    for (int i = 0; i < 200; ++i) {
      auto r = HttpCall(port_, "GET", "/v1/runs?active=true",
                        {std::string("Authorization: Bearer ") + kReadToken});
      if (r.status == 200 && r.body.find("\"running\"") != std::string::npos) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  std::string WritePlan(const std::string& name, const std::string& text) {
    const std::string path = dir_ + "/" + name;
    std::ofstream(path) << text;
    return path;
  }
  std::vector<std::string> Submit(const std::string& plan) {
    return {MeridianBinary(),     "submit", plan, "--control", url_, "--token-file",
            dir_ + "/runs.token", "--json", "-q"};
  }
  const std::string& url() const { return url_; }
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }
  std::vector<std::unique_ptr<Process>>& agents() { return agents_; }

 private:
  std::string dir_;
  std::unique_ptr<Process> server_;
  std::vector<std::unique_ptr<Process>> agents_;
  std::string url_;
  int port_ = 0;
};

}  // namespace meridian::testing
