// StatsD lines, and samples sent over real UDP sockets binned by second and instance.
#include "steps/statsd.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <thread>

#include "core/clock.h"

namespace meridian::steps {
namespace {

using Kind = stats::NameEntry::Kind;

TEST(Statsd, ParsesCountersGaugesAndTimers) {
  auto c = ParseStatsdLine("ws.connections:5|c|@0.5");
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->name, "ws.connections");
  EXPECT_EQ(c->kind, Kind::kCounter);
  EXPECT_EQ(c->value, 5);
  EXPECT_EQ(c->rate, 0.5);
  auto g = ParseStatsdLine("open:-3|g|#env:test");
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->kind, Kind::kGauge);
  EXPECT_TRUE(g->delta);
  EXPECT_EQ(g->value, -3);
  auto plus = ParseStatsdLine("open:+2|g");
  ASSERT_TRUE(plus.ok());
  EXPECT_TRUE(plus->delta);
  EXPECT_EQ(plus->value, 2);
  for (const char* t : {"lat:12.5|ms", "lat:12.5|h", "lat:12.5|d"}) {
    auto m = ParseStatsdLine(t);
    ASSERT_TRUE(m.ok()) << t;
    EXPECT_EQ(m->kind, Kind::kTimer);
    EXPECT_EQ(m->value, 12.5);
  }
}

TEST(Statsd, BadLinesSayWhy) {
  for (const auto& [line, why] :
       std::vector<std::pair<std::string, std::string>>{{"nocolon", "no ':'"},
                                                        {"a:1", "no '|type'"},
                                                        {"a:x|c", "'x' is not a number"},
                                                        {"a:1|q", "unknown type 'q'"},
                                                        {"a:1|s", "sets (|s) are not supported"},
                                                        {"a b:1|c", "the name must be"},
                                                        {"a:1|c|@2", "sample rate"},
                                                        {"a:-1|ms", "a timer must be"},
                                                        {"a:nan|g", "is not a number"}}) {
    auto r = ParseStatsdLine(line);
    ASSERT_FALSE(r.ok()) << line;
    EXPECT_NE(r.error().message.find(why), std::string::npos) << line << ": " << r.error().message;
  }
}

void Send(const std::string& address, const std::string& datagram) {
  const int fd = socket(AF_INET, SOCK_DGRAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(address.find(':') + 1))));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sendto(fd, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  close(fd);
}

TEST(Statsd, SamplesArriveBinnedBySecondAndInstance) {
  auto r = StatsdReceiver::Open({"swarm#0", "swarm#1"});
  ASSERT_TRUE(r.ok()) << r.error().message;
  auto names = std::make_shared<stats::NameRegistry>();
  std::vector<stats::IntervalSnapshot> emitted;
  std::vector<std::string> logged;
  (*r)->Start(
      MonoNanos(), names, [&](stats::IntervalSnapshot& s) { emitted.push_back(s); },
      [&](const std::string& l) { logged.push_back(l); });
  Send((*r)->Address(0), "conn:1|c\nconn:2|c\nopen:10|g\nopen:-4|g\nlat:20|ms\nlat:40|ms\nbad line");
  Send((*r)->Address(1), "conn:7|c");
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  (*r)->Stop();
  EXPECT_EQ((*r)->received(), 7u);
  EXPECT_EQ((*r)->dropped(), 1u);
  ASSERT_EQ(logged.size(), 1u);
  EXPECT_NE(logged[0].find("step swarm#0: statsd line 'bad line'"), std::string::npos) << logged[0];
  stats::IntervalSnapshot total;
  for (const auto& s : emitted) total.MergeAcrossTime(s);
  const auto entries = names->From(0);
  int seen = 0;
  for (const auto& [index, m] : total.step_metrics) {
    const auto& e = entries.at(index);
    if (e.name == "conn" && e.group == "swarm#0") {
      EXPECT_EQ(e.kind, Kind::kCounter);
      EXPECT_EQ(m.sum, 3);
      ++seen;
    } else if (e.name == "conn" && e.group == "swarm#1") {
      EXPECT_EQ(m.sum, 7);
      ++seen;
    } else if (e.name == "open") {
      EXPECT_EQ(e.kind, Kind::kGauge);
      EXPECT_EQ(m.last, 6);
      EXPECT_EQ(m.max, 10);
      EXPECT_EQ(m.min, 6);
      ++seen;
    } else if (e.name == "lat") {
      EXPECT_EQ(e.kind, Kind::kTimer);
      EXPECT_EQ(m.values.count(), 2u);
      EXPECT_NEAR(m.values.mean(), 30e6, 0.5e6);
      ++seen;
    }
  }
  EXPECT_EQ(seen, 4);
}

}  // namespace
}  // namespace meridian::steps
