#include "core/duration.h"

#include <gtest/gtest.h>

namespace meridian {
namespace {

TEST(ParseDuration, Units) {
  EXPECT_EQ(*ParseDuration("1ns"), 1);
  EXPECT_EQ(*ParseDuration("250us"), 250'000);
  EXPECT_EQ(*ParseDuration("250\xC2\xB5s"), 250'000);
  EXPECT_EQ(*ParseDuration("10ms"), 10'000'000);
  EXPECT_EQ(*ParseDuration("10s"), 10 * kNanosPerSecond);
  EXPECT_EQ(*ParseDuration("2m"), 120 * kNanosPerSecond);
  EXPECT_EQ(*ParseDuration("1h"), 3600 * kNanosPerSecond);
  EXPECT_EQ(*ParseDuration("90d"), 90 * 86400 * kNanosPerSecond);  // k6 extended durations
}

TEST(ParseDuration, CombinedAndFractional) {
  EXPECT_EQ(*ParseDuration("1m30s"), 90 * kNanosPerSecond);
  EXPECT_EQ(*ParseDuration("1.5s"), 1'500'000'000);
  EXPECT_EQ(*ParseDuration("0.5ms"), 500'000);
  EXPECT_EQ(*ParseDuration("1h2m3s"), (3600 + 120 + 3) * kNanosPerSecond);
  EXPECT_EQ(*ParseDuration("0s"), 0);
  EXPECT_EQ(*ParseDuration("0"), 0);  // zero needs no unit
}

TEST(ParseDuration, RejectsBadInputWithAClearMessage) {
  for (const char* bad : {"", "10", "00", "0.0", "s", "10x", "-1s", "1.s.", "ten seconds", "1s2"}) {
    auto r = ParseDuration(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().message.find("invalid duration"), std::string::npos) << r.error().message;
    EXPECT_NE(r.error().message.find("ms, s, m, h"), std::string::npos) << r.error().message;
  }
  EXPECT_NE(ParseDuration("10").error().message.find("missing unit"), std::string::npos);
}

TEST(FormatDuration, ThreeSignificantDigits) {
  EXPECT_EQ(FormatDuration(999), "999ns");
  EXPECT_EQ(FormatDuration(812'000), "812\xC2\xB5s");
  EXPECT_EQ(FormatDuration(12'345'000), "12.3ms");
  EXPECT_EQ(FormatDuration(1'250'000'000), "1.25s");
  EXPECT_EQ(FormatDuration(125 * kNanosPerSecond), "2m5s");
}

TEST(ByteSize, ParseAndFormat) {
  EXPECT_EQ(*ParseByteSize("12"), 12);
  EXPECT_EQ(*ParseByteSize("4k"), 4096);
  EXPECT_EQ(*ParseByteSize("1.5MiB"), 1572864);
  EXPECT_FALSE(ParseByteSize("12q").ok());
  EXPECT_FALSE(ParseByteSize("").ok());
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(1536), "1.5 KiB");
}

}  // namespace
}  // namespace meridian
