#include "core/json.h"

#include <gtest/gtest.h>

namespace meridian {
namespace {

TEST(Json, NeverThrowsOnBytesThatAreNotUtf8) {
  const nlohmann::json j = {{"log", std::string("ok \xff\xfe end")}, {"n", 1}};
  EXPECT_EQ(JsonText(j), "{\"log\":\"ok \xEF\xBF\xBD\xEF\xBF\xBD end\",\"n\":1}");
  EXPECT_THROW((void)j.dump(), nlohmann::json::type_error);  // what it replaces
  const nlohmann::ordered_json o = {{"b", 1}, {"a", 2}};
  EXPECT_EQ(JsonText(o), "{\"b\":1,\"a\":2}");
  EXPECT_EQ(JsonText(o, 2), "{\n  \"b\": 1,\n  \"a\": 2\n}");
}

}  // namespace
}  // namespace meridian
