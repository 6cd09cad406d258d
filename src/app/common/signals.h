#pragma once
// SIGINT/SIGTERM delivered to one watcher thread instead of an arbitrary one. Construct before starting other
// threads (they inherit the blocked mask). The callback runs on the watcher thread with the signal count so
// far.

#include <atomic>
#include <functional>
#include <thread>

namespace meridian::app {

class SignalWatcher {
 public:
  // `hangup`: SIGHUP is delivered too (and counted apart from SIGINT/SIGTERM as 0); `user1`: SIGUSR1 too
  // (count 0).
  explicit SignalWatcher(std::function<void(int signal, int count)> on_signal, bool hangup = false,
                         bool user1 = false);
  ~SignalWatcher();
  SignalWatcher(const SignalWatcher&) = delete;
  SignalWatcher& operator=(const SignalWatcher&) = delete;

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace meridian::app
