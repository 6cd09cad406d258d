#pragma once
// JavaScript scenarios on embedded SpiderMonkey (DESIGN §8).
//
// One SpiderMonkey context per worker thread, one realm of it per script scenario; every VU of a script
// scenario is an async iteration in its scenario's realm, so a VU costs kilobytes. Scripts are ES modules;
// they import each other by relative path and the built-in 'meridian' module (http, check, sleep, group). Two
// forms:
//   Constellation: export const script = async (axiosInstance) => { ... }
//   meridian/k6:   export default async function () { ... }   (+ export const options = { ... })
//
// Scripts never touch the file system, processes or the network themselves: a Bundle carries every module
// and every file the init code open()s, built once where the plan is loaded (LoadBundle) and shipped with the
// plan; agents run scripts from the bundle alone.

#include <cstdint>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "core/result.h"
#include "loadgen/iteration.h"

namespace meridian::script {

// The files of a script: keys are paths relative to the plan's directory ("journey.js", "lib/users.js",
// "data/users.json"), as the plan's `script:` names the entry.
struct Bundle {
  std::string entry;
  std::map<std::string, std::string> files;
};

// What a script's init code exports.
struct ScriptInfo {
  enum class Form { kMeridian, kConstellation };
  Form form = Form::kMeridian;
  nlohmann::json options;  // `export const options` as JSON (null when absent)
};

// Reads `entry` (relative to `base_dir`), runs its init code once in a sandbox to find every module it
// imports and every file it open()s, and returns them. Errors carry file:line:column (syntax errors,
// exceptions at init time, a missing import, no usable export).
Result<Bundle> LoadBundle(const std::string& base_dir, const std::string& entry);

// Compiles and initialises a bundle as an agent would: the same checks, from the bundle alone.
Result<ScriptInfo> Inspect(const Bundle& bundle);

// Normalises "a/./b/../c.js" to "a/c.js"; leading ".." stay. Exposed for tests.
std::string NormalizePath(const std::string& path);

struct ScriptOptions {
  Bundle bundle;
  std::string scenario;                    // the scenario's name, for messages
  std::string base_url;                    // axios baseURL for relative URLs ("" = none)
  int64_t iteration_timeout_ns = 0;        // 0: no limit
  std::map<std::string, std::string> env;  // __ENV
  bool insecure = false;
  // Per-worker heap limit of the JavaScript engine.
  uint32_t heap_max_bytes = 512u << 20;
};

// The IterationFactoryMaker for a script scenario: builds the worker's context (once per worker thread) and
// one iteration object per VU.
loadgen::IterationFactoryMaker ScriptFactoryMaker(std::shared_ptr<const ScriptOptions> options);

}  // namespace meridian::script
