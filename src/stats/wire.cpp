#include "stats/wire.h"

#include <algorithm>
#include <bit>
#include <cmath>

namespace meridian::stats {
namespace {

constexpr uint8_t kVersion = 3;            // 2: checks, groups and name-table entries; 3: step metrics
constexpr uint64_t kMaxItems = 1'000'000;  // series, scenarios or examples in one snapshot

uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

void PutBytes(std::string& out, std::string_view b) {
  PutVarint(out, b.size());
  out.append(b);
}
void PutHistogram(std::string& out, const Histogram& h) {
  if (h.count() == 0) {
    PutVarint(out, 0);
    return;
  }
  PutBytes(out, h.Encode());
}

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  bool ok() const { return ok_; }
  bool done() const { return in_.empty(); }
  uint64_t U() {
    uint64_t v = 0;
    if (ok_ && !GetVarint(in_, v)) ok_ = false;
    return ok_ ? v : 0;
  }
  int64_t I() { return UnZigZag(U()); }
  std::string_view Bytes() {
    const uint64_t n = U();
    if (!ok_ || n > in_.size()) {
      ok_ = false;
      return {};
    }
    std::string_view b = in_.substr(0, n);
    in_.remove_prefix(n);
    return b;
  }
  Histogram Hist() {
    std::string_view b = Bytes();
    if (!ok_ || b.empty()) return {};
    auto h = Histogram::Decode(b);
    if (!h.ok()) {
      ok_ = false;
      return {};
    }
    return std::move(h).value();
  }
  uint64_t Count() {
    const uint64_t n = U();
    if (n > kMaxItems || n > in_.size()) ok_ = false;
    return ok_ ? n : 0;
  }

 private:
  std::string_view in_;
  bool ok_ = true;
};

}  // namespace

std::string EncodeSnapshot(const IntervalSnapshot& s,
                           const std::vector<std::pair<uint16_t, NameEntry>>* names_in) {
  const auto& names = names_in ? *names_in : s.names;
  std::string out;
  out.push_back(static_cast<char>(kVersion));
  PutVarint(out, ZigZag(s.second));
  PutVarint(out, s.worker);
  PutVarint(out, s.final ? 1 : 0);
  PutVarint(out, s.series.size());
  for (const auto& [key, st] : s.series) {
    PutVarint(out, key);
    PutVarint(out, st.requests);
    PutVarint(out, st.failures);
    PutVarint(out, st.bytes_sent);
    PutVarint(out, st.bytes_received);
    PutHistogram(out, st.duration);
    PutHistogram(out, st.ttfb);
    PutHistogram(out, st.connect);
    PutHistogram(out, st.tls);
    PutHistogram(out, st.dns);
  }
  PutVarint(out, s.scenarios.size());
  for (const auto& sc : s.scenarios) {
    PutVarint(out, sc.iterations);
    PutVarint(out, sc.failed_iterations);
    PutVarint(out, sc.dropped_iterations);
    PutVarint(out, sc.interrupted_iterations);
    PutHistogram(out, sc.iteration_duration);
    PutVarint(out, sc.vus_active);
    PutVarint(out, sc.vus_allocated);
  }
  PutVarint(out, ZigZag(s.health.wall_ns));
  PutVarint(out, ZigZag(s.health.cpu_ns));
  PutVarint(out, static_cast<uint64_t>(std::lround(std::clamp(s.health.max_cpu_share, 0.0, 1e3) * 1e6)));
  PutHistogram(out, s.health.timer_lag);
  PutHistogram(out, s.health.schedule_lag);
  PutVarint(out, s.error_examples.size());
  for (const auto& [kind, message] : s.error_examples) {
    PutVarint(out, static_cast<uint64_t>(kind));
    PutBytes(out, message);
  }
  PutVarint(out, s.checks.size());
  for (const auto& [k, c] : s.checks) {
    PutVarint(out, k);
    PutVarint(out, c.passes);
    PutVarint(out, c.fails);
  }
  PutVarint(out, s.groups.size());
  for (const auto& [k, h] : s.groups) {
    PutVarint(out, k);
    PutHistogram(out, h);
  }
  PutVarint(out, s.step_metrics.size());
  for (const auto& [k, m] : s.step_metrics) {
    PutVarint(out, k);
    PutVarint(out, m.count);
    for (double d : {m.sum, m.last, m.min, m.max}) PutVarint(out, std::bit_cast<uint64_t>(d));
    PutHistogram(out, m.values);
  }
  PutVarint(out, names.size());
  for (const auto& [index, e] : names) {
    PutVarint(out, index);
    PutVarint(out, static_cast<uint64_t>(e.kind));
    PutVarint(out, e.scenario);
    PutBytes(out, e.group);
    PutBytes(out, e.name);
  }
  return out;
}

Result<IntervalSnapshot> DecodeSnapshot(std::string_view bytes) {
  auto bad = [](const char* why) {
    return MakeError(ErrorCode::kInvalidArgument, std::string("invalid interval report: ") + why);
  };
  if (bytes.empty() || static_cast<uint8_t>(bytes[0]) != kVersion) return bad("unknown version");
  Reader r(bytes.substr(1));
  IntervalSnapshot s;
  s.second = r.I();
  s.worker = static_cast<uint32_t>(r.U());
  s.final = r.U() != 0;
  const uint64_t n_series = r.Count();
  for (uint64_t i = 0; i < n_series && r.ok(); ++i) {
    const uint64_t key = r.U();
    if (SeriesKey::Unpack(key).error >= ErrorKind::kCount) return bad("unknown error kind");
    SeriesStats st;
    st.requests = r.U();
    st.failures = r.U();
    st.bytes_sent = r.U();
    st.bytes_received = r.U();
    st.duration = r.Hist();
    st.ttfb = r.Hist();
    st.connect = r.Hist();
    st.tls = r.Hist();
    st.dns = r.Hist();
    if (st.failures > st.requests) return bad("more failures than requests");
    s.series[key].Merge(st);
  }
  const uint64_t n_scenarios = r.Count();
  if (n_scenarios > 65535) return bad("too many scenarios");
  s.scenarios.resize(r.ok() ? n_scenarios : 0);
  for (auto& sc : s.scenarios) {
    sc.iterations = r.U();
    sc.failed_iterations = r.U();
    sc.dropped_iterations = r.U();
    sc.interrupted_iterations = r.U();
    sc.iteration_duration = r.Hist();
    sc.vus_active = static_cast<uint32_t>(r.U());
    sc.vus_allocated = static_cast<uint32_t>(r.U());
  }
  s.health.wall_ns = r.I();
  s.health.cpu_ns = r.I();
  s.health.max_cpu_share = static_cast<double>(r.U()) / 1e6;
  s.health.timer_lag = r.Hist();
  s.health.schedule_lag = r.Hist();
  const uint64_t n_examples = r.Count();
  for (uint64_t i = 0; i < n_examples && r.ok(); ++i) {
    const uint64_t kind = r.U();
    const std::string_view message = r.Bytes();
    if (kind == 0 || kind >= static_cast<uint64_t>(ErrorKind::kCount)) return bad("unknown error kind");
    s.error_examples.emplace_back(static_cast<ErrorKind>(kind), std::string(message));
  }
  const uint64_t n_checks = r.Count();
  for (uint64_t i = 0; i < n_checks && r.ok(); ++i) {
    const uint64_t k = r.U();
    if (k > 65535) return bad("check index out of range");
    auto& c = s.checks[static_cast<uint16_t>(k)];
    c.passes += r.U();
    c.fails += r.U();
  }
  const uint64_t n_groups = r.Count();
  for (uint64_t i = 0; i < n_groups && r.ok(); ++i) {
    const uint64_t k = r.U();
    if (k > 65535) return bad("group index out of range");
    s.groups[static_cast<uint16_t>(k)].Merge(r.Hist());
  }
  const uint64_t n_metrics = r.Count();
  for (uint64_t i = 0; i < n_metrics && r.ok(); ++i) {
    const uint64_t k = r.U();
    if (k > 65535) return bad("step metric index out of range");
    StepMetric m;
    m.count = r.U();
    double* fields[] = {&m.sum, &m.last, &m.min, &m.max};
    for (double* d : fields) {
      *d = std::bit_cast<double>(r.U());
      if (!std::isfinite(*d)) return bad("step metric value is not finite");
    }
    m.values = r.Hist();
    s.step_metrics[static_cast<uint16_t>(k)].Merge(m);
  }
  const uint64_t n_names = r.Count();
  for (uint64_t i = 0; i < n_names && r.ok(); ++i) {
    const uint64_t index = r.U();
    const uint64_t kind = r.U();
    const uint64_t scenario = r.U();
    NameEntry e;
    e.group = std::string(r.Bytes());
    e.name = std::string(r.Bytes());
    if (index > 65535 || scenario > 65535) return bad("name index out of range");
    if (kind > static_cast<uint64_t>(NameEntry::Kind::kTimer)) return bad("unknown name kind");
    e.kind = static_cast<NameEntry::Kind>(kind);
    e.scenario = static_cast<uint16_t>(scenario);
    s.names.emplace_back(static_cast<uint16_t>(index), std::move(e));
  }
  if (!r.ok()) return bad("truncated or malformed");
  if (!r.done()) return bad("trailing bytes");
  return s;
}

}  // namespace meridian::stats
