#include "core/result.h"

#include <gtest/gtest.h>

#include <memory>

namespace meridian {
namespace {

Result<int> Half(int v) {
  if (v % 2) return MakeError(ErrorCode::kInvalidArgument, "odd");
  return v / 2;
}

TEST(Result, ValueAndError) {
  auto ok = Half(4);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 2);
  auto bad = Half(3);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message, "odd");
  EXPECT_STREQ(ErrorCodeName(ErrorCode::kTls), "tls");
}

TEST(Result, MoveOnlyAndVoid) {
  Result<std::unique_ptr<int>> r(std::make_unique<int>(7));
  std::unique_ptr<int> p = std::move(r).value();
  EXPECT_EQ(*p, 7);
  Result<void> v;
  EXPECT_TRUE(v.ok());
  Result<void> e = MakeError(ErrorCode::kIo, "disk");
  EXPECT_FALSE(e.ok());
  EXPECT_EQ(e.error().message, "disk");
}

}  // namespace
}  // namespace meridian
