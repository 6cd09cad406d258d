#include "http/api.h"

#include <gtest/gtest.h>

namespace meridian::http {
namespace {

TEST(Api, BodiesAreParsedStrictly) {
  JsonProblem p;
  EXPECT_TRUE(ParseStrictJson(R"({"a": [1, {"b": "c"}], "d": null})").ok());
  auto deep = ParseStrictJson(std::string(65, '[') + std::string(65, ']'), kMaxJsonDepth, &p);
  ASSERT_FALSE(deep.ok());
  EXPECT_NE(p.message.find("nest more than 64 levels"), std::string::npos) << p.message;
  EXPECT_TRUE(ParseStrictJson(std::string(64, '[') + std::string(64, ']')).ok());
  EXPECT_TRUE(
      ParseStrictJson(R"({"s": "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["})")
          .ok())
      << "brackets in strings do not nest";
  auto twice = ParseStrictJson(R"({"a": 1, "b": {"a": 2}, "a": 3})", kMaxJsonDepth, &p);
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(p.field, "a");
  EXPECT_TRUE(ParseStrictJson(R"({"a": {"x": 1}, "b": {"x": 2}})").ok()) << "the same key in two objects";
  // A number too large for a double was an exception that no handler caught (found by fuzz/api_bodies).
  auto huge = ParseStrictJson(R"({"count": 1e999})", kMaxJsonDepth, &p);
  ASSERT_FALSE(huge.ok());
  EXPECT_NE(p.message.find("not valid JSON"), std::string::npos) << p.message;
  EXPECT_FALSE(ParseStrictJson("{\"a\": \"\xff\"}").ok()) << "strings are UTF-8";
  ServerRequest req;
  req.body = R"([1, 2])";
  EXPECT_THROW(ParseBody(req), ApiError);
  req.body = "";
  EXPECT_TRUE(ParseBody(req).empty());
}

TEST(Api, WholeNumbersAreCheckedNotConverted) {
  const nlohmann::json body = nlohmann::json::parse(
      R"({"half": 1.5, "two": 2.0, "neg": -1, "big": 4294967296, "ok": 7, "text": "7", "huge": 1e300})");
  const auto code = [&](auto fn) {
    try {
      fn();
    } catch (const ApiError& e) {
      return e.field;
    }
    return std::string("accepted");
  };
  EXPECT_EQ(code([&] { Field<int64_t>(body, "half", 0); }), "half");
  EXPECT_EQ(Field<int64_t>(body, "two", 0), 2);
  EXPECT_EQ(code([&] { Field<uint32_t>(body, "neg", 0); }), "neg");
  EXPECT_EQ(code([&] { Field<uint32_t>(body, "big", 0); }), "big");
  EXPECT_EQ(Field<int64_t>(body, "big", 0), 4294967296);
  EXPECT_EQ(Field<uint32_t>(body, "ok", 0), 7u);
  EXPECT_EQ(code([&] { Field<int64_t>(body, "text", 0); }), "text");
  EXPECT_EQ(code([&] { Field<int64_t>(body, "huge", 0); }), "huge");
  EXPECT_EQ(Field<int64_t>(body, "absent", 5), 5);
  EXPECT_EQ(code([&] { Field<int64_t>(body, "absent", 5, true); }), "absent");
}

TEST(Api, QueryNumbersAreCheckedByName) {
  ServerRequest req;
  req.query = "limit=10&instance=4294967296&bad=abc&neg=-5&empty=&plus=%2B3";
  EXPECT_EQ(QueryInt(req, "limit", 1, 1, 100), 10);
  EXPECT_EQ(QueryInt(req, "absent", 42, 1, 100), 42);
  EXPECT_EQ(QueryInt(req, "plus", 0, 0, 10), 3);
  for (const char* key : {"instance", "bad", "neg", "empty"}) {
    try {
      QueryInt(req, key, 0, 0, UINT32_MAX);
      ADD_FAILURE() << key << " was accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      EXPECT_EQ(e.field, key);
    }
  }
}

TEST(Api, PathSegmentsAreSplitThenDecoded) {
  EXPECT_EQ(SplitPath("/v1/runs/r-1/"), (std::vector<std::string>{"v1", "runs", "r-1"}));
  EXPECT_EQ(SplitPath("//v1///runs"), (std::vector<std::string>{"v1", "runs"}));
  const std::string names[] = {"warm up: cache (50%)", "a/b?c#d", "ü", std::string("nul\0byte", 8), ""};
  for (const std::string& name : names) {
    const std::string encoded = EncodePathSegment(name);
    EXPECT_EQ(encoded.find_first_of(" /?#:"), std::string::npos) << encoded;
    EXPECT_EQ(encoded.find('\0'), std::string::npos) << encoded;
    const auto p = SplitPath("/v1/runs/r-1/steps/" + encoded + "/log");
    if (name.empty()) {
      EXPECT_EQ(p.size(), 5u);  // an empty segment is no segment, as before
      continue;
    }
    ASSERT_EQ(p.size(), 6u) << encoded;
    EXPECT_EQ(p[4], name);
  }
  EXPECT_EQ(EncodePathSegment("r-1_a.b~c"), "r-1_a.b~c");
  EXPECT_EQ(EncodePathSegment("a b:c"), "a%20b%3Ac");
  EXPECT_EQ(SplitPath("/x/%7e%7E")[1], "~~");
  for (const char* bad : {"/v1/runs/%zz", "/v1/runs/%4", "/v1/runs/ab%"}) {
    try {
      SplitPath(bad);
      ADD_FAILURE() << bad << " was accepted";
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400) << bad;
      EXPECT_NE(e.message.find("malformed percent escape"), std::string::npos) << e.message;
    }
  }
}

TEST(Api, JsonTextNeverThrows) {
  nlohmann::json j = {{"log", std::string("bytes \xff\xfe here")}};
  EXPECT_EQ(JsonText(j), "{\"log\":\"bytes \xEF\xBF\xBD\xEF\xBF\xBD here\"}");
}

TEST(Api, StoreErrorsAre503sThatKeepTheStoresMessageFromTheClient) {
  const ApiError e = StoreUnavailable(
      MakeError(ErrorCode::kIo, "store: database or disk is full (/srv/m.db)"), "store the report");
  EXPECT_EQ(e.status, 503);
  EXPECT_EQ(e.code, "store_unavailable");
  EXPECT_EQ(e.message, "could not store the report (the store is unavailable; retry shortly)");
  ASSERT_EQ(e.headers.size(), 1u);
  EXPECT_EQ(e.headers[0].first, "Retry-After");
  EXPECT_EQ(StoreUnavailableAnswer("could not renew allocation a-1").message,
            "could not renew allocation a-1 (the store is unavailable; retry shortly)");
}

}  // namespace
}  // namespace meridian::http
