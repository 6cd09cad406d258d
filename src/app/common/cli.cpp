#include "app/common/cli.h"

#include <fmt/format.h>

#include <cstdio>
#include <cstring>

#include "core/duration.h"
#include "core/utf8.h"

namespace meridian::app {

namespace {
// The flag an argument belongs to, for messages: "--name" for "--name=x" or for the value after "--name",
// else "argument N".
std::string ArgumentName(int argc, char** argv, int i) {
  const std::string_view arg = argv[i];
  if (arg.starts_with("-")) return std::string(arg.substr(0, arg.find('=')));
  if (i > 1 && i - 1 < argc && argv[i - 1][0] == '-' && std::strchr(argv[i - 1], '=') == nullptr)
    return argv[i - 1];
  return fmt::format("argument {}", i);
}
}  // namespace

bool ParseCommandLine(CLI::App& app, int argc, char** argv, int* exit_code) {
  // Names, regions, requesters and vars travel as JSON, which is UTF-8: bytes that are not are refused here,
  // by flag, rather than failing later (or being altered) on the way.
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) break;  // a command's own arguments are its business
    if (size_t bad = FirstInvalidUtf8(argv[i]); bad != std::string_view::npos) {
      fmt::print(stderr, "{}: {}: not valid UTF-8 (byte {} of the value); use UTF-8 text (see {} --help)\n",
                 app.get_name(), ArgumentName(argc, argv, i), bad + 1, app.get_name());
      *exit_code = kExitUsage;
      return false;
    }
  }
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
