#pragma once
// The strict YAML reader every configuration file goes through (plans, server.yaml, the environment
// registry): every key must be read (an unknown one is an error naming the allowed ones), values are checked
// by type and range, every string is UTF-8, and errors carry file:line:column and the dotted field path.

#include <yaml-cpp/yaml.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "core/result.h"

namespace meridian::config {

// Thrown inside a reader's parse only; each parser (ParsePlan, LoadServerConfig, ParseRegistry) turns it into
// an Error at its boundary.
struct ReadError {
  std::string message;
};

class Reader {
 public:
  // columns: false where the YAML was written from another format (TOML) that keeps only its lines.
  Reader(const std::string& file, bool columns = true) : file_(file), columns_(columns) {}
  [[noreturn]] void Fail(const YAML::Node& at, const std::string& field, const std::string& message) const;
  std::string Where(const YAML::Node& at) const;
  const std::string& file() const { return file_; }

 private:
  std::string file_;
  bool columns_;
};

// One YAML mapping being read. Call Done() after reading: unknown keys are errors naming the allowed ones.
class Fields {
 public:
  Fields(const Reader& reader, const YAML::Node& node, std::string path);
  bool Has(const std::string& key) const;
  YAML::Node Get(const std::string& key);  // undefined node when absent
  std::string String(const std::string& key, const std::string& fallback);
  int64_t Duration(const std::string& key, int64_t fallback, bool allow_zero = true);
  uint64_t Uint(const std::string& key, uint64_t fallback, uint64_t min = 0, uint64_t max = UINT32_MAX);
  double Number(const std::string& key, double fallback);
  bool Bool(const std::string& key, bool fallback);
  void Done();
  std::string Path(const std::string& key) const { return path_.empty() ? key : path_ + "." + key; }
  const YAML::Node& node() const { return node_; }
  [[noreturn]] void Fail(const std::string& key, const std::string& message) const;

 private:
  const Reader& reader_;
  YAML::Node node_;
  std::string path_;
  std::set<std::string> read_;
};

// Scalars and their errors.
std::string ScalarText(const Reader& r, const YAML::Node& n, const std::string& field);
int64_t DurationValue(const Reader& r, const YAML::Node& n, const std::string& field, bool allow_zero);

// yaml-cpp recurses once per nesting level: bound the depth of flow collections before it sees the text.
bool NestingTooDeep(const std::string& text, int limit);

// YAML::Load, then every key and value must be UTF-8: a double-quoted escape such as "\ud800" (a lone
// surrogate) makes bytes that are not, and what meridian reads becomes JSON and log lines, which are text.
// Fails naming file:line and the field.
YAML::Node LoadYaml(const Reader& r, const std::string& text);

}  // namespace meridian::config
