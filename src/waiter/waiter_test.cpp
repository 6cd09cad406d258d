// START documents: RUN.txt, services.json, the control plane's answer; and what is refused.
#include "waiter/waiter.h"

#include <gtest/gtest.h>

namespace meridian::waiter {
namespace {

TEST(ParseStart, RunTxtIsEpochSecondsWithAFraction) {
  auto s = ParseStart("1795327092.227768136\n", "x", "RUN.txt");
  ASSERT_TRUE(s.ok()) << s.error().message;
  ASSERT_TRUE(s->has_value());
  EXPECT_EQ((*s)->start_at_ns, 1795327092227768136LL);
  EXPECT_FALSE((*s)->delay_ns.has_value());
  s = ParseStart("1795327092.25", "x", "RUN.txt");
  ASSERT_TRUE(s.ok() && s->has_value());
  EXPECT_EQ((*s)->start_at_ns, 1795327092250000000LL);
  s = ParseStart("1795327092", "x", "RUN.txt");
  ASSERT_TRUE(s.ok() && s->has_value());
  EXPECT_EQ((*s)->start_at_ns, 1795327092000000000LL);
}

TEST(ParseStart, EmptyOrNotYetKnownIsNotAnError) {
  for (const char* text : {"", "  \n", R"({"run":"r-1","state":"preparing","server_ns":5})",
                           R"({"run":"r-1","start_at":0,"steps":[]})"}) {
    auto s = ParseStart(text, "x", "START");
    ASSERT_TRUE(s.ok()) << text << ": " << s.error().message;
    EXPECT_FALSE(s->has_value()) << text;
  }
}

TEST(ParseStart, ControlPlaneAnswerCarriesItsClock) {
  auto s = ParseStart(R"({"run":"r-1","state":"ready","start_at_ns":1795327092227768136,
                          "start_at":"1795327092.227768136","server_ns":1795327091000000000})",
                      "x", "url");
  ASSERT_TRUE(s.ok() && s->has_value()) << s.error().message;
  EXPECT_EQ((*s)->start_at_ns, 1795327092227768136LL);
  EXPECT_EQ((*s)->server_now_ns.value_or(0), 1795327091000000000LL);
}

TEST(ParseStart, ServicesJsonGivesTheServicesOwnDelay) {
  const std::string services = R"({"run":"r-1","start_at":1795327092.5,"agents":[],
    "steps":[{"name":"warm","run_delay":0},{"name":"ws-swarm","instances":2,"run_delay":10.25,"run_max_time":40}]})";
  auto s = ParseStart(services, "ws-swarm", "services.json");
  ASSERT_TRUE(s.ok() && s->has_value()) << s.error().message;
  EXPECT_NEAR(static_cast<double>((*s)->start_at_ns), 1795327092.5e9, 1e3);
  EXPECT_EQ((*s)->delay_ns.value_or(-1), 10'250'000'000LL);
  s = ParseStart(services, "ws-swarm#1", "services.json");  // an instance
  ASSERT_TRUE(s.ok() && s->has_value());
  EXPECT_EQ((*s)->delay_ns.value_or(-1), 10'250'000'000LL);
  s = ParseStart(services, "nope", "services.json");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().message, "services.json: lists no step 'nope' (steps: warm, ws-swarm)");
}

TEST(ParseStart, MalformedStartSaysWhatWasExpected) {
  auto s = ParseStart("soon", "x", "/tmp/RUN.txt");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("/tmp/RUN.txt: not a number: expected the start instant as epoch seconds"),
            std::string::npos)
      << s.error().message;
  EXPECT_NE(s.error().message.find("found 'soon'"), std::string::npos);
  s = ParseStart("1795327092227", "x", "RUN.txt");  // milliseconds
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("milliseconds"), std::string::npos) << s.error().message;
  s = ParseStart("{\"start_at\": ", "x", "START");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("not valid JSON"), std::string::npos);
  s = ParseStart(R"({"start_at": true})", "x", "START");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("start_at must be epoch seconds"), std::string::npos);
  // Instants whose nanoseconds would not fit (found by the fuzzer) are refused, whichever way they are
  // written.
  for (const char* far : {"9999999999.5", R"({"start_at": 9715327092.5})", R"({"start_at": "9999999999"})",
                          R"({"start_at_ns": 9223372036854775807})"}) {
    s = ParseStart(far, "x", "START");
    EXPECT_FALSE(s.ok()) << far;
  }
  s = ParseStart("-5", "x", "START");
  ASSERT_FALSE(s.ok());
}

}  // namespace
}  // namespace meridian::waiter
