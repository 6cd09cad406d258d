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

// "postgres://…" / "postgresql://…" (libpq's URL, with any of its parameters), "sqlite:PATH" or a bare path.
Result<std::unique_ptr<Store>> OpenStore(const std::string& spec) {
  if (spec.starts_with("postgres://") || spec.starts_with("postgresql://")) return OpenPostgres(spec);
  const std::string path = spec.starts_with("sqlite:") ? spec.substr(7) : spec;
  if (path.empty()) return MakeError(ErrorCode::kInvalidArgument, "--store: sqlite:PATH needs a path");
  return OpenSqlite(path);
}

}  // namespace meridian::store
