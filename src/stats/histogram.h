#pragma once
// A mergeable log-linear histogram of non-negative integers (nanoseconds in practice), HdrHistogram-style.
//
// Values below 128 have a bucket each; above, every power of two [2^e, 2^(e+1)) is split into 128 equal
// buckets, so a bucket is at most 1/128 of its lower bound wide and the reported midpoint is within 0.4 % of
// any value in it. Tracked range: 0 .. 2^42-1 ns (about 73 minutes); larger values are clamped to the top
// bucket, while min/max/sum stay exact. Counters live in chunks of 128 allocated on first use: latencies of a
// run fall into a handful of powers of two, so a histogram costs a few KiB, and recording allocates only the
// first time a chunk is touched.

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/result.h"

namespace meridian::stats {

class Histogram {
 public:
  static constexpr int kSubBucketBits = 7;
  static constexpr int kSubBuckets = 1 << kSubBucketBits;                  // 128
  static constexpr int kMaxExponent = 41;                                  // values < 2^42
  static constexpr int kChunks = 1 + (kMaxExponent - kSubBucketBits + 1);  // 36
  static constexpr int kBuckets = kChunks * kSubBuckets;                   // 4608
  static constexpr int64_t kMaxTrackable = (int64_t{1} << (kMaxExponent + 1)) - 1;

  Histogram() = default;
  Histogram(const Histogram& other);
  Histogram& operator=(const Histogram& other);
  Histogram(Histogram&&) noexcept = default;
  Histogram& operator=(Histogram&&) noexcept = default;

  void Record(int64_t value) { RecordN(value, 1); }
  void RecordN(int64_t value, uint64_t n);
  void Merge(const Histogram& other);
  void Reset();

  uint64_t count() const { return count_; }
  int64_t min() const { return count_ ? min_ : 0; }
  int64_t max() const { return count_ ? max_ : 0; }
  double mean() const { return count_ ? static_cast<double>(sum_) / static_cast<double>(count_) : 0.0; }
  uint64_t sum() const { return sum_; }

  // The value at percentile p in [0, 100]: the midpoint of the bucket holding the ceil(p% * count)-th
  // smallest value, clamped to [min, max]. p = 0 gives min, p = 100 gives max; 0 when empty.
  int64_t ValueAtPercentile(double p) const;

  // Compact sparse encoding for the wire: version, count, min, max, sum, then (index delta, count) varint
  // pairs for non-empty buckets only. A typical latency histogram encodes in a few hundred bytes.
  std::string Encode() const;
  static Result<Histogram> Decode(std::string_view bytes);

  static int BucketIndex(int64_t value);
  static int64_t BucketLow(int index);
  static int64_t BucketWidth(int index);
  uint64_t BucketCount(int index) const;

  bool operator==(const Histogram& other) const;

 private:
  uint64_t* Chunk(int chunk);

  std::array<std::unique_ptr<uint64_t[]>, kChunks> chunks_{};
  uint64_t count_ = 0;
  uint64_t sum_ = 0;
  int64_t min_ = 0;
  int64_t max_ = 0;
};

// LEB128 varints, shared by the histogram and interval encodings.
void PutVarint(std::string& out, uint64_t v);
bool GetVarint(std::string_view& in, uint64_t& v);

}  // namespace meridian::stats
