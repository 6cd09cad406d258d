#include "stats/histogram.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

namespace meridian::stats {

int Histogram::BucketIndex(int64_t value) {
  if (value < kSubBuckets) return value < 0 ? 0 : static_cast<int>(value);
  if (value > kMaxTrackable) value = kMaxTrackable;
  const auto v = static_cast<uint64_t>(value);
  const int e = 63 - std::countl_zero(v);  // 2^e <= v < 2^(e+1), e >= kSubBucketBits
  const int shift = e - kSubBucketBits;
  const int sub = static_cast<int>(v >> shift) - kSubBuckets;
  return kSubBuckets + shift * kSubBuckets + sub;
}

int64_t Histogram::BucketLow(int index) {
  if (index < kSubBuckets) return index;
  const int shift = index / kSubBuckets - 1;
  const int sub = index % kSubBuckets;
  return static_cast<int64_t>(kSubBuckets + sub) << shift;
}

int64_t Histogram::BucketWidth(int index) {
  if (index < kSubBuckets) return 1;
  return int64_t{1} << (index / kSubBuckets - 1);
}

Histogram::Histogram(const Histogram& other) { *this = other; }

Histogram& Histogram::operator=(const Histogram& other) {
  if (this == &other) return *this;
  for (int c = 0; c < kChunks; ++c) {
    if (other.chunks_[c]) {
      uint64_t* mine = Chunk(c);
      std::memcpy(mine, other.chunks_[c].get(), sizeof(uint64_t) * kSubBuckets);
    } else {
      chunks_[c].reset();
    }
  }
  count_ = other.count_;
  sum_ = other.sum_;
  min_ = other.min_;
  max_ = other.max_;
  return *this;
}

uint64_t* Histogram::Chunk(int chunk) {
  auto& slot = chunks_[chunk];
  if (!slot) slot = std::make_unique<uint64_t[]>(kSubBuckets);  // zero-initialised
  return slot.get();
}

void Histogram::RecordN(int64_t value, uint64_t n) {
  if (n == 0) return;
  if (value < 0) value = 0;
  const int index = BucketIndex(value);
  uint64_t* chunk = chunks_[index >> kSubBucketBits].get();
  if (chunk == nullptr) chunk = Chunk(index >> kSubBucketBits);
  chunk[index & (kSubBuckets - 1)] += n;
  if (count_ == 0) {
    min_ = max_ = value;
  } else {
    min_ = std::min(min_, value);
    max_ = std::max(max_, value);
  }
  count_ += n;
  sum_ += static_cast<uint64_t>(value) * n;
}

void Histogram::Merge(const Histogram& other) {
  if (other.count_ == 0) return;
  for (int c = 0; c < kChunks; ++c) {
    const uint64_t* src = other.chunks_[c].get();
    if (src == nullptr) continue;
    uint64_t* dst = Chunk(c);
    for (int i = 0; i < kSubBuckets; ++i) dst[i] += src[i];
  }
  if (count_ == 0) {
    min_ = other.min_;
    max_ = other.max_;
  } else {
    min_ = std::min(min_, other.min_);
    max_ = std::max(max_, other.max_);
  }
  count_ += other.count_;
  sum_ += other.sum_;
}

void Histogram::Reset() {
  for (auto& c : chunks_) {
    if (c) std::memset(c.get(), 0, sizeof(uint64_t) * kSubBuckets);
  }
  count_ = sum_ = 0;
  min_ = max_ = 0;
}

uint64_t Histogram::BucketCount(int index) const {
  if (index < 0 || index >= kBuckets) return 0;
  const uint64_t* chunk = chunks_[index >> kSubBucketBits].get();
  return chunk ? chunk[index & (kSubBuckets - 1)] : 0;
}

int64_t Histogram::ValueAtPercentile(double p) const {
  if (count_ == 0) return 0;
  if (p <= 0) return min_;
  if (p >= 100) return max_;
  auto rank = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  uint64_t seen = 0;
  for (int c = 0; c < kChunks; ++c) {
    const uint64_t* chunk = chunks_[c].get();
    if (chunk == nullptr) continue;
    for (int i = 0; i < kSubBuckets; ++i) {
      seen += chunk[i];
      if (seen >= rank) {
        const int index = c * kSubBuckets + i;
        const int64_t mid = BucketLow(index) + (BucketWidth(index) - 1) / 2;
        return std::clamp(mid, min_, max_);
      }
    }
  }
  return max_;
}

bool Histogram::operator==(const Histogram& other) const {
  if (count_ != other.count_ || sum_ != other.sum_ || min() != other.min() || max() != other.max())
    return false;
  for (int i = 0; i < kBuckets; ++i) {
    if (BucketCount(i) != other.BucketCount(i)) return false;
  }
  return true;
}

void PutVarint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

bool GetVarint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    if (in.empty()) return false;
    const auto byte = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    if (shift == 63 && byte > 1) return false;
    v |= static_cast<uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

namespace {
constexpr char kVersion = 1;
}

std::string Histogram::Encode() const {
  std::string out;
  out.reserve(32);
  out.push_back(kVersion);
  PutVarint(out, count_);
  if (count_ == 0) return out;
  PutVarint(out, static_cast<uint64_t>(min_));
  PutVarint(out, static_cast<uint64_t>(max_));
  PutVarint(out, sum_);
  int previous = -1;
  for (int c = 0; c < kChunks; ++c) {
    const uint64_t* chunk = chunks_[c].get();
    if (chunk == nullptr) continue;
    for (int i = 0; i < kSubBuckets; ++i) {
      if (chunk[i] == 0) continue;
      const int index = c * kSubBuckets + i;
      PutVarint(out, static_cast<uint64_t>(index - previous));
      PutVarint(out, chunk[i]);
      previous = index;
    }
  }
  return out;
}

Result<Histogram> Histogram::Decode(std::string_view in) {
  auto bad = [](const char* why) {
    return MakeError(ErrorCode::kProtocol, std::string("invalid histogram encoding: ") + why);
  };
  if (in.empty() || in.front() != kVersion) return bad("unknown version");
  in.remove_prefix(1);
  Histogram h;
  uint64_t count = 0;
  if (!GetVarint(in, count)) return bad("truncated count");
  if (count == 0) {
    if (!in.empty()) return bad("trailing bytes");
    return h;
  }
  uint64_t min = 0, max = 0, sum = 0;
  if (!GetVarint(in, min) || !GetVarint(in, max) || !GetVarint(in, sum)) return bad("truncated header");
  if (min > max || max > static_cast<uint64_t>(INT64_MAX)) return bad("min/max out of range");
  int64_t index = -1;
  uint64_t total = 0;
  while (!in.empty()) {
    uint64_t delta = 0, n = 0;
    if (!GetVarint(in, delta) || !GetVarint(in, n)) return bad("truncated bucket");
    if (delta == 0 || delta > static_cast<uint64_t>(kBuckets)) return bad("bucket index out of range");
    index += static_cast<int64_t>(delta);
    if (index >= kBuckets) return bad("bucket index out of range");
    if (n == 0 || n > count - total) return bad("bucket counts exceed total");
    h.Chunk(static_cast<int>(index >> kSubBucketBits))[index & (kSubBuckets - 1)] = n;
    total += n;
  }
  if (total != count) return bad("bucket counts do not add up to the total");
  h.count_ = count;
  h.sum_ = sum;
  h.min_ = static_cast<int64_t>(min);
  h.max_ = static_cast<int64_t>(max);
  return h;
}

}  // namespace meridian::stats
