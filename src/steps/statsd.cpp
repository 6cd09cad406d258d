#include "steps/statsd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "core/clock.h"
#include "core/duration.h"

namespace meridian::steps {
namespace {

using Kind = stats::NameEntry::Kind;

Result<double> Number(std::string_view text, std::string_view what) {
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v)) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{} '{}' is not a number", what, text));
  }
  return v;
}

}  // namespace

Result<StatsdSample> ParseStatsdLine(std::string_view line) {
  const auto bad = [&](const std::string& why) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("statsd line '{}': {} (expected name:value|c, |g, |ms, |h or |d)",
                                 line.substr(0, 80), why));
  };
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return bad("no ':' after the name");
  StatsdSample s;
  const std::string_view name = line.substr(0, colon);
  if (!stats::IsStepMetricName(name)) {
    return bad("the name must be 1-200 of letters, digits, '_', '.', '-'");
  }
  s.name = std::string(name);
  std::string_view rest = line.substr(colon + 1);
  const size_t bar = rest.find('|');
  if (bar == std::string_view::npos) return bad("no '|type'");
  std::string_view value = rest.substr(0, bar);
  rest = rest.substr(bar + 1);
  const size_t next = rest.find('|');
  const std::string_view type = rest.substr(0, next);
  rest = next == std::string_view::npos ? std::string_view() : rest.substr(next + 1);
  if (type == "c") {
    s.kind = Kind::kCounter;
  } else if (type == "g") {
    s.kind = Kind::kGauge;
    s.delta = !value.empty() && (value.front() == '+' || value.front() == '-');
  } else if (type == "ms" || type == "h" || type == "d") {
    s.kind = Kind::kTimer;
  } else if (type == "s") {
    return bad("sets (|s) are not supported");
  } else {
    return bad(fmt::format("unknown type '{}'", type));
  }
  if (!value.empty() && value.front() == '+') value.remove_prefix(1);
  auto v = Number(value, "value");
  if (!v.ok()) return bad(v.error().message);
  s.value = *v;
  if (s.kind == Kind::kTimer && (s.value < 0 || s.value > 1e9)) return bad("a timer must be 0 to 1e9 ms");
  while (!rest.empty()) {  // |@rate and |#tags (tags are accepted and ignored)
    const size_t end = rest.find('|');
    const std::string_view part = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
    if (part.starts_with("@")) {
      auto r = Number(part.substr(1), "sample rate");
      if (!r.ok() || *r <= 0 || *r > 1) return bad("the sample rate must be in (0, 1]");
      s.rate = *r;
    } else if (!part.starts_with("#")) {
      return bad(fmt::format("unknown field '{}'", part));
    }
  }
  return s;
}

Result<std::unique_ptr<StatsdReceiver>> StatsdReceiver::Open(std::vector<std::string> instance_ids) {
  std::unique_ptr<StatsdReceiver> r(new StatsdReceiver());
  r->ids_ = std::move(instance_ids);
  if (pipe2(r->wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    return MakeError(ErrorCode::kIo, fmt::format("statsd: pipe: {}", std::strerror(errno)));
  }
  for (size_t i = 0; i < r->ids_.size(); ++i) {
    const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) return MakeError(ErrorCode::kIo, fmt::format("statsd: socket: {}", std::strerror(errno)));
    r->fds_.push_back(fd);
    const int buf = 1 << 20;  // bursts of samples wait here while the loop is busy
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return MakeError(ErrorCode::kIo, fmt::format("statsd: bind 127.0.0.1:0: {}", std::strerror(errno)));
    }
    r->ports_.push_back(ntohs(addr.sin_port));
  }
  return r;
}

StatsdReceiver::~StatsdReceiver() {
  Stop();
  for (int fd : fds_) close(fd);
  for (int fd : wake_) {
    if (fd >= 0) close(fd);
  }
}

std::string StatsdReceiver::Address(size_t i) const { return fmt::format("127.0.0.1:{}", ports_.at(i)); }

void StatsdReceiver::Start(int64_t start_mono_ns, std::shared_ptr<stats::NameRegistry> names,
                           std::function<void(stats::IntervalSnapshot&)> emit,
                           std::function<void(const std::string&)> log) {
  if (thread_.joinable() || stop_.load()) return;
  start_mono_ = start_mono_ns;
  names_ = std::move(names);
  emit_ = std::move(emit);
  log_ = std::move(log);
  thread_ = std::thread([this] { Loop(); });
}

void StatsdReceiver::Stop() {
  if (stop_.exchange(true)) return;
  if (!thread_.joinable()) return;
  (void)!write(wake_[1], "x", 1);
  thread_.join();
}

void StatsdReceiver::Loop() {
  std::vector<pollfd> fds;
  fds.push_back({wake_[0], POLLIN, 0});
  for (int fd : fds_) fds.push_back({fd, POLLIN, 0});
  while (!stop_.load()) {
    // Wake at each second's end (plus a little, for samples sent right at the boundary).
    const int64_t now = MonoNanos();
    const int64_t into = (now - start_mono_) % kNanosPerSecond;
    const int64_t wait = now < start_mono_ ? start_mono_ - now : kNanosPerSecond - into + 20 * kNanosPerMilli;
    poll(fds.data(), fds.size(), static_cast<int>(std::clamp<int64_t>(wait / kNanosPerMilli, 1, 1000)));
    Drain();
    Emit(false, MonoNanos());
  }
  Drain();
  Emit(true, MonoNanos());
}

void StatsdReceiver::Drain() {
  char buf[65536];
  for (size_t i = 0; i < fds_.size(); ++i) {
    while (true) {
      const ssize_t n = recv(fds_[i], buf, sizeof buf, 0);
      if (n < 0) break;
      Handle(i, std::string_view(buf, static_cast<size_t>(n)), MonoNanos());
    }
  }
  char drop[64];
  while (read(wake_[0], drop, sizeof drop) > 0) {
  }
}

void StatsdReceiver::Handle(size_t instance, std::string_view datagram, int64_t now_mono) {
  const int64_t second = std::max<int64_t>(0, (now_mono - start_mono_) / kNanosPerSecond);
  while (!datagram.empty()) {
    const size_t nl = datagram.find('\n');
    std::string_view line = datagram.substr(0, nl);
    datagram = nl == std::string_view::npos ? std::string_view() : datagram.substr(nl + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    auto sample = ParseStatsdLine(line);
    if (!sample.ok()) {
      ++dropped_;
      if (logged_ < 5 && log_) {
        ++logged_;
        log_(fmt::format("step {}: {}{}", ids_[instance], sample.error().message,
                         logged_ == 5 ? " (further bad lines are counted, not logged)" : ""));
      }
      continue;
    }
    const std::string key =
        fmt::format("{}\x1f{}\x1f{}", static_cast<int>(sample->kind), ids_[instance], sample->name);
    auto it = series_.find(key);
    if (it == series_.end()) {
      if (series_.size() >= kMaxSeries) {
        ++dropped_;
        if (logged_ < 5 && log_) {
          ++logged_;
          log_(fmt::format("step {}: more than {} StatsD series; '{}' dropped", ids_[instance], kMaxSeries,
                           sample->name));
        }
        continue;
      }
      it = series_
               .emplace(key, names_->Intern(stats::NameEntry{sample->kind, 0, ids_[instance], sample->name}))
               .first;
    }
    ++received_;
    stats::StepMetric m;
    m.count = 1;
    switch (sample->kind) {
      case Kind::kCounter:
        m.sum = sample->value / sample->rate;
        break;
      case Kind::kGauge: {
        double& current = gauges_[it->second];
        current = sample->delta ? current + sample->value : sample->value;
        m.last = m.min = m.max = current;
        break;
      }
      default:
        m.sum = sample->value;
        m.values.Record(static_cast<int64_t>(std::llround(sample->value * 1e6)));
        break;
    }
    pending_[second].step_metrics[it->second].Merge(m);
  }
}

void StatsdReceiver::Emit(bool all, int64_t now_mono) {
  const int64_t current = (now_mono - start_mono_) / kNanosPerSecond;
  while (!pending_.empty() && (all || pending_.begin()->first < current)) {
    auto node = pending_.extract(pending_.begin());
    node.mapped().second = node.key();
    if (emit_) emit_(node.mapped());
  }
}

}  // namespace meridian::steps
