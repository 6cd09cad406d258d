#include "net/work_thread.h"

#include "core/log.h"

namespace meridian::net {

WorkThread::WorkThread(EventLoop& loop) : loop_(loop), thread_([this] { Main(); }) {}

WorkThread::~WorkThread() {
  *alive_ = false;
  {
    std::lock_guard lock(mu_);
    stop_ = true;
    queue_.clear();
  }
  cv_.notify_all();
  thread_.join();
}

void WorkThread::Run(std::function<void()> work, std::function<void()> done) {
  {
    std::lock_guard lock(mu_);
    queue_.emplace_back(std::move(work), std::move(done));
  }
  cv_.notify_one();
}

size_t WorkThread::queued() const {
  std::lock_guard lock(mu_);
  return queue_.size();
}

void WorkThread::Main() {
  while (true) {
    std::pair<std::function<void()>, std::function<void()>> job;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      job.first();
    } catch (const std::exception& e) {  // the thread's boundary: `done` still runs, and says what it can
      LogError("work thread: {}", e.what());
    }
    loop_.Post([alive = alive_, done = std::move(job.second)] {
      if (!*alive) return;
      try {
        done();
      } catch (const std::exception& e) {  // the loop's boundary
        LogError("work thread: {}", e.what());
      }
    });
  }
}

}  // namespace meridian::net
