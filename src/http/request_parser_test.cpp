#include "http/request_parser.h"

#include <gtest/gtest.h>

#include "http/response_parser.h"

namespace meridian::http {
namespace {

TEST(RequestParser, CompleteHead) {
  const std::string wire = "POST /cart?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 7\r\n\r\n{\"a\":1}";
  RequestHead head;
  const char* err = nullptr;
  ASSERT_EQ(ParseRequestHead(wire, head, &err), ParseStatus::kComplete);
  EXPECT_EQ(head.method, "POST");
  EXPECT_EQ(head.target, "/cart?x=1");
  EXPECT_EQ(head.content_length, 7);
  EXPECT_TRUE(head.keep_alive);
  EXPECT_EQ(wire.substr(head.head_bytes), "{\"a\":1}");
}

TEST(RequestParser, IncompleteAtEveryCut) {
  const std::string wire = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
  for (size_t cut = 0; cut < wire.size(); ++cut) {
    RequestHead head;
    const char* err = nullptr;
    EXPECT_EQ(ParseRequestHead(wire.substr(0, cut), head, &err), ParseStatus::kIncomplete) << cut;
  }
  RequestHead head;
  const char* err = nullptr;
  ASSERT_EQ(ParseRequestHead(wire, head, &err), ParseStatus::kComplete);
  EXPECT_FALSE(head.keep_alive);
}

TEST(RequestParser, Http10AndChunkedAndExpect) {
  RequestHead head;
  const char* err = nullptr;
  ASSERT_EQ(ParseRequestHead("GET / HTTP/1.0\r\n\r\n", head, &err), ParseStatus::kComplete);
  EXPECT_FALSE(head.keep_alive);
  ASSERT_EQ(ParseRequestHead("PUT /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n",
                             head, &err),
            ParseStatus::kComplete);
  EXPECT_TRUE(head.chunked);
  EXPECT_TRUE(head.expect_continue);
}

TEST(RequestParser, Rejects) {
  const char* bad[] = {
      "GET /\r\n\r\n",
      "GET  / HTTP/1.1\r\n\r\n",
      "GET / HTTP/2\r\n\r\n",
      "G(T / HTTP/1.1\r\n\r\n",
      "GET / HTTP/1.1\r\nBad Name: 1\r\n\r\n",
      "GET / HTTP/1.1\r\n folded\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
      "GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "GET / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
      "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
  };
  for (const char* wire : bad) {
    RequestHead head;
    const char* err = nullptr;
    EXPECT_EQ(ParseRequestHead(wire, head, &err), ParseStatus::kError) << wire;
    EXPECT_NE(err, nullptr);
  }
  RequestHead head;
  const char* err = nullptr;
  EXPECT_EQ(ParseRequestHead(std::string(kMaxRequestHeadBytes + 10, 'a'), head, &err), ParseStatus::kError);
}

TEST(RequestParser, QueryParam) {
  bool found = false;
  EXPECT_EQ(QueryParam("/p?status=404&delay=10ms", "delay", &found), "10ms");
  EXPECT_TRUE(found);
  EXPECT_EQ(QueryParam("/p?close", "close", &found), "");
  EXPECT_TRUE(found);
  EXPECT_EQ(QueryParam("/p?a=1", "b", &found), "");
  EXPECT_FALSE(found);
  EXPECT_EQ(QueryParam("/p", "a", &found), "");
}

TEST(BodyFraming, ChunkedRequestBodyViaResponseParser) {
  ResponseParser body;
  body.BeginBody(true, 0);
  const std::string wire = "3;ext=1\r\nabc\r\n0\r\nTrailer: x\r\n\r\nNEXT";
  EXPECT_EQ(body.Feed(wire), wire.size() - 4);
  EXPECT_TRUE(body.complete());
  EXPECT_EQ(body.body_bytes(), 3u);
  body.BeginBody(false, 5);
  EXPECT_EQ(body.Feed("12345GET"), 5u);
  EXPECT_TRUE(body.complete());
  body.BeginBody(false, 0);
  EXPECT_TRUE(body.complete());
}

}  // namespace
}  // namespace meridian::http
