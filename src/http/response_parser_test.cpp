#include "http/response_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace meridian::http {
namespace {

struct Parsed {
  bool complete = false;
  bool failed = false;
  int status = 0;
  bool keep_alive = false;
  uint64_t body_bytes = 0;
  size_t consumed = 0;
  std::string body;
  std::string headers;
  uint32_t informational = 0;
};

// Feeds `wire` in pieces cut at `cuts` (offsets), then EOF if `eof`.
Parsed ParseWire(const std::string& wire, const std::vector<size_t>& cuts, bool eof = false,
                 bool head = false) {
  ResponseParser p;
  Parsed out;
  p.CaptureBody(&out.body, 1 << 20);
  p.CaptureHeaders(&out.headers);
  p.Reset(head);
  size_t pos = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(wire.size());
  for (size_t end : ends) {
    if (end < pos || p.complete() || p.failed()) continue;
    const size_t want = end - pos;
    const size_t n = p.Feed(wire.data() + pos, want);
    out.consumed += n;
    pos += n;
    if (n < want) break;  // the parser stopped early: complete or failed
  }
  if (eof && !p.complete() && !p.failed()) p.FeedEof();
  out.complete = p.complete();
  out.failed = p.failed();
  out.status = p.status();
  out.keep_alive = p.keep_alive();
  out.body_bytes = p.body_bytes();
  out.informational = p.informational_responses();
  return out;
}

// Parses `wire` whole, then split at every single offset, then byte by byte; all must agree.
Parsed RunAllSplits(const std::string& wire, bool eof = false, bool head = false) {
  Parsed whole = ParseWire(wire, {}, eof, head);
  for (size_t cut = 1; cut < wire.size(); ++cut) {
    Parsed split = ParseWire(wire, {cut}, eof, head);
    EXPECT_EQ(split.complete, whole.complete) << "cut at " << cut;
    EXPECT_EQ(split.failed, whole.failed) << "cut at " << cut;
    EXPECT_EQ(split.status, whole.status) << "cut at " << cut;
    EXPECT_EQ(split.body, whole.body) << "cut at " << cut;
    if (whole.complete) {
      EXPECT_EQ(split.headers, whole.headers) << "cut at " << cut;
    }
    EXPECT_EQ(split.consumed, whole.consumed) << "cut at " << cut;
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < wire.size(); ++i) every.push_back(i);
  Parsed bytewise = ParseWire(wire, every, eof, head);
  EXPECT_EQ(bytewise.complete, whole.complete);
  EXPECT_EQ(bytewise.body, whole.body);
  EXPECT_EQ(bytewise.consumed, whole.consumed);
  return whole;
}

TEST(ResponseParser, ContentLength) {
  const std::string wire = "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x\r\n\r\nhello world\n";
  Parsed p = RunAllSplits(wire);
  EXPECT_TRUE(p.complete);
  EXPECT_EQ(p.status, 200);
  EXPECT_TRUE(p.keep_alive);
  EXPECT_EQ(p.body, "hello world\n");
  EXPECT_EQ(p.consumed, wire.size());
  EXPECT_EQ(p.headers, "HTTP/1.1 200 OK\r\nContent-Length: 12\r\nServer: x\r\n\r\n");
}

TEST(ResponseParser, StopsAtTheEndOfAResponse_Pipelining) {
  const std::string one = "HTTP/1.1 204 No Content\r\n\r\n";
  Parsed p = ParseWire(one + one, {});
  EXPECT_TRUE(p.complete);
  EXPECT_EQ(p.consumed, one.size());
}

TEST(ResponseParser, ChunkedWithExtensionsAndTrailers) {
  const std::string wire =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n"
      "5;name=value;quoted=\"a;b\"\r\nhello\r\n"
      "1 \r\n \r\n"
      "6\r\nworld!\r\n"
      "0;last\r\nX-Checksum: abc\r\nX-Other: 1\r\n\r\n";
  Parsed p = RunAllSplits(wire);
  EXPECT_TRUE(p.complete) << p.failed;
  EXPECT_EQ(p.body, "hello world!");
  EXPECT_TRUE(p.keep_alive);
  EXPECT_EQ(p.consumed, wire.size());
  EXPECT_NE(p.headers.find("X-Checksum: abc"), std::string::npos);
}

TEST(ResponseParser, ChunkedHexAndEmpty) {
  const std::string body(0x1a, 'z');
  const std::string wire =
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1A\r\n" + body + "\r\n0\r\n\r\n";
  Parsed p = RunAllSplits(wire);
  EXPECT_TRUE(p.complete);
  EXPECT_EQ(p.body, body);
  Parsed empty = RunAllSplits("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
  EXPECT_TRUE(empty.complete);
  EXPECT_EQ(empty.body_bytes, 0u);
}

TEST(ResponseParser, ConnectionClose) {
  Parsed p = RunAllSplits("HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_TRUE(p.complete);
  EXPECT_FALSE(p.keep_alive);
  Parsed list = ParseWire("HTTP/1.1 200 OK\r\nConnection: foo, Close\r\nContent-Length: 0\r\n\r\n", {});
  EXPECT_FALSE(list.keep_alive);
}

TEST(ResponseParser, Http10DefaultsToClose) {
  Parsed p = RunAllSplits("HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
  EXPECT_TRUE(p.complete);
  EXPECT_FALSE(p.keep_alive);
  Parsed ka = ParseWire("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", {});
  EXPECT_TRUE(ka.keep_alive);
}

TEST(ResponseParser, InformationalResponsesAreSkipped) {
  const std::string wire =
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
      "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\nabc";
  Parsed p = RunAllSplits(wire);
  EXPECT_TRUE(p.complete);
  EXPECT_EQ(p.status, 201);
  EXPECT_EQ(p.informational, 2u);
  EXPECT_EQ(p.body, "abc");
  EXPECT_EQ(p.headers, "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\n");
}

TEST(ResponseParser, HeadAnd204And304HaveNoBody) {
  Parsed head = RunAllSplits("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n", false, /*head=*/true);
  EXPECT_TRUE(head.complete);
  EXPECT_EQ(head.body_bytes, 0u);
  EXPECT_TRUE(head.keep_alive);
  EXPECT_TRUE(ParseWire("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", {}).complete);
  EXPECT_TRUE(ParseWire("HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n", {}).complete);
}

TEST(ResponseParser, BodyWithoutLengthEndsAtClose) {
  const std::string wire = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end";
  Parsed open = ParseWire(wire, {});
  EXPECT_FALSE(open.complete);
  Parsed p = RunAllSplits(wire, /*eof=*/true);
  EXPECT_TRUE(p.complete);
  EXPECT_FALSE(p.keep_alive);
  EXPECT_EQ(p.body, "until the end");
  // Transfer-Encoding whose last coding is not chunked is also delimited by close.
  Parsed te = ParseWire("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\nxyz", {}, true);
  EXPECT_TRUE(te.complete);
  EXPECT_EQ(te.body, "xyz");
}

TEST(ResponseParser, TruncatedResponsesFailAtEof) {
  EXPECT_TRUE(ParseWire("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc", {}, true).failed);
  EXPECT_TRUE(ParseWire("HTTP/1.1 200 OK\r\nContent-Len", {}, true).failed);
  EXPECT_TRUE(ParseWire("", {}, true).failed);
  EXPECT_TRUE(ParseWire("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab", {}, true).failed);
}

TEST(ResponseParser, ToleratesBareLfAndMissingReason) {
  Parsed p = RunAllSplits("HTTP/1.1 200\nContent-Length: 2\n\nok");
  EXPECT_TRUE(p.complete);
  EXPECT_EQ(p.body, "ok");
  Parsed q = RunAllSplits("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n");
  EXPECT_TRUE(q.complete);
  EXPECT_EQ(q.status, 404);
}

TEST(ResponseParser, RepeatedIdenticalContentLengthIsAccepted) {
  Parsed p = ParseWire("HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\nok", {});
  EXPECT_TRUE(p.complete);
  EXPECT_EQ(p.body, "ok");
}

TEST(ResponseParser, TransferEncodingWinsOverContentLengthAndForcesClose) {
  Parsed p = ParseWire(
      "HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", {});
  EXPECT_TRUE(p.complete);
  EXPECT_EQ(p.body, "ok");
  EXPECT_FALSE(p.keep_alive);
}

TEST(ResponseParser, RejectsMalformedInput) {
  const char* bad[] = {
      "HTTP/2.0 200 OK\r\n\r\n",
      "HTTX/1.1 200 OK\r\n\r\n",
      "HTTP/1.1 20 OK\r\n\r\n",
      "HTTP/1.1 abc OK\r\n\r\n",
      "HTTP/1.1 099 OK\r\n\r\n",
      "HTTP/1.1 200OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nBad Header: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: 1\r\n continued\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1x\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n",
      "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999\r\n\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nokXX",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffff\r\n",
      "HTTP/1.1 200 OK\r\nX: a\x01b\r\n\r\n",
      "HTTP/1.1 200 OK\rX",
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX: a\rb\r\n\r\n",
  };
  for (const char* wire : bad) {
    Parsed p = RunAllSplits(wire);
    EXPECT_TRUE(p.failed) << wire;
  }
}

TEST(ResponseParser, HeaderSectionIsBounded) {
  std::string wire = "HTTP/1.1 200 OK\r\n";
  while (wire.size() < ResponseParser::kMaxHeaderBytes + 100)
    wire += "X-Filler: 0123456789012345678901234567\r\n";
  wire += "\r\n";
  ResponseParser p;
  p.Reset();
  p.Feed(wire);
  EXPECT_TRUE(p.failed());
  EXPECT_STREQ(p.error(), "response header section too large");
}

TEST(ResponseParser, ResetKeepsCapturesAndClearsState) {
  ResponseParser p;
  std::string body;
  p.CaptureBody(&body, 3);
  p.Reset();
  p.Feed("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabcde");
  EXPECT_TRUE(p.complete());
  EXPECT_EQ(body, "abc");  // capture limited, counting is not
  EXPECT_EQ(p.body_bytes(), 5u);
  p.Reset();
  EXPECT_FALSE(p.complete());
  EXPECT_EQ(p.status(), 0);
  EXPECT_FALSE(p.started());
}

}  // namespace
}  // namespace meridian::http
