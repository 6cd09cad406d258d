#include "net/event_loop.h"

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "core/assert.h"
#include "core/clock.h"

namespace meridian::net {

DeadlineNode::~DeadlineNode() {
  if (list_) list_->Disarm(this);
}

DeadlineList::~DeadlineList() {
  while (head_) Disarm(head_);
}

void DeadlineList::Arm(DeadlineNode* node, int64_t deadline) {
  if (node->list_) node->list_->Disarm(node);
  node->deadline_ = deadline;
  node->list_ = this;
  DeadlineNode* after = tail_;
  while (after && after->deadline_ > deadline) after = after->prev_;
  node->prev_ = after;
  node->next_ = after ? after->next_ : head_;
  if (node->next_) {
    node->next_->prev_ = node;
  } else {
    tail_ = node;
  }
  if (after) {
    after->next_ = node;
  } else {
    head_ = node;
  }
}

void DeadlineList::Disarm(DeadlineNode* node) {
  if (node->list_ != this) return;
  if (node->prev_) {
    node->prev_->next_ = node->next_;
  } else {
    head_ = node->next_;
  }
  if (node->next_) {
    node->next_->prev_ = node->prev_;
  } else {
    tail_ = node->prev_;
  }
  node->prev_ = node->next_ = nullptr;
  node->list_ = nullptr;
}

size_t DeadlineList::Expire(int64_t now) {
  size_t fired = 0;
  while (head_ && head_->deadline_ <= now) {
    DeadlineNode* node = head_;
    Disarm(node);
    ++fired;
    node->OnDeadline();  // may re-arm itself or others
  }
  return fired;
}

class EventLoop::Wakeup final : public IoHandler {
 public:
  explicit Wakeup(EventLoop& loop) : loop_(loop) {}
  void OnIo(uint32_t) override {
    uint64_t v;
    while (read(loop_.eventfd_, &v, sizeof v) > 0) {
    }
    loop_.wake_pending_.store(false, std::memory_order_release);
  }

 private:
  EventLoop& loop_;
};

EventLoop::EventLoop() = default;

EventLoop::~EventLoop() {
  if (epfd_ >= 0) close(epfd_);
  if (eventfd_ >= 0) close(eventfd_);
  delete wakeup_;
  for (Timer* t : heap_) t->heap_index_ = Timer::kNotArmed;
}

Result<void> EventLoop::Init() {
  epfd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) return MakeError(ErrorCode::kIo, fmt::format("epoll_create1: {}", std::strerror(errno)));
  eventfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (eventfd_ < 0) return MakeError(ErrorCode::kIo, fmt::format("eventfd: {}", std::strerror(errno)));
  wakeup_ = new Wakeup(*this);
  events_.resize(512);
  return Add(eventfd_, EPOLLIN, wakeup_);
}

Result<void> EventLoop::Add(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  if (epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
    return MakeError(ErrorCode::kIo, fmt::format("epoll_ctl(ADD, {}): {}", fd, std::strerror(errno)));
  }
  return {};
}

Result<void> EventLoop::Modify(int fd, uint32_t events, IoHandler* handler) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = handler;
  if (epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) != 0) {
    return MakeError(ErrorCode::kIo, fmt::format("epoll_ctl(MOD, {}): {}", fd, std::strerror(errno)));
  }
  return {};
}

void EventLoop::Remove(int fd) { epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr); }

void EventLoop::Schedule(Timer* timer, int64_t deadline_ns) {
  if (timer->armed()) {
    const int64_t old = timer->deadline_;
    timer->deadline_ = deadline_ns;
    if (deadline_ns < old) {
      HeapUp(timer->heap_index_);
    } else {
      HeapDown(timer->heap_index_);
    }
    return;
  }
  timer->deadline_ = deadline_ns;
  timer->heap_index_ = heap_.size();
  heap_.push_back(timer);
  HeapUp(timer->heap_index_);
}

void EventLoop::Cancel(Timer* timer) {
  if (timer->armed()) HeapRemove(timer->heap_index_);
}

void EventLoop::HeapUp(size_t i) {
  Timer* t = heap_[i];
  while (i > 0) {
    const size_t parent = (i - 1) / 2;
    if (heap_[parent]->deadline_ <= t->deadline_) break;
    heap_[i] = heap_[parent];
    heap_[i]->heap_index_ = i;
    i = parent;
  }
  heap_[i] = t;
  t->heap_index_ = i;
}

void EventLoop::HeapDown(size_t i) {
  Timer* t = heap_[i];
  const size_t n = heap_.size();
  while (true) {
    size_t child = 2 * i + 1;
    if (child >= n) break;
    if (child + 1 < n && heap_[child + 1]->deadline_ < heap_[child]->deadline_) ++child;
    if (heap_[child]->deadline_ >= t->deadline_) break;
    heap_[i] = heap_[child];
    heap_[i]->heap_index_ = i;
    i = child;
  }
  heap_[i] = t;
  t->heap_index_ = i;
}

void EventLoop::HeapRemove(size_t i) {
  Timer* t = heap_[i];
  t->heap_index_ = Timer::kNotArmed;
  Timer* last = heap_.back();
  heap_.pop_back();
  if (i < heap_.size()) {
    heap_[i] = last;
    last->heap_index_ = i;
    HeapUp(i);
    HeapDown(last->heap_index_);
  }
}

void EventLoop::Post(std::function<void()> fn) {
  {
    std::lock_guard lock(post_mu_);
    posted_.push_back(std::move(fn));
  }
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    const uint64_t one = 1;
    ssize_t ignored = write(eventfd_, &one, sizeof one);
    (void)ignored;
  }
}

void EventLoop::RunPosted() {
  {
    std::lock_guard lock(post_mu_);
    if (posted_.empty()) return;
    running_.swap(posted_);
  }
  for (auto& fn : running_) fn();
  running_.clear();
}

void EventLoop::RunTimers(int64_t now) {
  while (!heap_.empty() && heap_.front()->deadline_ <= now) {
    Timer* t = heap_.front();
    HeapRemove(0);
    t->OnTimer();
  }
  for (DeadlineList* list : lists_) list->Expire(now);
}

void EventLoop::RunOnce(int64_t max_wait_ns) {
  int64_t wait = deferred_.empty() ? max_wait_ns : 0;
  const int64_t now = MonoNanos();
  int64_t next = heap_.empty() ? INT64_MAX : heap_.front()->deadline_;
  for (DeadlineList* list : lists_) next = std::min(next, list->next_deadline());
  if (next != INT64_MAX) {
    wait = std::min(wait, std::max<int64_t>(0, next - now));
    if (wait <= timer_spin_ns_) wait = 0;  // spin: poll until the timer is due
  }
  timespec ts{};
  ts.tv_sec = wait / 1'000'000'000;
  ts.tv_nsec = wait % 1'000'000'000;
  const int n = epoll_pwait2(epfd_, events_.data(), static_cast<int>(events_.size()), &ts, nullptr);
  if (n < 0 && errno != EINTR) {
    MERIDIAN_RELEASE_ASSERT(errno == EINTR);
  }
  for (int i = 0; i < n; ++i) {
    static_cast<IoHandler*>(events_[i].data.ptr)->OnIo(events_[i].events);
  }
  if (n == static_cast<int>(events_.size()) && events_.size() < 8192) events_.resize(events_.size() * 2);
  RunDeferred();
  RunTimers(MonoNanos());
  RunDeferred();
  RunPosted();
  RunDeferred();
}

// One batch: what is deferred while it runs waits for the loop's next turn (RunOnce then does not block), so
// work that keeps deferring more work (a script iteration that never waits for I/O, finished and restarted)
// cannot starve timers and I/O.
void EventLoop::RunDeferred() {
  if (deferred_.empty()) return;
  std::vector<std::function<void()>> batch;
  batch.swap(deferred_);
  for (auto& fn : batch) fn();
}

void EventLoop::Run() {
  stop_ = false;
  while (!stop_) RunOnce(1'000'000'000);
}

}  // namespace meridian::net
