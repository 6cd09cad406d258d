#include "core/log.h"

#include <gtest/gtest.h>

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
