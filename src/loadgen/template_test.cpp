#include "loadgen/template.h"

#include <gtest/gtest.h>

#include <string_view>
#include <vector>

#include "loadgen/declarative.h"

namespace meridian::loadgen {
namespace {

TEST(Template, StaticVarsAreSubstitutedAtCompileTime) {
  auto t = Template::Compile("{{base}}/cart/{{ sku }}", {{"base", "http://h"}, {"sku", "A1"}}, "url");
  ASSERT_TRUE(t.ok()) << t.error().message;
  EXPECT_TRUE(t->is_static());
  EXPECT_EQ(t->static_text(), "http://h/cart/A1");
}

bool IsHex(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}
bool IsDigits(std::string_view s) {
  return !s.empty() && s.find_first_not_of("0123456789") == std::string_view::npos;
}

TEST(Template, BuiltinsRenderPerIteration) {
  auto t = Template::Compile("/u/{{__VU}}/{{__ITER}}/{{__UUID}}/{{__RANDOM}}/{{__TIMESTAMP_MS}}", {}, "url");
  ASSERT_TRUE(t.ok());
  EXPECT_FALSE(t->is_static());
  std::mt19937_64 rng(5);
  std::string out;
  t->Render(out, RenderContext{7, 3, &rng});
  ASSERT_TRUE(out.starts_with("/u/7/3/")) << out;
  std::vector<std::string_view> parts;
  std::string_view rest = std::string_view(out).substr(7);
  for (size_t slash; (slash = rest.find('/')) != std::string_view::npos; rest.remove_prefix(slash + 1)) {
    parts.push_back(rest.substr(0, slash));
  }
  parts.push_back(rest);
  ASSERT_EQ(parts.size(), 3u) << out;
  const std::string_view uuid = parts[0];  // 8-4-4-4-12 hex, version 4, variant 10
  ASSERT_EQ(uuid.size(), 36u) << uuid;
  EXPECT_TRUE(IsHex(uuid.substr(0, 8)) && IsHex(uuid.substr(9, 4)) && IsHex(uuid.substr(14, 4)) &&
              IsHex(uuid.substr(19, 4)) && IsHex(uuid.substr(24, 12)))
      << uuid;
  EXPECT_EQ(uuid[14], '4');
  EXPECT_NE(std::string_view("89ab").find(uuid[19]), std::string_view::npos);
  EXPECT_TRUE(IsDigits(parts[1])) << parts[1];
  EXPECT_TRUE(IsDigits(parts[2]) && parts[2].size() == 13) << parts[2];
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
  EXPECT_NE(
      RequestProgram::Compile(specs, {}, 0, origins, "requests").error().message.find("requests[0].url"),
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
