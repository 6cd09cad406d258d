// What both backends share: the states' stored names, and opening a store by its spec.

#include "store/store.h"

#include <fmt/format.h>

#include "store/store_internal.h"

namespace meridian::store {
namespace {
constexpr const char* kEnvStates[] = {"available", "allocated", "cleaning", "dirty", "retired"};
constexpr const char* kAllocationStates[] = {"active", "released", "expired"};
constexpr const char* kRunStates[] = {"created",  "preparing", "ready",  "running", "draining",
                                      "cleaning", "passed",    "failed", "aborted", "errored"};
constexpr const char* kAssignmentStates[] = {"assigned", "ready", "running", "done", "lost"};
static_assert(std::size(kRunStates) == static_cast<size_t>(RunState::kErrored) + 1);
static_assert(std::size(kAssignmentStates) == static_cast<size_t>(AssignmentState::kLost) + 1);
static_assert(std::size(kEnvStates) == static_cast<size_t>(EnvState::kRetired) + 1);
static_assert(std::size(kAllocationStates) == static_cast<size_t>(AllocationState::kExpired) + 1);
}  // namespace

const char* EnvStateName(EnvState state) { return kEnvStates[static_cast<size_t>(state)]; }
std::optional<EnvState> ParseEnvState(std::string_view text) {
  for (size_t i = 0; i < std::size(kEnvStates); ++i) {
    if (text == kEnvStates[i]) return static_cast<EnvState>(i);
  }
  return std::nullopt;
}
const char* AllocationStateName(AllocationState state) {
  return kAllocationStates[static_cast<size_t>(state)];
}
std::optional<AllocationState> ParseAllocationState(std::string_view text) {
  for (size_t i = 0; i < std::size(kAllocationStates); ++i) {
    if (text == kAllocationStates[i]) return static_cast<AllocationState>(i);
  }
  return std::nullopt;
}

const char* RunStateName(RunState state) { return kRunStates[static_cast<size_t>(state)]; }
std::optional<RunState> ParseRunState(std::string_view text) {
  for (size_t i = 0; i < std::size(kRunStates); ++i) {
    if (text == kRunStates[i]) return static_cast<RunState>(i);
  }
  return std::nullopt;
}
bool Terminal(RunState state) { return state >= RunState::kPassed; }
const char* AssignmentStateName(AssignmentState state) {
  return kAssignmentStates[static_cast<size_t>(state)];
}
std::optional<AssignmentState> ParseAssignmentState(std::string_view text) {
  for (size_t i = 0; i < std::size(kAssignmentStates); ++i) {
    if (text == kAssignmentStates[i]) return static_cast<AssignmentState>(i);
  }
  return std::nullopt;
}

// The run states that are (or are not) terminal as an SQL list: "('passed','failed','aborted','errored')".
// Active runs are the rows in a known non-terminal state: a row whose state this version does not know is not
// resumed.
std::string RunStatesSql(bool terminal) {
  std::string list;
  for (size_t i = 0; i < std::size(kRunStates); ++i) {
    if (Terminal(static_cast<RunState>(i)) == terminal)
      list += fmt::format("{}'{}'", list.empty() ? "(" : ",", kRunStates[i]);
  }
  return list + ")";
}

std::string RedactStoreSpec(const std::string& spec) {
  if (!spec.starts_with("postgres://") && !spec.starts_with("postgresql://")) return spec;
  std::string out = spec;
  const size_t scheme = out.find("://") + 3;
  // The user part ends at the last '@' before the parameters: a password may hold '@' or '/' unencoded.
  const size_t query = out.find('?', scheme);
  const size_t at = out.rfind('@', query == std::string::npos ? std::string::npos : query);
  if (at != std::string::npos && at >= scheme) {
    const size_t colon = out.find(':', scheme);
    if (colon != std::string::npos && colon < at) out.replace(colon + 1, at - colon - 1, "***");
  }
  for (size_t p = out.find("password="); p != std::string::npos; p = out.find("password=", p + 1)) {
    const size_t end = out.find('&', p);
    out.replace(p + 9, (end == std::string::npos ? out.size() : end) - p - 9, "***");
  }
  return out;
}

// "postgres://…" / "postgresql://…" (libpq's URL, with any of its parameters), "sqlite:PATH" or a bare path.
// libpq's key=value form ("host=db password=…") is refused rather than taken for a file name.
Result<std::unique_ptr<Store>> OpenStore(const std::string& spec) {
  if (spec.starts_with("postgres://") || spec.starts_with("postgresql://")) return OpenPostgres(spec);
  if (!spec.starts_with("sqlite:") && spec.find('=') != std::string::npos &&
      spec.find_first_of(" \t") != std::string::npos) {
    return MakeError(
        ErrorCode::kInvalidArgument,
        "--store: a key=value connection string is not accepted (it would print as it is): use a "
        "postgres://USER@HOST:PORT/DB URL, the password in $PGPASSWORD or ~/.pgpass");
  }
  const std::string path = spec.starts_with("sqlite:") ? spec.substr(7) : spec;
  if (path.empty()) return MakeError(ErrorCode::kInvalidArgument, "--store: sqlite:PATH needs a path");
  return OpenSqlite(path);
}

}  // namespace meridian::store
