#pragma once
// The name table of a running engine: request names, check names and group names, indexed by the 16-bit
// `request` field of a SeriesKey (and the keys of IntervalSnapshot::checks and ::groups). Declarative
// requests are known up front; scripts add names as they meet them. Thread-safe and append-only: every worker
// of an engine interns into the same table, so indexes agree within a process. Agents send new entries with
// their reports and the control plane maps them onto the run's own table (control/run.cpp).

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "stats/summary.h"

namespace meridian::stats {

class NameRegistry {
 public:
  // More distinct names than this fold into one "(other)" entry per kind and scenario: a URL with an id in
  // its path must not grow the table (and every report) without bound. Name such requests with a `name` tag.
  static constexpr size_t kMaxNames = 2000;

  explicit NameRegistry(std::vector<NameEntry> initial = {});

  // The index of the entry, adding it if new.
  uint16_t Intern(const NameEntry& entry);
  size_t size() const;
  // Entries from `first` on (a copy, taken under the lock).
  std::vector<NameEntry> From(size_t first) const;
  // True once some name was folded into "(other)" (reported once in the summary).
  bool overflowed() const;
  // The identity of an entry (kind, scenario, group, name) as one string, for lookups.
  static std::string Key(const NameEntry& e);

 private:
  mutable std::mutex mu_;
  std::vector<NameEntry> entries_;
  std::unordered_map<std::string, uint16_t> index_;
  bool overflowed_ = false;
};

}  // namespace meridian::stats
