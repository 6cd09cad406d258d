#include "stats/names.h"

#include <fmt/format.h>

namespace meridian::stats {

NameRegistry::NameRegistry(std::vector<NameEntry> initial) : entries_(std::move(initial)) {
  for (size_t i = 0; i < entries_.size(); ++i) index_.emplace(Key(entries_[i]), static_cast<uint16_t>(i));
}

std::string NameRegistry::Key(const NameEntry& e) {
  return fmt::format("{}\x1f{}\x1f{}\x1f{}", static_cast<int>(e.kind), e.scenario, e.group, e.name);
}

uint16_t NameRegistry::Intern(const NameEntry& entry) {
  std::string key = Key(entry);
  std::lock_guard lock(mu_);
  if (auto it = index_.find(key); it != index_.end()) return it->second;
  if (entries_.size() >= kMaxNames) {
    overflowed_ = true;
    NameEntry other{entry.kind, entry.scenario, "", "(other)"};
    std::string other_key = Key(other);
    if (auto it = index_.find(other_key); it != index_.end()) return it->second;
    key = std::move(other_key);
    entries_.push_back(std::move(other));
  } else {
    entries_.push_back(entry);
  }
  const auto index = static_cast<uint16_t>(entries_.size() - 1);
  index_.emplace(std::move(key), index);
  return index;
}

size_t NameRegistry::size() const {
  std::lock_guard lock(mu_);
  return entries_.size();
}

std::vector<NameEntry> NameRegistry::From(size_t first) const {
  std::lock_guard lock(mu_);
  if (first >= entries_.size()) return {};
  return {entries_.begin() + static_cast<std::ptrdiff_t>(first), entries_.end()};
}

bool NameRegistry::overflowed() const {
  std::lock_guard lock(mu_);
  return overflowed_;
}

}  // namespace meridian::stats
