#include "http/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <thread>

#include "http/fetch.h"

namespace meridian::http {
namespace {

class ServerFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(loop_.Init().ok());
    server_ = std::make_unique<HttpServer>(loop_, ServerOptions{1024, 20, 60'000'000'000},
                                           [this](ServerRequest& r, Responder out) { Handle(r, out); });
    ASSERT_TRUE(server_->Listen(net::ParseListenAddress("127.0.0.1:0").value()).ok());
    thread_ = std::thread([this] { loop_.Run(); });
  }
  void TearDown() override {
    loop_.Post([this] { loop_.Stop(); });
    thread_.join();
    server_.reset();
  }
  void Handle(ServerRequest& r, Responder out) {
    if (r.path == "/later") {
      pending_ = out;  // answered by the next request
      return;
    }
    if (r.path == "/release") {
      pending_.Send(ServerResponse{200, "text/plain", "released", {}});
    }
    if (r.path == "/extra") return out.Send(ServerResponse{200, "text/plain", r.Header("x-extra"), {}});
    ServerResponse resp;
    resp.body = r.method + " " + r.path + " q=" + r.Query("x") + " auth=" + r.Header("authorization") +
                " body=" + r.body;
    out.Send(resp);
  }
  std::string Base() { return "http://127.0.0.1:" + std::to_string(server_->port()); }

  net::EventLoop loop_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  Responder pending_;
};

TEST_F(ServerFixture, AnswersOnOneKeepAliveConnection) {
  auto c = BlockingClient::Create(Base(), "tok");
  ASSERT_TRUE(c.ok());
  for (int i = 0; i < 3; ++i) {
    auto r = c->Request("POST", "/a/b?x=1%202", "hello");
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "POST /a/b q=1 2 auth=Bearer tok body=hello");
  }
}

TEST_F(ServerFixture, BoundsBodiesAndHeaders) {
  auto c = BlockingClient::Create(Base(), "");
  ASSERT_TRUE(c.ok());
  auto big = c->Request("POST", "/x", std::string(2000, 'a'));
  ASSERT_TRUE(big.ok()) << big.error().message;
  EXPECT_EQ(big->status, 413);
  EXPECT_NE(big->body.find("body_too_large"), std::string::npos);
  auto again = c->Request("GET", "/ok");  // the server closed; the client reconnects
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ(again->status, 200);
}

TEST_F(ServerFixture, RespondsLaterForLongPolls) {
  auto waiting = BlockingClient::Create(Base(), "");
  auto other = BlockingClient::Create(Base(), "");
  ASSERT_TRUE(waiting.ok() && other.ok());
  std::thread t([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    auto r = other->Request("GET", "/release");
    EXPECT_TRUE(r.ok());
  });
  auto r = waiting->Request("GET", "/later");
  t.join();
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(r->body, "released");
}

// A raw loopback connection to the server for what BlockingClient will not send (pipelines, partial heads,
// HTTP/1.0, Expect).
class Raw {
 public:
  explicit Raw(uint16_t port) {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  }
  ~Raw() {
    if (fd_ >= 0) close(fd_);
  }
  void Send(const std::string& s) const {
    ASSERT_EQ(send(fd_, s.data(), s.size(), MSG_NOSIGNAL), ssize_t(s.size()));
  }
  // Reads until `count` complete responses (by Content-Length) arrived, the peer closed, or 5 s passed.
  std::string Read(int count = 1, int timeout_ms = 5000) {
    return ReadWhile([&] { return Complete() < count; }, timeout_ms);
  }
  // Reads until what arrived ends with `tail` (a streamed body has no length), the peer closed, or
  // `timeout_ms` passed.
  std::string ReadUntil(std::string_view tail, int timeout_ms = 5000) {
    return ReadWhile([&] { return !got_.ends_with(tail); }, timeout_ms);
  }
  bool closed() const { return closed_; }
  int fd() const { return fd_; }

 private:
  template <class More>
  std::string ReadWhile(More more, int timeout_ms) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    while (more() && !closed_ && std::chrono::steady_clock::now() < until) {
      pollfd p{fd_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      char buf[65536];
      const ssize_t n = recv(fd_, buf, sizeof buf, 0);
      if (n <= 0) {
        closed_ = true;
        break;
      }
      got_.append(buf, static_cast<size_t>(n));
    }
    return got_;
  }
  int Complete() const {
    int n = 0;
    size_t at = 0;
    while (true) {
      const size_t end = got_.find("\r\n\r\n", at);
      if (end == std::string::npos) return n;
      const std::string head = got_.substr(at, end - at);
      if (head.starts_with("HTTP/1.1 100")) {
        at = end + 4;
        continue;
      }
      const size_t cl = head.find("Content-Length: ");
      const size_t len = cl == std::string::npos ? 0 : std::stoul(head.substr(cl + 16));
      if (got_.size() < end + 4 + len) return n;
      at = end + 4 + len;
      ++n;
    }
  }
  int fd_ = -1;
  std::string got_;
  bool closed_ = false;
};

// A server with a head check (token "good", a per-route body limit) and small limits, to see each bound.
class BoundedServer : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(loop_.Init().ok());
    ServerOptions o;
    o.max_body_bytes = 64 * 1024;
    o.max_buffered_bytes = 96 * 1024;
    o.max_pipelined_bytes = 4 * 1024;
    o.max_connections = 4;
    o.request_timeout_ns = 1'000'000'000;
    o.max_stream_backlog_bytes = 64 * 1024;
    server_ = std::make_unique<HttpServer>(
        loop_, o,
        [this](ServerRequest& r, Responder out) {
          ++depth_;
          max_depth_ = std::max(max_depth_, depth_);
          if (r.path == "/hold") {
            held_ = out;
          } else if (r.path == "/stream") {
            stream_ = out.StartStream(ServerResponse{200, "text/event-stream", ": hello\n\n", {}});
          } else {
            if (r.path == "/release") held_.Send(ServerResponse{200, "text/plain", "released", {}});
            out.Send(ServerResponse{200, "text/plain", r.path + " " + std::to_string(r.body.size()), {}});
          }
          --depth_;
        },
        [](const ServerRequest& head, size_t* max_body) -> std::optional<ServerResponse> {
          if (head.Header("authorization") != "good") return ServerResponse{401, "text/plain", "no", {}};
          if (head.path == "/small") *max_body = 100;
          return std::nullopt;
        });
    ASSERT_TRUE(server_->Listen(net::ParseListenAddress("127.0.0.1:0").value()).ok());
    thread_ = std::thread([this] { loop_.Run(); });
  }
  void TearDown() override {
    loop_.Post([this] { loop_.Stop(); });
    thread_.join();
    server_.reset();
  }
  // Reads a server figure on its loop thread.
  template <class F>
  auto OnLoop(F f) {
    std::promise<decltype(f())> p;
    loop_.Post([&] { p.set_value(f()); });
    return p.get_future().get();
  }

  net::EventLoop loop_;
  std::unique_ptr<HttpServer> server_;
  std::thread thread_;
  Responder held_;
  StreamWriter stream_;
  int depth_ = 0, max_depth_ = 0;
};

// A streamed response: the head and first bytes at once, chunks as they are written, the end of the chunked
// body, then the connection closes. Sending a plain response for the same request afterwards does nothing.
TEST_F(BoundedServer, AStreamIsChunkedAndEndsWithItsConnection) {
  Raw r(server_->port());
  r.Send("GET /stream HTTP/1.1\r\nAuthorization: good\r\n\r\n");
  std::string got = r.ReadUntil(": hello\n\n\r\n");
  EXPECT_TRUE(got.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")) << got;
  EXPECT_NE(got.find("Transfer-Encoding: chunked\r\n"), std::string::npos) << got;
  EXPECT_EQ(got.find("Content-Length"), std::string::npos) << got;
  EXPECT_TRUE(got.ends_with("\r\n\r\n9\r\n: hello\n\n\r\n")) << got;
  EXPECT_TRUE(
      OnLoop([this] { return stream_.alive() && stream_.Write("id: 1\ndata: x\n\n") && stream_.Write(""); }));
  got = r.ReadUntil("f\r\nid: 1\ndata: x\n\n\r\n");
  EXPECT_TRUE(got.ends_with("f\r\nid: 1\ndata: x\n\n\r\n")) << got;
  OnLoop([this] {
    stream_.End();
    return 0;
  });
  got = r.ReadUntil("never");
  EXPECT_TRUE(r.closed());
  EXPECT_TRUE(got.ends_with("\r\n0\r\n\r\n")) << got;
  EXPECT_FALSE(OnLoop([this] { return stream_.alive() || stream_.Write("late"); }));
}

// An HTTP/1.0 client gets the body unframed, ended by the close.
TEST_F(BoundedServer, AStreamToAnHttp10ClientEndsWithTheConnection) {
  Raw r(server_->port());
  r.Send("GET /stream HTTP/1.0\r\nAuthorization: good\r\n\r\n");
  std::string got = r.ReadUntil(": hello\n\n");
  EXPECT_EQ(got.find("chunked"), std::string::npos) << got;
  OnLoop([this] { return stream_.Write("data: y\n\n") && (stream_.End(), true); });
  got = r.ReadUntil("never");
  EXPECT_TRUE(r.closed());
  EXPECT_TRUE(got.ends_with("\r\n\r\n: hello\n\ndata: y\n\n")) << got;
}

// One write larger than the bound (a long run's history) is queued whole and arrives: the bound is on what
// still waits, not on one write.
TEST_F(BoundedServer, AWriteLargerThanTheBoundIsSentWhole) {
  Raw r(server_->port());
  r.Send("GET /stream HTTP/1.1\r\nAuthorization: good\r\n\r\n");
  r.ReadUntil(": hello\n\n\r\n");
  const std::string history(1024 * 1024, 'h');
  EXPECT_TRUE(OnLoop([&] { return stream_.Write(history); }));
  std::string got = r.ReadUntil(history + "\r\n");
  EXPECT_NE(got.find("100000\r\n" + history + "\r\n"), std::string::npos);
  EXPECT_TRUE(OnLoop([&] { return stream_.Write("data: after\n\n"); }));  // what waited was taken
  got = r.ReadUntil("data: after\n\n\r\n");
  EXPECT_TRUE(got.ends_with("data: after\n\n\r\n"));
}

// A client that stops reading is dropped once max_stream_backlog_bytes wait for it: the server's memory per
// viewer is bounded whatever the viewer does.
TEST_F(BoundedServer, AStreamThatIsNotReadIsDropped) {
  Raw r(server_->port());
  r.Send("GET /stream HTTP/1.1\r\nAuthorization: good\r\n\r\n");
  r.ReadUntil(": hello\n\n\r\n");
  const std::string chunk(16 * 1024, 'd');
  const size_t written = OnLoop([&] {
    size_t n = 0;
    while (n < (256u << 20) && stream_.Write(chunk)) n += chunk.size();
    return n;
  });
  EXPECT_LT(written, 256u << 20) << "the stream was never dropped";
  EXPECT_FALSE(OnLoop([this] { return stream_.alive(); }));
  EXPECT_EQ(OnLoop([this] { return server_->connections(); }), 0u);
}

// Answering a held request from another request's handler must not run the held connection's next
// pipelined request on the same stack (the control plane's allocation queue was walked there and died).
TEST_F(BoundedServer, AnsweringAHeldRequestNeverRunsTheHandlerOnItsStack) {
  Raw a(server_->port());
  a.Send(
      "GET /hold HTTP/1.1\r\nAuthorization: good\r\n\r\nGET /next HTTP/1.1\r\nAuthorization: good\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  Raw b(server_->port());
  b.Send("GET /release HTTP/1.1\r\nAuthorization: good\r\n\r\n");
  EXPECT_NE(b.Read().find("/release 0"), std::string::npos);
  const std::string got = a.Read(2);
  EXPECT_NE(got.find("released"), std::string::npos) << got;
  EXPECT_NE(got.find("/next 0"), std::string::npos) << got;
  EXPECT_EQ(OnLoop([this] { return max_depth_; }), 1);
}

// A refused head is answered at once; its body is never waited for nor buffered.
TEST_F(BoundedServer, ARefusedHeadIsAnsweredBeforeItsBody) {
  Raw r(server_->port());
  r.Send("POST /x HTTP/1.1\r\nContent-Length: 60000\r\n\r\n");  // no token, body not sent
  const std::string got = r.Read();
  EXPECT_TRUE(got.starts_with("HTTP/1.1 401")) << got;
  EXPECT_NE(got.find("Connection: close"), std::string::npos);
  EXPECT_EQ(OnLoop([this] { return server_->buffered_bytes(); }), 0u);
  Raw small(server_->port());  // the route's own limit, also before the body
  small.Send("POST /small HTTP/1.1\r\nAuthorization: good\r\nContent-Length: 101\r\n\r\n");
  EXPECT_TRUE(small.Read().starts_with("HTTP/1.1 413"));
}

// Bodies are reserved against one budget until their response: beyond it, 503 with Retry-After.
TEST_F(BoundedServer, BodiesShareOneBudget) {
  Raw first(server_->port()), second(server_->port());
  first.Send("POST /hold HTTP/1.1\r\nAuthorization: good\r\nContent-Length: 60000\r\n\r\n" +
             std::string(60000, 'x'));
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(OnLoop([this] { return server_->buffered_bytes(); }), 60000u);
  second.Send("POST /y HTTP/1.1\r\nAuthorization: good\r\nContent-Length: 40000\r\n\r\n");
  const std::string got = second.Read();
  EXPECT_TRUE(got.starts_with("HTTP/1.1 503")) << got;
  EXPECT_NE(got.find("Retry-After: 1"), std::string::npos);
  Raw release(server_->port());
  release.Send("GET /release HTTP/1.1\r\nAuthorization: good\r\n\r\n");
  release.Read();
  EXPECT_EQ(OnLoop([this] { return server_->buffered_bytes(); }), 0u);
}

// Behind a held request the server reads at most max_pipelined_bytes, then stops reading the connection.
TEST_F(BoundedServer, APipelineBehindAHeldRequestIsNotRead) {
  Raw r(server_->port());
  r.Send("GET /hold HTTP/1.1\r\nAuthorization: good\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  fcntl(r.fd(), F_SETFL, O_NONBLOCK);
  const std::string chunk(64 * 1024, 'p');
  size_t sent = 0;
  for (int quiet = 0; quiet < 20 && sent < (64u << 20);) {
    const ssize_t n = send(r.fd(), chunk.data(), chunk.size(), MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      quiet = 0;
    } else {
      ++quiet;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  EXPECT_LT(sent, 64u << 20) << "the server kept reading";
  EXPECT_LE(OnLoop([this] { return server_->buffered_input_bytes(); }), 4u * 1024);
}

// A request that does not arrive in full within request_timeout gets 408, however slowly its bytes come.
TEST_F(BoundedServer, ASlowRequestTimesOut) {
  Raw r(server_->port());
  r.Send("GET /x HTTP/1.1\r\n");
  std::string got;
  for (int i = 0; i < 40 && got.empty(); ++i) {
    r.Send("X-Drip: 1\r\n");  // every byte keeps the connection active; the request still times out
    got = r.Read(1, 100);
  }
  EXPECT_TRUE(got.starts_with("HTTP/1.1 408")) << got;
}

// An HTTP/1.0 client that asks to keep the connection is told so; Expect: 100-continue is answered once the
// head passed the check, and never for a refused one.
TEST_F(BoundedServer, Http10KeepAliveAndExpectContinue) {
  Raw old(server_->port());
  old.Send("GET /a HTTP/1.0\r\nAuthorization: good\r\nConnection: keep-alive\r\n\r\n");
  std::string got = old.Read();
  EXPECT_NE(got.find("Connection: keep-alive"), std::string::npos) << got;
  old.Send("GET /b HTTP/1.0\r\nAuthorization: good\r\n\r\n");
  got = old.Read(2);
  EXPECT_NE(got.find("/b 0"), std::string::npos) << got;
  EXPECT_NE(got.find("Connection: close"), std::string::npos) << got;

  Raw expect(server_->port());
  expect.Send("POST /c HTTP/1.1\r\nAuthorization: good\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  expect.Send("hello");
  got = expect.Read();
  EXPECT_TRUE(got.starts_with("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200")) << got;
  EXPECT_NE(got.find("/c 5"), std::string::npos);

  Raw refused(server_->port());
  refused.Send("POST /c HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  got = refused.Read();
  EXPECT_TRUE(got.starts_with("HTTP/1.1 401")) << got;
}

// Fields the server reads as one value must not repeat.
TEST_F(BoundedServer, ARepeatedAuthorizationIsRefused) {
  Raw r(server_->port());
  r.Send("GET /x HTTP/1.1\r\nAuthorization: good\r\nAuthorization: other\r\n\r\n");
  const std::string got = r.Read();
  EXPECT_TRUE(got.starts_with("HTTP/1.1 400")) << got;
  EXPECT_NE(got.find("repeated"), std::string::npos);
}

// At max_connections the least recently active idle connection makes room; held ones are kept.
TEST_F(BoundedServer, ConnectionsAreCappedClosingTheOldestIdle) {
  Raw held(server_->port());
  held.Send("GET /hold HTTP/1.1\r\nAuthorization: good\r\n\r\n");
  std::vector<std::unique_ptr<Raw>> idle;
  for (int i = 0; i < 3; ++i) {
    idle.push_back(std::make_unique<Raw>(server_->port()));
    idle.back()->Send("GET /i HTTP/1.1\r\nAuthorization: good\r\n\r\n");
    idle.back()->Read();
  }
  Raw fresh(server_->port());
  fresh.Send("GET /fresh HTTP/1.1\r\nAuthorization: good\r\n\r\n");
  EXPECT_NE(fresh.Read().find("/fresh 0"), std::string::npos);
  idle[0]->Read(2, 1000);
  EXPECT_TRUE(idle[0]->closed()) << "the oldest idle connection stays open";
  EXPECT_FALSE(held.closed());
  EXPECT_EQ(OnLoop([this] { return server_->connections(); }), 4u);
}

// A header sent with every request survives moving the client (the agent's secret travels this way).
TEST_F(ServerFixture, ClientHeadersSurviveAMove) {
  auto c = BlockingClient::Create(Base(), "tok");
  ASSERT_TRUE(c.ok());
  c->SetHeader("X-Extra", "kept");
  BlockingClient moved = std::move(c).value();
  auto r = moved.Request("GET", "/extra");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->body, "kept");
}

}  // namespace
}  // namespace meridian::http
