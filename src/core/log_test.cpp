#include "core/log.h"

#include <gtest/gtest.h>

#include "core/utf8.h"

namespace meridian {
namespace {

TEST(Log, EscapesWhatCouldForgeALineOrDriveATerminal) {
  EXPECT_EQ(EscapeForLog("plain text, ünïcode ✓"), "plain text, ünïcode ✓");
  EXPECT_EQ(EscapeForLog("ci\n12:00:00.000 info  allocation granted"),
            "ci\\n12:00:00.000 info  allocation granted");
  EXPECT_EQ(EscapeForLog("a\rb\tc"), "a\\rb\\tc");
  EXPECT_EQ(EscapeForLog("\x1b[2J\x1b]0;title\x07"), "\\x1b[2J\\x1b]0;title\\x07");
  EXPECT_EQ(EscapeForLog(std::string_view("nul\0x", 5)), "nul\\x00x");
  EXPECT_EQ(EscapeForLog("del\x7f"), "del\\x7f");
  EXPECT_EQ(EscapeForLog("\xc2\x9b"
                         "31m"),
            "\\u009b31m");  // C1 CSI
  EXPECT_EQ(EscapeForLog("bad \xff\xfe end"), "bad \\xff\\xfe end");
  EXPECT_EQ(EscapeForLog("cut \xe2\x9c"), "cut \\xe2\\x9c");  // a sequence cut short
}

}  // namespace
}  // namespace meridian

namespace meridian {
namespace {

// Strict RFC 3629, as JSON parsers check it (the lenient check let overlong forms and surrogates through, and
// nlohmann::json then threw on them).
TEST(Utf8, StrictAsJsonParsersAre) {
  EXPECT_EQ(FirstInvalidUtf8("plain ünïcode ✓ 😀"), std::string_view::npos);
  EXPECT_EQ(FirstInvalidUtf8("\xed\x9f\xbf"), std::string_view::npos);      // U+D7FF
  EXPECT_EQ(FirstInvalidUtf8("\xf4\x8f\xbf\xbf"), std::string_view::npos);  // U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8("ab\xc0\x80"), 2u);                            // overlong NUL
  EXPECT_EQ(FirstInvalidUtf8("\xe0\x8b\x80"), 0u);                          // overlong
  EXPECT_EQ(FirstInvalidUtf8("\xf0\x8f\xbf\xbf"), 0u);                      // overlong
  EXPECT_EQ(FirstInvalidUtf8("x\xed\xa0\x80"), 1u);                         // a surrogate
  EXPECT_EQ(FirstInvalidUtf8("\xf4\x90\x80\x80"), 0u);                      // above U+10FFFF
  EXPECT_EQ(FirstInvalidUtf8("\xe2\x9c"), 0u);                              // cut short
  EXPECT_EQ(FirstInvalidUtf8("\xff"), 0u);
}

}  // namespace
}  // namespace meridian
