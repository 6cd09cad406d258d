#pragma once
// meridian core: Result/Error, assertions, durations and sizes, clocks, logging. The public header of
// src/core.

#include "core/assert.h"    // IWYU pragma: export
#include "core/clock.h"     // IWYU pragma: export
#include "core/duration.h"  // IWYU pragma: export
#include "core/log.h"       // IWYU pragma: export
#include "core/result.h"    // IWYU pragma: export
