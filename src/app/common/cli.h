#pragma once
// Helpers shared by subcommands: CLI11 parsing with one-line errors, flag value parsing, exit codes.

#include <CLI/CLI.hpp>
#include <string>
#include <string_view>

#include "core/result.h"

namespace meridian::app {

constexpr int kExitOk = 0;
constexpr int kExitRunError = 1;
constexpr int kExitUsage = 2;

// Parses; on --help prints help and returns 0 via *exit_code; on a usage error prints one line
// "meridian CMD: why (see meridian CMD --help)" and returns 2 via *exit_code. Returns true to continue.
bool ParseCommandLine(CLI::App& app, int argc, char** argv, int* exit_code);

// Replaces CLI11's type names ("UINT:UINT in [1 - 1024]") with readable value names in --help.
void SetValueNames(CLI::App& app, std::initializer_list<std::pair<const char*, const char*>> names);

// Prints "meridian CMD: message" to stderr and returns `code`.
int Fail(std::string_view command, std::string_view message, int code);

// "--flag: <error message>" for a bad flag value.
Result<int64_t> DurationFlag(std::string_view flag, const std::string& text);

}  // namespace meridian::app
