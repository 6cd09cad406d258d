#pragma once
// The environment registry (DESIGN §9): a YAML file of pools and environments, validated strictly (errors
// name file:line and the field), applied by `meridian env sync`, at server start and on SIGHUP. The parsed
// specs are also what the store keeps (as JSON), so a restarted server needs no file to run its cleanups.
//
//   pools:
//     aws:
//       max_duration: 3h              # an allocation's longest life, renewals included (default 3h)
//       default_duration: 1h          # when a request names none (default: the smaller of 1h and
//       max_duration) cleanup: ./scripts/nuke.sh    # a shell line, or an argv list; the environment as JSON
//       on stdin cleanup_timeout: 30m cleanup_concurrency: 4 credentials: { command: [aws-assume, --json],
//       revoke: …, timeout: 1m }   # or { files: {KEY: path} } grow: { max: 10, create:
//       ./scripts/create-stack.sh, timeout: 20m }
//   environments:
//     - { id: aws-1, pool: aws, region: us-east-1, account: "1234", capabilities: { gpu: "yes" } }
//   allow_empty: true                   # only to remove every pool on purpose

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"

namespace meridian::envpool {

struct Command {
  std::vector<std::string> argv;  // a shell line is {"/bin/sh", "-c", LINE}
  int64_t timeout_ns = 0;
  bool empty() const { return argv.empty(); }
};

struct Credentials {
  Command command;                           // prints a JSON object: handed to the holder
  Command revoke;                            // run at deallocation, the credentials' JSON on stdin
  std::map<std::string, std::string> files;  // NAME: path (secrets read at allocation)
  bool empty() const { return command.empty() && files.empty(); }
};

struct PoolSpec {
  std::string name;
  int64_t max_duration_ns = 3 * 3600 * 1'000'000'000LL;
  int64_t default_duration_ns = 3600 * 1'000'000'000LL;
  Command cleanup;  // timeout = cleanup_timeout
  uint32_t cleanup_concurrency = 4;
  Credentials credentials;
  uint32_t grow_max = 0;  // 0: no grow mode
  Command grow_create;    // prints the new environment as JSON (id, region, account, capabilities)
};

struct EnvironmentSpec {
  std::string id;
  std::string pool;
  std::string region;
  std::string account;
  std::map<std::string, std::string> capabilities;
  std::optional<Credentials> credentials;  // overrides the pool's
  std::optional<Command> cleanup;          // overrides the pool's command (the pool's timeout applies)
};

struct Registry {
  std::string source;
  // A registry without pools removes every pool and drains every environment: refused unless the file says
  // `allow_empty: true` (an empty file is more often an editor or a tool mid-write than a decision).
  bool allow_empty = false;
  std::vector<PoolSpec> pools;
  std::vector<EnvironmentSpec> environments;
};

Result<Registry> ParseRegistry(const std::string& text, const std::string& file);
Result<Registry> LoadRegistryFile(const std::string& path);

// The forms the store keeps.
nlohmann::json PoolJson(const PoolSpec& pool);
nlohmann::json EnvironmentJson(const EnvironmentSpec& env);
Result<PoolSpec> PoolFromJson(const std::string& name, const std::string& json);
Result<EnvironmentSpec> EnvironmentFromJson(const std::string& id, const std::string& pool,
                                            const std::string& json);

// An environment's description for holders and hooks: id, pool, region, account, capabilities (no secrets).
nlohmann::ordered_json PublicJson(const EnvironmentSpec& env);

// `require`: capability (or region, account) -> the allowed values (one value: `key: value`; several:
// `key in [a, b]`).
using Requirements = std::map<std::string, std::vector<std::string>>;
bool Matches(const EnvironmentSpec& env, const Requirements& require);
// "key=value", "key=a,b" or "key in [a, b]" (the CLI's --require).
Result<std::pair<std::string, std::vector<std::string>>> ParseRequirement(const std::string& text);

bool ValidId(const std::string& id);  // letters, digits, . _ - (at most 128)

}  // namespace meridian::envpool
