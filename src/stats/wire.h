#pragma once
// The binary encoding of an IntervalSnapshot, as agents send it to the control plane once per second and as
// the store keeps it: varints and the sparse histogram encoding, so a report of 50 series is a few KiB.
// Decoding validates everything: a report is untrusted input.

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/result.h"
#include "stats/metrics.h"

namespace meridian::stats {

// `names`, when given, is sent instead of s.names (an agent's name-table entries new since its last report).
std::string EncodeSnapshot(const IntervalSnapshot& s,
                           const std::vector<std::pair<uint16_t, NameEntry>>* names = nullptr);
Result<IntervalSnapshot> DecodeSnapshot(std::string_view bytes);

}  // namespace meridian::stats
