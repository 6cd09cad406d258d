#pragma once
// One event loop per thread (STYLE.md: a thread owns its loop, connections, buffers and counters).
//
// epoll for readiness, a binary heap of intrusive timers, FIFO deadline lists for the many same-length
// time-outs (request and idle time-outs: O(1) arm and disarm), and Post() for the rare cross-thread closure
// (an eventfd wakes the loop). Waits use epoll_pwait2 with nanosecond time-outs so arrival-rate schedules are
// not rounded to milliseconds. Nothing here allocates per event.

#include <sys/epoll.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <vector>

#include "core/result.h"

namespace meridian::net {

class IoHandler {
 public:
  virtual ~IoHandler() = default;
  virtual void OnIo(uint32_t events) = 0;  // EPOLLIN / EPOLLOUT / EPOLLERR / EPOLLHUP / EPOLLRDHUP bits
};

class EventLoop;

// An intrusive one-shot timer. Owned by its user; must be cancelled (or have fired) before it is destroyed.
class Timer {
 public:
  virtual ~Timer() = default;
  virtual void OnTimer() = 0;
  bool armed() const { return heap_index_ != kNotArmed; }
  int64_t deadline() const { return deadline_; }

 private:
  friend class EventLoop;
  static constexpr size_t kNotArmed = SIZE_MAX;
  int64_t deadline_ = 0;
  size_t heap_index_ = kNotArmed;
};

// A timer that calls a function; convenient where a timer is rare.
class FunctionTimer final : public Timer {
 public:
  explicit FunctionTimer(std::function<void()> fn = {}) : fn_(std::move(fn)) {}
  void set(std::function<void()> fn) { fn_ = std::move(fn); }
  void OnTimer() override {
    if (fn_) fn_();
  }

 private:
  std::function<void()> fn_;
};

// Member of a DeadlineList: an intrusive doubly linked node.
class DeadlineNode {
 public:
  virtual ~DeadlineNode();  // unlinks itself: a node may be destroyed while armed
  virtual void OnDeadline() = 0;
  bool linked() const { return list_ != nullptr; }
  int64_t deadline() const { return deadline_; }

 private:
  friend class DeadlineList;
  DeadlineNode* prev_ = nullptr;
  DeadlineNode* next_ = nullptr;
  class DeadlineList* list_ = nullptr;
  int64_t deadline_ = 0;
};

// Deadlines kept in order in a linked list. With one time-out length per list, new deadlines are never
// earlier than the tail, so Arm is O(1); an earlier deadline is still placed correctly by walking back from
// the tail.
class DeadlineList {
 public:
  ~DeadlineList();
  void Arm(DeadlineNode* node, int64_t deadline);
  void Disarm(DeadlineNode* node);
  int64_t next_deadline() const { return head_ ? head_->deadline_ : INT64_MAX; }
  // Fires (and unlinks) every node whose deadline is <= now. Returns how many fired.
  size_t Expire(int64_t now);
  bool empty() const { return head_ == nullptr; }

 private:
  DeadlineNode* head_ = nullptr;
  DeadlineNode* tail_ = nullptr;
};

class EventLoop {
 public:
  EventLoop();
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  Result<void> Init();

  // Readiness registration. `events` are EPOLL* bits; level-triggered unless EPOLLET is included.
  Result<void> Add(int fd, uint32_t events, IoHandler* handler);
  Result<void> Modify(int fd, uint32_t events, IoHandler* handler);
  void Remove(int fd);

  void Schedule(Timer* timer, int64_t deadline_ns);  // re-arms if already armed
  void Cancel(Timer* timer);
  size_t timer_count() const { return heap_.size(); }

  // Deadline lists are expired by the loop; the list must outlive the loop run.
  void AddDeadlineList(DeadlineList* list) { lists_.push_back(list); }
  // A list that goes away before the loop must be removed first (the loop reads it on every turn).
  void RemoveDeadlineList(DeadlineList* list) { std::erase(lists_, list); }

  // Thread-safe: runs fn on the loop thread at its next turn.
  void Post(std::function<void()> fn);
  // Loop thread only: runs fn after the current batch of events, e.g. to free an object that a later event of
  // the same batch may still name. Functions deferred by a deferred function run at the next turn.
  void Defer(std::function<void()> fn) { deferred_.push_back(std::move(fn)); }
  // Turns the loop without waiting until nothing is deferred (before the loop or its users go away).
  void Settle() {
    do RunOnce(0);
    while (!deferred_.empty());
  }

  // Runs until Stop() is called (from the loop thread, or via Post from another).
  void Run();
  // Runs one turn: waits up to `max_wait_ns` (0 = poll) for events, then dispatches timers and events.
  void RunOnce(int64_t max_wait_ns);
  void Stop() { stop_ = true; }
  // Poll instead of sleeping when the next timer is due within `ns`: trades CPU for timer precision on
  // machines where waking an idle CPU is slow (virtual machines). 0 (the default) always sleeps.
  void set_timer_spin(int64_t ns) { timer_spin_ns_ = ns; }
  bool stopping() const { return stop_; }

 private:
  class Wakeup;
  void HeapUp(size_t i);
  void HeapDown(size_t i);
  void HeapRemove(size_t i);
  void RunTimers(int64_t now);
  void RunPosted();
  void RunDeferred();

  int epfd_ = -1;
  int eventfd_ = -1;
  bool stop_ = false;
  int64_t timer_spin_ns_ = 0;
  std::vector<Timer*> heap_;
  std::vector<DeadlineList*> lists_;
  std::vector<epoll_event> events_;
  std::mutex post_mu_;
  std::vector<std::function<void()>> posted_;
  std::vector<std::function<void()>> running_;
  std::vector<std::function<void()>> deferred_;
  std::atomic<bool> wake_pending_{false};
  IoHandler* wakeup_ = nullptr;
};

}  // namespace meridian::net
