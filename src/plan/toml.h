#pragma once
// TOML plans (ardere reads its plans as TOML too): the document is rewritten as YAML whose every key stays on
// its TOML line, so the strict YAML reader's file:line errors point into the TOML file.

#include <string>

#include "core/result.h"

namespace meridian::plan {

// The YAML text of a TOML document, or "FILE:LINE:COLUMN: not valid TOML: ..." (also for what TOML has and
// plans cannot hold: dates and times, inf and nan).
Result<std::string> TomlToYaml(const std::string& text, const std::string& file);

// FILE names a TOML plan (its extension is .toml).
bool IsTomlFile(const std::string& file);

}  // namespace meridian::plan
