#pragma once
// meridian stats: the mergeable histogram, per-series interval counters, summaries. The public header of
// src/stats.

#include "stats/histogram.h"  // IWYU pragma: export
#include "stats/metrics.h"    // IWYU pragma: export
#include "stats/summary.h"    // IWYU pragma: export
#include "stats/threshold.h"  // IWYU pragma: export
#include "stats/wire.h"       // IWYU pragma: export
