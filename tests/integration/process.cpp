#include "process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "store/postgres_testing.h"

extern char** environ;

namespace meridian::testing {

std::string MeridianBinary() { return MERIDIAN_BINARY; }

Process::Process(const std::vector<std::string>& args, const std::vector<std::string>& env) {
  std::vector<std::string> env_lines;
  for (char** e = environ; *e; ++e) {
    const std::string line = *e;
    const std::string name = line.substr(0, line.find('='));
    bool replaced = false;
    for (const auto& extra : env) replaced = replaced || extra.starts_with(name + "=");
    if (!replaced) env_lines.push_back(line);
  }
  env_lines.insert(env_lines.end(), env.begin(), env.end());
  std::vector<char*> envp;
  for (auto& l : env_lines) envp.push_back(l.data());
  envp.push_back(nullptr);
  int out_pipe[2], err_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0) throw std::runtime_error("pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], STDERR_FILENO);
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  // A program without a slash is looked up in $PATH (systemd-analyze, openssl).
  const int spawned = posix_spawnp(&pid_, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (spawned != 0) throw std::runtime_error("posix_spawn " + args[0]);
  close(out_pipe[1]);
  close(err_pipe[1]);
  out_fd_ = out_pipe[0];
  err_fd_ = err_pipe[0];
  fcntl(out_fd_, F_SETFL, O_NONBLOCK);
  fcntl(err_fd_, F_SETFL, O_NONBLOCK);
}

Process::~Process() {
  if (!exited_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
  if (out_fd_ >= 0) close(out_fd_);
  if (err_fd_ >= 0) close(err_fd_);
}

void Process::Pump(int timeout_ms) {
  pollfd fds[2] = {{out_fd_, POLLIN, 0}, {err_fd_, POLLIN, 0}};
  poll(fds, 2, timeout_ms);
  char buf[65536];
  for (int i = 0; i < 2; ++i) {
    const int fd = i == 0 ? out_fd_ : err_fd_;
    std::string& into = i == 0 ? out_ : err_;
    while (true) {
      const ssize_t n = read(fd, buf, sizeof buf);
      if (n <= 0) break;
      into.append(buf, static_cast<size_t>(n));
    }
  }
}

std::string Process::ReadLine(std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    const size_t nl = out_.find('\n', line_pos_);
    if (nl != std::string::npos) {
      std::string line = out_.substr(line_pos_, nl - line_pos_);
      line_pos_ = nl + 1;
      return line;
    }
    Pump(50);
  }
  return "";
}

const std::string& Process::Stderr() {
  Pump(0);
  return err_;
}

void Process::Signal(int sig) {
  if (!exited_) kill(pid_, sig);
}

Finished Process::Wait(std::chrono::milliseconds deadline) {
  const auto until = std::chrono::steady_clock::now() + deadline;
  Finished f;
  while (!exited_) {
    Pump(20);
    if (waitpid(pid_, &status_, WNOHANG) == pid_) {
      exited_ = true;
      break;
    }
    if (std::chrono::steady_clock::now() > until) {
      kill(pid_, SIGKILL);
      waitpid(pid_, &status_, 0);
      exited_ = true;
      Pump(0);
      f.exit_code = -1;
      f.out = out_;
      f.err = err_ + "\n[killed at the test deadline]";
      return f;
    }
  }
  for (int i = 0; i < 5; ++i) Pump(0);
  f.exit_code = WIFEXITED(status_) ? WEXITSTATUS(status_) : 128 + WTERMSIG(status_);
  f.out = out_;
  f.err = err_;
  return f;
}

Finished RunMeridian(const std::vector<std::string>& args, std::chrono::milliseconds deadline) {
  std::vector<std::string> full{MeridianBinary()};
  full.insert(full.end(), args.begin(), args.end());
  Process p(full);
  return p.Wait(deadline);
}

Target::Target(std::vector<std::string> extra) {
  std::vector<std::string> args{MeridianBinary(), "target", "--listen", "127.0.0.1:0", "--threads", "1"};
  args.insert(args.end(), extra.begin(), extra.end());
  process_ = std::make_unique<Process>(args);
  const std::string line = process_->ReadLine(std::chrono::milliseconds(10'000));
  const size_t at = line.find("://");
  if (at == std::string::npos) throw std::runtime_error("target did not start: '" + line + "'");
  const size_t start = line.rfind(' ', at) + 1;
  const size_t end = line.find(' ', at);
  url_ = line.substr(start, end - start);
  port_ = std::stoi(url_.substr(url_.rfind(':') + 1));
}

std::string Target::Stats() const {
  return url_.starts_with("https") ? HttpsGet(port_, "/__admin/stats") : HttpGet(port_, "/__admin/stats");
}

uint64_t Target::StatsField(const std::string& field) const {
  const auto j = nlohmann::json::parse(Stats());
  return j.at(field).get<uint64_t>();
}

namespace {
// A blocking TCP connection to 127.0.0.1:port whose reads and writes give up after 5 s; -1 if refused.
int ConnectLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

std::string BodyOf(const std::string& response) {
  const size_t body = response.find("\r\n\r\n");
  return body == std::string::npos ? "" : response.substr(body + 4);
}
}  // namespace

std::string HttpGet(int port, const std::string& path, const std::string& method) {
  std::string response;
  const int fd = ConnectLoopback(port);
  if (fd >= 0) {
    const std::string req = method + " " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
      char buf[4096];
      ssize_t n;
      while ((n = read(fd, buf, sizeof buf)) > 0) response.append(buf, static_cast<size_t>(n));
    }
    close(fd);
  }
  return BodyOf(response);
}

HttpReply HttpCall(int port, const std::string& method, const std::string& path,
                   const std::vector<std::string>& headers, const std::string& body) {
  HttpReply reply;
  std::string response;
  const int fd = ConnectLoopback(port);
  if (fd < 0) return reply;
  std::string req = method + " " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n";
  for (const auto& h : headers) req += h + "\r\n";
  req += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  if (write(fd, req.data(), req.size()) == static_cast<ssize_t>(req.size())) {
    char buf[4096];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) response.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (response.starts_with("HTTP/1.1 ")) reply.status = std::atoi(response.c_str() + 9);
  reply.body = BodyOf(response);
  reply.head = response.substr(0, response.find("\r\n\r\n"));
  return reply;
}

std::string HttpsGet(int port, const std::string& path) {
  std::string response;
  SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());  // verification is not the point here
  SSL* ssl = SSL_new(ctx);
  const int fd = ConnectLoopback(port);
  if (fd >= 0) {
    SSL_set_fd(ssl, fd);
    SSL_set_tlsext_host_name(ssl, "admin.test");
    if (SSL_connect(ssl) == 1) {
      const std::string req = "GET " + path + " HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
      SSL_write(ssl, req.data(), static_cast<int>(req.size()));
      char buf[4096];
      int n;
      while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) response.append(buf, static_cast<size_t>(n));
    }
  }
  SSL_free(ssl);
  SSL_CTX_free(ctx);
  if (fd >= 0) close(fd);
  return BodyOf(response);
}

Finished RunFull(const std::vector<std::string>& args, std::chrono::milliseconds deadline) {
  Process p(args);
  return p.Wait(deadline);
}

bool GenerateTestCertificate(const std::string& dir) {
  const std::string cmd =
      "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=localhost "
      "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
      dir + "/key.pem -out " + dir + "/cert.pem 2>/dev/null";
  return std::system(cmd.c_str()) == 0;
}

int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

std::string TestStoreSpec(const std::string& dir) {
  const char* pg = std::getenv("MERIDIAN_TEST_POSTGRES");
  if (!pg || !*pg) return "sqlite:" + dir + "/meridian.db";
  std::string error;
  std::string url = store::NewPostgresDatabase(&error);
  if (url.empty()) ADD_FAILURE() << error;
  return url;
}

}  // namespace meridian::testing
