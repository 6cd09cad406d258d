#include "net/event_loop.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "net/resolver.h"
#include "net/socket.h"
#include "net/work_thread.h"

namespace meridian::net {
namespace {

class RecordingTimer final : public Timer {
 public:
  RecordingTimer(std::vector<int>& log, int id) : log_(log), id_(id) {}
  void OnTimer() override { log_.push_back(id_); }

 private:
  std::vector<int>& log_;
  int id_;
};

TEST(EventLoop, TimersFireInDeadlineOrderAndCancelWorks) {
  EventLoop loop;
  ASSERT_TRUE(loop.Init().ok());
  std::vector<int> log;
  std::vector<std::unique_ptr<RecordingTimer>> timers;
  const int64_t now = MonoNanos();
  const int order[] = {5, 1, 4, 2, 3, 0, 6};
  for (int id : order) {
    timers.push_back(std::make_unique<RecordingTimer>(log, id));
    loop.Schedule(timers.back().get(), now + id * 1'000'000);
  }
  loop.Cancel(timers[2].get());                          // id 4
  loop.Schedule(timers[0].get(), now + 10 * 1'000'000);  // id 5 moved later
  FunctionTimer stop([&] { loop.Stop(); });
  loop.Schedule(&stop, now + 20 * 1'000'000);
  loop.Run();
  EXPECT_EQ(log, (std::vector<int>{0, 1, 2, 3, 6, 5}));
  EXPECT_GE(MonoNanos() - now, 20 * 1'000'000);
  EXPECT_FALSE(timers[2]->armed());
}

class Node final : public DeadlineNode {
 public:
  explicit Node(std::vector<int>& log, int id) : log_(log), id_(id) {}
  void OnDeadline() override { log_.push_back(id_); }

 private:
  std::vector<int>& log_;
  int id_;
};

TEST(DeadlineList, KeepsOrderDisarmsAndExpires) {
  std::vector<int> log;
  Node a(log, 1), b(log, 2), c(log, 3), d(log, 4);
  DeadlineList list;
  list.Arm(&a, 100);
  list.Arm(&b, 200);
  list.Arm(&c, 300);
  list.Arm(&d, 150);  // earlier than the tail: walks back
  EXPECT_EQ(list.next_deadline(), 100);
  list.Disarm(&b);
  EXPECT_FALSE(b.linked());
  EXPECT_EQ(list.Expire(160), 2u);
  EXPECT_EQ(log, (std::vector<int>{1, 4}));
  list.Arm(&a, 50);  // re-arm to the front
  EXPECT_EQ(list.Expire(1000), 2u);
  EXPECT_EQ(log, (std::vector<int>{1, 4, 1, 3}));
  EXPECT_TRUE(list.empty());
}

TEST(EventLoop, DeadlineListsAreExpiredByTheLoop) {
  EventLoop loop;
  ASSERT_TRUE(loop.Init().ok());
  DeadlineList list;
  loop.AddDeadlineList(&list);
  std::vector<int> log;
  Node a(log, 7);
  list.Arm(&a, MonoNanos() + 2'000'000);
  while (log.empty()) loop.RunOnce(100'000'000);
  EXPECT_EQ(log, std::vector<int>{7});
}

TEST(EventLoop, PostFromAnotherThreadWakesTheLoop) {
  EventLoop loop;
  ASSERT_TRUE(loop.Init().ok());
  int ran = 0;
  std::thread other([&] {
    for (int i = 0; i < 100; ++i) loop.Post([&] { ++ran; });
    loop.Post([&] { loop.Stop(); });
  });
  loop.Run();
  other.join();
  EXPECT_EQ(ran, 100);
}

class Reader final : public IoHandler {
 public:
  explicit Reader(int fd) : fd_(fd) {}
  void OnIo(uint32_t events) override {
    last_events = events;
    char buf[64];
    const ssize_t n = read(fd_, buf, sizeof buf);
    if (n > 0) data.append(buf, static_cast<size_t>(n));
  }
  std::string data;
  uint32_t last_events = 0;

 private:
  int fd_;
};

TEST(EventLoop, DeliversReadiness) {
  EventLoop loop;
  ASSERT_TRUE(loop.Init().ok());
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  Reader reader(fds[0]);
  ASSERT_TRUE(loop.Add(fds[0], EPOLLIN, &reader).ok());
  ASSERT_EQ(write(fds[1], "hello", 5), 5);
  const int64_t deadline = MonoNanos() + 2'000'000'000;
  while (reader.data.size() < 5 && MonoNanos() < deadline) loop.RunOnce(100'000'000);
  EXPECT_EQ(reader.data, "hello");
  loop.Remove(fds[0]);
  close(fds[0]);
  close(fds[1]);
}

TEST(Socket, ListenAddressForms) {
  EXPECT_EQ(ParseListenAddress("127.0.0.1:8080")->ToString(), "127.0.0.1:8080");
  EXPECT_EQ(ParseListenAddress(":8080")->ToString(), "127.0.0.1:8080");
  EXPECT_EQ(ParseListenAddress("9000")->ToString(), "127.0.0.1:9000");
  EXPECT_EQ(ParseListenAddress("[::1]:0")->ToString(), "[::1]:0");
  EXPECT_EQ(ParseListenAddress("0.0.0.0:1")->ToString(), "0.0.0.0:1");
  EXPECT_FALSE(ParseListenAddress("host:80").ok());
  EXPECT_FALSE(ParseListenAddress("1.2.3.4:99999").ok());
  EXPECT_FALSE(ParseListenAddress("1.2.3.4:").ok());
}

TEST(Socket, ListenOnPortZeroAndConnect) {
  auto at = ParseListenAddress("127.0.0.1:0");
  ASSERT_TRUE(at.ok());
  auto lfd = Listen(*at, false);
  ASSERT_TRUE(lfd.ok()) << lfd.error().message;
  const Endpoint bound = LocalEndpoint(*lfd);
  EXPECT_NE(bound.port(), 0);
  auto cfd = NewTcpSocket(AF_INET);
  ASSERT_TRUE(cfd.ok());
  const int rc = StartConnect(*cfd, bound);
  EXPECT_TRUE(rc == 0 || rc == EINPROGRESS) << rc;
  close(*cfd);
  close(*lfd);
}

TEST(Resolver, NumericLocalhostAndFailure) {
  auto n = Resolve("127.0.0.1", 80, 1'000'000'000);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(n->lookup_ns, 0);
  EXPECT_EQ(n->endpoints.at(0).ToString(), "127.0.0.1:80");
  auto l = Resolve("localhost", 81, 5'000'000'000);
  ASSERT_TRUE(l.ok()) << l.error().message;
  EXPECT_FALSE(l->endpoints.empty());
  auto bad = Resolve("no-such-host.invalid", 80, 5'000'000'000);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, ErrorCode::kDns);
  EXPECT_NE(bad.error().message.find("no-such-host.invalid"), std::string::npos);
}

TEST(WorkThread, RunsWorkOffTheLoopAndFinishesOnIt) {
  EventLoop loop;
  ASSERT_TRUE(loop.Init().ok());
  const auto loop_thread = std::this_thread::get_id();
  std::vector<int> done;
  std::thread::id worked_on;
  {
    WorkThread worker(loop);
    for (int i = 0; i < 3; ++i) {
      worker.Run([&worked_on] { worked_on = std::this_thread::get_id(); },
                 [&done, &loop, loop_thread, i] {
                   EXPECT_EQ(std::this_thread::get_id(), loop_thread);
                   done.push_back(i);
                   if (done.size() == 3) loop.Stop();
                 });
    }
    loop.Run();
    EXPECT_NE(worked_on, loop_thread);
    EXPECT_EQ(done, (std::vector<int>{0, 1, 2}));  // in order
    // A `done` posted for a WorkThread that is gone never runs.
    std::atomic<bool> started{false};
    worker.Run([&started] { started = true; }, [] { ADD_FAILURE() << "ran after the WorkThread went away"; });
    while (!started.load()) std::this_thread::yield();
  }
  loop.Settle();
}

}  // namespace
}  // namespace meridian::net
