#include "loadgen/template.h"

#include <gtest/gtest.h>

#include <regex>

#include "loadgen/declarative.h"

namespace meridian::loadgen {
namespace {

TEST(Template, StaticVarsAreSubstitutedAtCompileTime) {
  auto t = Template::Compile("{{base}}/cart/{{ sku }}", {{"base", "http://h"}, {"sku", "A1"}}, "url");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_TRUE(t->is_static());
  EXPECT_EQ(t->static_text(), "http://h/cart/A1");
}

TEST(Template, BuiltinsRenderPerIteration) {
  auto t = Template::Compile("/u/{{__VU}}/{{__ITER}}/{{__UUID}}/{{__RANDOM}}/{{__TIMESTAMP_MS}}", {}, "url");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->is_static());
  std::mt19937_64 rng(5);
  std::string out;
  t->Render(out, RenderContext{7, 3, &rng});
  EXPECT_TRUE(std::regex_match(out, std::regex(R"(/u/7/3/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-)"
                                               R"([0-9a-f]{12}/\d+/\d{13})")))
      << out;
}

TEST(Template, ErrorsNameTheFieldAndTheVariable) {
  auto unknown = Template::Compile("{{nope}}", {{"base", "x"}}, "scenarios.a.requests[0].url");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.error().message.find("scenarios.a.requests[0].url"), std::string::npos);
  EXPECT_NE(unknown.error().message.find("{{nope}}"), std::string::npos);
  EXPECT_NE(unknown.error().message.find("base"), std::string::npos);
  EXPECT_NE(unknown.error().message.find("__VU"), std::string::npos);
  auto open = Template::Compile("abc {{base", {}, "body");
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.error().message.find("no closing"), std::string::npos);
}

TEST(RequestProgram, PrebuildsStaticRequestsAndTemplatesDynamicOnes) {
  OriginTable origins;
  std::vector<RequestSpec> specs(3);
  specs[0].url = "{{base}}/";
  specs[1].method = "post";
  specs[1].url = "{{base}}/cart?vu={{__VU}}";
  specs[1].body = R"({"sku":"A1"})";
  specs[1].json = true;
  specs[1].name = "cart";
  specs[1].expect_status = {201};
  specs[2].url = "https://other:8443/x";
  auto p = RequestProgram::Compile(specs, {{"base", "http://127.0.0.1:8080"}}, 0, origins, "requests");
  ASSERT_TRUE(p.ok()) << p.error().message;
  const auto& r = (*p)->requests();
  ASSERT_EQ(r.size(), 3u);
  EXPECT_FALSE(r[0].dynamic);
  EXPECT_TRUE(r[0].prebuilt.starts_with("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"));
  EXPECT_EQ(r[0].name, "GET {{base}}/");
  EXPECT_TRUE(r[1].dynamic);
  EXPECT_EQ(r[1].method, "POST");
  EXPECT_FALSE(r[1].idempotent);
  EXPECT_EQ(r[1].series, 1);
  EXPECT_EQ(r[1].origin, 0u);
  EXPECT_EQ(r[2].origin, 1u);
  ASSERT_EQ(origins.origins().size(), 2u);
  EXPECT_TRUE(origins.origins()[1].tls());
  EXPECT_EQ(origins.origins()[1].host_header, "other:8443");
}

TEST(RequestProgram, RejectsPerIterationHostsAndBadInput) {
  OriginTable origins;
  std::vector<RequestSpec> specs(1);
  specs[0].url = "http://host{{__VU}}/";
  auto p = RequestProgram::Compile(specs, {}, 0, origins, "requests");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().message.find("host"), std::string::npos);
  specs[0].url = "nota url";
  EXPECT_NE(RequestProgram::Compile(specs, {}, 0, origins, "requests").error().message.find("requests[0].url"),
            std::string::npos);
  specs[0].url = "http://h/";
  specs[0].method = "BAD METHOD";
  EXPECT_FALSE(RequestProgram::Compile(specs, {}, 0, origins, "requests").ok());
  specs[0].method = "GET";
  specs[0].expect_status = {999};
  EXPECT_FALSE(RequestProgram::Compile(specs, {}, 0, origins, "requests").ok());
  EXPECT_FALSE(RequestProgram::Compile({}, {}, 0, origins, "requests").ok());
}

TEST(ClassifyStatus, DefaultAndExpected) {
  using stats::ErrorKind;
  EXPECT_EQ(ClassifyStatus(200, {}), ErrorKind::kNone);
  EXPECT_EQ(ClassifyStatus(302, {}), ErrorKind::kNone);
  EXPECT_EQ(ClassifyStatus(404, {}), ErrorKind::kHttp4xx);
  EXPECT_EQ(ClassifyStatus(503, {}), ErrorKind::kHttp5xx);
  EXPECT_EQ(ClassifyStatus(404, {404}), ErrorKind::kNone);
  EXPECT_EQ(ClassifyStatus(200, {201}), ErrorKind::kCheck);
}

}  // namespace
}  // namespace meridian::loadgen
