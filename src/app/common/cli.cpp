#include "app/common/cli.h"

#include <fmt/format.h>

#include <cstdio>

#include "core/duration.h"

namespace meridian::app {

bool ParseCommandLine(CLI::App& app, int argc, char** argv, int* exit_code) {
  try {
    app.parse(argc, argv);
    return true;
  } catch (const CLI::CallForHelp&) {
    std::fputs(app.help().c_str(), stdout);
    *exit_code = kExitOk;
  } catch (const CLI::CallForAllHelp&) {
    std::fputs(app.help("", CLI::AppFormatMode::All).c_str(), stdout);
    *exit_code = kExitOk;
  } catch (const CLI::ParseError& e) {
    std::string what = e.what();
    for (char& c : what) {
      if (c == '\n') c = ' ';
    }
    fmt::print(stderr, "{}: {} (see {} --help)\n", app.get_name(), what, app.get_name());
    *exit_code = kExitUsage;
  }
  return false;
}

void SetValueNames(CLI::App& app, std::initializer_list<std::pair<const char*, const char*>> names) {
  for (const auto& [option, value] : names) app.get_option(option)->type_name(value);
}

int Fail(std::string_view command, std::string_view message, int code) {
  fmt::print(stderr, "{}: {}\n", command, message);
  return code;
}

Result<int64_t> DurationFlag(std::string_view flag, const std::string& text) {
  auto d = ParseDuration(text);
  if (!d.ok()) return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}: {}", flag, d.error().message));
  return d;
}

}  // namespace meridian::app
