#include "app/common/signals.h"

#include <signal.h>
#include <time.h>

namespace meridian::app {

SignalWatcher::SignalWatcher(std::function<void(int, int)> on_signal, bool hangup, bool user1) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  if (hangup) sigaddset(&set, SIGHUP);
  if (user1) sigaddset(&set, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  thread_ = std::thread([this, set, on_signal = std::move(on_signal)] {
    int count = 0;
    while (!stop_.load(std::memory_order_relaxed)) {
      timespec wait{0, 100'000'000};
      const int sig = sigtimedwait(&set, nullptr, &wait);
      if (sig == SIGHUP || sig == SIGUSR1) {
        on_signal(sig, 0);
      } else if (sig > 0) {
        on_signal(sig, ++count);
      }
    }
  });
}

SignalWatcher::~SignalWatcher() {
  stop_.store(true, std::memory_order_relaxed);
  if (thread_.joinable()) thread_.join();
}

}  // namespace meridian::app
