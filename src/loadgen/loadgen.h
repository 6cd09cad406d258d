#pragma once
// meridian loadgen: executors, schedules, VUs, iterations (declarative requests), worker threads and the
// engine. The public header of src/loadgen.

#include "loadgen/declarative.h"  // IWYU pragma: export
#include "loadgen/engine.h"       // IWYU pragma: export
#include "loadgen/executor.h"     // IWYU pragma: export
#include "loadgen/iteration.h"    // IWYU pragma: export
#include "loadgen/origins.h"      // IWYU pragma: export
#include "loadgen/schedule.h"     // IWYU pragma: export
#include "loadgen/template.h"     // IWYU pragma: export
