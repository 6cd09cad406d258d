#include "http/server.h"

#include <gtest/gtest.h>

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

}  // namespace
}  // namespace meridian::http
