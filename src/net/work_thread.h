#pragma once
// One background thread for work that must not hold an event loop's thread (parsing a large request body or
// a plan): Run(work, done) runs `work` there, then `done` back on the loop's thread. Work runs one at a time,
// in order. Destroying it (on the loop's thread) waits for the work running now and drops what is queued; a
// `done` whose WorkThread is gone never runs.

#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "net/event_loop.h"

namespace meridian::net {

class WorkThread {
 public:
  explicit WorkThread(EventLoop& loop);
  ~WorkThread();
  WorkThread(const WorkThread&) = delete;
  WorkThread& operator=(const WorkThread&) = delete;

  void Run(std::function<void()> work, std::function<void()> done);
  size_t queued() const;

 private:
  void Main();

  EventLoop& loop_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);  // read and written on the loop's thread only
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<std::function<void()>, std::function<void()>>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace meridian::net
