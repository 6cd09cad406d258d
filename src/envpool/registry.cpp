// The registry file: parsing, validation, and the JSON the store keeps.

#include "envpool/registry.h"

#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

#include "config/reader.h"
#include "core/utf8.h"

namespace meridian::envpool {

using config::Fields;
using config::Reader;
using nlohmann::json;
using nlohmann::ordered_json;

namespace {

constexpr int64_t kSecond = 1'000'000'000;

// A command: a shell line (run by /bin/sh -c) or an argv list.
Command CommandValue(const Reader& r, const YAML::Node& n, const std::string& field, int64_t timeout_ns) {
  Command c;
  c.timeout_ns = timeout_ns;
  if (n.IsScalar()) {
    const std::string line = config::ScalarText(r, n, field);
    if (line.empty()) r.Fail(n, field, "is empty (give a shell line or an argv list)");
    c.argv = {"/bin/sh", "-c", line};
  } else if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i)
      c.argv.push_back(config::ScalarText(r, n[i], fmt::format("{}[{}]", field, i)));
    if (c.argv.empty() || c.argv[0].empty()) r.Fail(n, field, "is empty (give a shell line or an argv list)");
  } else {
    r.Fail(n, field, "must be a shell line or an argv list");
  }
  return c;
}

Credentials CredentialsValue(const Reader& r, const YAML::Node& n, const std::string& field) {
  Fields f(r, n, field);
  Credentials c;
  const int64_t timeout = f.Duration("timeout", 60 * kSecond, false);
  if (YAML::Node cmd = f.Get("command")) c.command = CommandValue(r, cmd, f.Path("command"), timeout);
  if (YAML::Node cmd = f.Get("revoke")) c.revoke = CommandValue(r, cmd, f.Path("revoke"), timeout);
  if (YAML::Node files = f.Get("files")) {
    if (!files.IsMap()) r.Fail(files, f.Path("files"), "must map variable names to files");
    for (const auto& kv : files) {
      const std::string name = kv.first.Scalar();
      c.files[name] = config::ScalarText(r, kv.second, f.Path("files") + "." + name);
    }
  }
  f.Done();
  if (c.empty()) f.Fail("command", "give a command (printing a JSON object) or files");
  return c;
}

PoolSpec ParsePool(const Reader& r, const std::string& name, const YAML::Node& n, const std::string& path) {
  Fields f(r, n, path);
  PoolSpec p;
  p.name = name;
  p.max_duration_ns = f.Duration("max_duration", p.max_duration_ns, false);
  p.default_duration_ns =
      f.Duration("default_duration", std::min(p.default_duration_ns, p.max_duration_ns), false);
  if (p.default_duration_ns > p.max_duration_ns) f.Fail("default_duration", "must not exceed max_duration");
  const int64_t cleanup_timeout = f.Duration("cleanup_timeout", 30 * 60 * kSecond, false);
  if (YAML::Node c = f.Get("cleanup")) p.cleanup = CommandValue(r, c, f.Path("cleanup"), cleanup_timeout);
  p.cleanup.timeout_ns = cleanup_timeout;
  p.cleanup_concurrency = static_cast<uint32_t>(f.Uint("cleanup_concurrency", 4, 1, 256));
  if (YAML::Node c = f.Get("credentials")) p.credentials = CredentialsValue(r, c, f.Path("credentials"));
  if (YAML::Node g = f.Get("grow")) {
    Fields gf(r, g, f.Path("grow"));
    p.grow_max = static_cast<uint32_t>(gf.Uint("max", 0, 1, 100'000));
    if (!gf.Has("max")) gf.Fail("max", "is required (the pool's largest size)");
    const int64_t timeout = gf.Duration("timeout", 30 * 60 * kSecond, false);
    YAML::Node create = gf.Get("create");
    if (!create) gf.Fail("create", "is required (a command printing the new environment as JSON)");
    p.grow_create = CommandValue(r, create, gf.Path("create"), timeout);
    gf.Done();
  }
  f.Done();
  return p;
}

EnvironmentSpec ParseEnvironment(const Reader& r, const YAML::Node& n, const std::string& path,
                                 const std::map<std::string, PoolSpec>& pools) {
  Fields f(r, n, path);
  EnvironmentSpec e;
  e.id = f.String("id", "");
  if (!f.Has("id")) f.Fail("id", "is required");
  if (!ValidId(e.id)) f.Fail("id", "use letters, digits, '.', '_' and '-' (at most 128)");
  e.pool = f.String("pool", "");
  if (!f.Has("pool")) f.Fail("pool", "is required");
  if (!pools.count(e.pool)) {
    std::string names;
    for (const auto& [name, _] : pools) names += (names.empty() ? "" : ", ") + name;
    f.Fail("pool", fmt::format("'{}' is not a pool of this file (pools: {})", e.pool, names));
  }
  e.region = f.String("region", "");
  e.account = f.String("account", "");
  if (YAML::Node caps = f.Get("capabilities")) {
    if (!caps.IsMap()) r.Fail(caps, f.Path("capabilities"), "must map names to values");
    for (const auto& kv : caps) {
      const std::string key = kv.first.Scalar();
      e.capabilities[key] = config::ScalarText(r, kv.second, f.Path("capabilities") + "." + key);
    }
  }
  if (YAML::Node c = f.Get("credentials")) e.credentials = CredentialsValue(r, c, f.Path("credentials"));
  if (YAML::Node c = f.Get("cleanup")) {
    e.cleanup = CommandValue(r, c, f.Path("cleanup"), pools.at(e.pool).cleanup.timeout_ns);
  }
  f.Done();
  return e;
}

json CommandJson(const Command& c) { return {{"argv", c.argv}, {"timeout_ns", c.timeout_ns}}; }
Command CommandFrom(const json& j) {
  Command c;
  if (j.is_object()) {
    c.argv = j.value("argv", std::vector<std::string>{});
    c.timeout_ns = j.value("timeout_ns", int64_t{0});
  }
  return c;
}
json CredentialsJson(const Credentials& c) {
  return {{"command", CommandJson(c.command)}, {"revoke", CommandJson(c.revoke)}, {"files", c.files}};
}
Credentials CredentialsFrom(const json& j) {
  Credentials c;
  c.command = CommandFrom(j.value("command", json::object()));
  c.revoke = CommandFrom(j.value("revoke", json::object()));
  c.files = j.value("files", std::map<std::string, std::string>{});
  return c;
}

}  // namespace

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  return std::all_of(id.begin(), id.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

Result<Registry> ParseRegistry(const std::string& text, const std::string& file) {
  Reader reader(file);
  if (text.size() > 16 * 1024 * 1024) {
    return MakeError(ErrorCode::kInvalidArgument, file + ": the registry is larger than 16 MiB");
  }
  if (size_t bad = FirstInvalidUtf8(text); bad != std::string::npos) {
    const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(bad), '\n');
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}:{}: not valid UTF-8 (byte {})", file, line, bad));
  }
  if (config::NestingTooDeep(text, 64)) {
    return MakeError(ErrorCode::kInvalidArgument,
                     file + ": lists and mappings nest more than 64 levels deep");
  }
  try {
    const YAML::Node root = config::LoadYaml(reader, text);
    Registry reg;
    reg.source = file;
    if (!root.IsDefined() || root.IsNull()) return reg;  // empty: Sync refuses it while pools exist
    Fields f(reader, root, "");
    reg.allow_empty = f.Bool("allow_empty", false);
    std::map<std::string, PoolSpec> pools;
    if (YAML::Node ps = f.Get("pools")) {
      if (!ps.IsMap()) reader.Fail(ps, "pools", "must map pool names to their settings");
      for (const auto& kv : ps) {
        const std::string name = kv.first.Scalar();
        if (!ValidId(name)) {
          reader.Fail(kv.first, "pools." + name, "pool names use letters, digits, '.', '_' and '-'");
        }
        pools[name] = ParsePool(reader, name, kv.second, "pools." + name);
        reg.pools.push_back(pools[name]);
      }
    }
    std::set<std::string> ids;
    if (YAML::Node es = f.Get("environments")) {
      if (!es.IsSequence()) reader.Fail(es, "environments", "must be a list");
      for (size_t i = 0; i < es.size(); ++i) {
        const std::string path = fmt::format("environments[{}]", i);
        EnvironmentSpec e = ParseEnvironment(reader, es[i], path, pools);
        if (!ids.insert(e.id).second) {
          reader.Fail(es[i]["id"], path + ".id", fmt::format("'{}' is registered twice", e.id));
        }
        reg.environments.push_back(std::move(e));
      }
    }
    f.Done();
    return reg;
  } catch (const config::ReadError& e) {
    return MakeError(ErrorCode::kInvalidArgument, e.message);
  } catch (const YAML::Exception& e) {
    return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}:{}:{}: not valid YAML: {}", file,
                                                              e.mark.line + 1, e.mark.column + 1, e.msg));
  }
}

Result<Registry> LoadRegistryFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return MakeError(ErrorCode::kInvalidArgument, fmt::format("{}: cannot read the registry", path));
  std::stringstream ss;
  ss << in.rdbuf();
  return ParseRegistry(ss.str(), path);
}

json PoolJson(const PoolSpec& p) {
  return {{"max_duration_ns", p.max_duration_ns},
          {"default_duration_ns", p.default_duration_ns},
          {"cleanup", CommandJson(p.cleanup)},
          {"cleanup_concurrency", p.cleanup_concurrency},
          {"credentials", CredentialsJson(p.credentials)},
          {"grow_max", p.grow_max},
          {"grow_create", CommandJson(p.grow_create)}};
}

json EnvironmentJson(const EnvironmentSpec& e) {
  json j = {{"region", e.region}, {"account", e.account}, {"capabilities", e.capabilities}};
  if (e.credentials) j["credentials"] = CredentialsJson(*e.credentials);
  if (e.cleanup) j["cleanup"] = CommandJson(*e.cleanup);
  return j;
}

Result<PoolSpec> PoolFromJson(const std::string& name, const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object())
    return MakeError(ErrorCode::kIo, fmt::format("pool {}: stored settings are not JSON", name));
  try {
    PoolSpec p;
    p.name = name;
    p.max_duration_ns = j.at("max_duration_ns").get<int64_t>();
    p.default_duration_ns = j.at("default_duration_ns").get<int64_t>();
    p.cleanup = CommandFrom(j.at("cleanup"));
    p.cleanup_concurrency = j.at("cleanup_concurrency").get<uint32_t>();
    p.credentials = CredentialsFrom(j.at("credentials"));
    p.grow_max = j.at("grow_max").get<uint32_t>();
    p.grow_create = CommandFrom(j.at("grow_create"));
    return p;
  } catch (const json::exception& e) {
    return MakeError(ErrorCode::kIo, fmt::format("pool {}: stored settings: {}", name, e.what()));
  }
}

Result<EnvironmentSpec> EnvironmentFromJson(const std::string& id, const std::string& pool,
                                            const std::string& text) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object())
    return MakeError(ErrorCode::kIo, fmt::format("environment {}: stored spec is not JSON", id));
  try {
    EnvironmentSpec e;
    e.id = id;
    e.pool = pool;
    e.region = j.value("region", "");
    e.account = j.value("account", "");
    e.capabilities = j.value("capabilities", std::map<std::string, std::string>{});
    if (j.contains("credentials")) e.credentials = CredentialsFrom(j["credentials"]);
    if (j.contains("cleanup")) e.cleanup = CommandFrom(j["cleanup"]);
    return e;
  } catch (const json::exception& ex) {
    return MakeError(ErrorCode::kIo, fmt::format("environment {}: stored spec: {}", id, ex.what()));
  }
}

ordered_json PublicJson(const EnvironmentSpec& e) {
  ordered_json caps = ordered_json::object();
  for (const auto& [k, v] : e.capabilities) caps[k] = v;
  return {
      {"id", e.id}, {"pool", e.pool}, {"region", e.region}, {"account", e.account}, {"capabilities", caps}};
}

bool Matches(const EnvironmentSpec& env, const Requirements& require) {
  for (const auto& [key, allowed] : require) {
    std::string value;
    if (auto it = env.capabilities.find(key); it != env.capabilities.end()) {
      value = it->second;
    } else if (key == "region") {
      value = env.region;
    } else if (key == "account") {
      value = env.account;
    } else {
      return false;
    }
    if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) return false;
  }
  return true;
}

Result<std::pair<std::string, std::vector<std::string>>> ParseRequirement(const std::string& text) {
  auto trim = [](std::string s) {
    const auto b = s.find_first_not_of(" \t");
    const auto e = s.find_last_not_of(" \t");
    return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  };
  auto split = [&](const std::string& list) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i <= list.size()) {
      const size_t j = std::min(list.find(',', i), list.size());
      if (std::string v = trim(list.substr(i, j - i)); !v.empty()) out.push_back(v);
      i = j + 1;
    }
    return out;
  };
  std::string key, values;
  if (const size_t in = text.find(" in "); in != std::string::npos) {
    key = trim(text.substr(0, in));
    values = trim(text.substr(in + 4));
    if (values.size() < 2 || values.front() != '[' || values.back() != ']') {
      return MakeError(ErrorCode::kInvalidArgument,
                       fmt::format("--require '{}': write KEY in [A, B] (or KEY=VALUE, KEY=A,B)", text));
    }
    values = values.substr(1, values.size() - 2);
  } else if (const size_t eq = text.find('='); eq != std::string::npos) {
    key = trim(text.substr(0, eq));
    values = text.substr(eq + 1);
  }
  auto list = split(values);
  if (key.empty() || list.empty()) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("--require '{}': write KEY=VALUE, KEY=A,B or 'KEY in [A, B]'", text));
  }
  return std::pair<std::string, std::vector<std::string>>(key, list);
}

}  // namespace meridian::envpool
