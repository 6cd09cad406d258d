#include "config/reader.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdlib>

#include "core/duration.h"
#include "core/utf8.h"

namespace meridian::config {

std::string Reader::Where(const YAML::Node& at) const {
  if (!at.IsDefined() || at.Mark().is_null()) return file_;
  if (!columns_) return fmt::format("{}:{}", file_, at.Mark().line + 1);
  return fmt::format("{}:{}:{}", file_, at.Mark().line + 1, at.Mark().column + 1);
}

void Reader::Fail(const YAML::Node& at, const std::string& field, const std::string& message) const {
  throw ReadError{fmt::format("{}: {}: {}", Where(at), field, message)};
}

Fields::Fields(const Reader& reader, const YAML::Node& node, std::string path)
    : reader_(reader), node_(node), path_(std::move(path)) {
  if (!node.IsMap())
    reader_.Fail(node, path_.empty() ? "plan" : path_, "must be a mapping of keys to values");
  std::set<std::string> seen;
  for (const auto& kv : node) {
    if (!kv.first.IsScalar()) reader_.Fail(kv.first, path_, "keys must be plain strings");
    const std::string key = kv.first.Scalar();
    if (!seen.insert(key).second) reader_.Fail(kv.first, Path(key), "is given twice");
  }
}

bool Fields::Has(const std::string& key) const { return static_cast<bool>(node_[key]); }

YAML::Node Fields::Get(const std::string& key) {
  read_.insert(key);
  for (const auto& kv : node_) {
    if (kv.first.Scalar() == key) {
      if (kv.second.IsNull()) reader_.Fail(kv.first, Path(key), "has no value");
      return kv.second;
    }
  }
  return YAML::Node(YAML::NodeType::Undefined);
}

void Fields::Fail(const std::string& key, const std::string& message) const {
  for (const auto& kv : node_) {
    if (kv.first.Scalar() == key) reader_.Fail(kv.second, Path(key), message);
  }
  reader_.Fail(node_, Path(key), message);
}

std::string ScalarText(const Reader& r, const YAML::Node& n, const std::string& field) {
  if (!n.IsScalar()) r.Fail(n, field, "must be a single value, not a list or mapping");
  return n.Scalar();
}

int64_t DurationValue(const Reader& r, const YAML::Node& n, const std::string& field, bool allow_zero) {
  const std::string text = ScalarText(r, n, field);
  auto d = ParseDuration(text);
  if (!d.ok()) r.Fail(n, field, d.error().message);
  if (*d < 0 || (!allow_zero && *d == 0)) {
    r.Fail(n, field, allow_zero ? "must not be negative" : "must be greater than 0");
  }
  return *d;
}

std::string Fields::String(const std::string& key, const std::string& fallback) {
  YAML::Node n = Get(key);
  return n ? ScalarText(reader_, n, Path(key)) : fallback;
}

int64_t Fields::Duration(const std::string& key, int64_t fallback, bool allow_zero) {
  YAML::Node n = Get(key);
  return n ? DurationValue(reader_, n, Path(key), allow_zero) : fallback;
}

uint64_t Fields::Uint(const std::string& key, uint64_t fallback, uint64_t min, uint64_t max) {
  YAML::Node n = Get(key);
  if (!n) return fallback;
  const std::string text = ScalarText(reader_, n, Path(key));
  char* end = nullptr;
  errno = 0;
  const unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || text[0] == '-' || end != text.c_str() + text.size() || errno == ERANGE) {
    reader_.Fail(n, Path(key), fmt::format("'{}' is not a whole number", text));
  }
  if (v < min || v > max) reader_.Fail(n, Path(key), fmt::format("must be from {} to {}", min, max));
  return v;
}

double Fields::Number(const std::string& key, double fallback) {
  YAML::Node n = Get(key);
  if (!n) return fallback;
  const std::string text = ScalarText(reader_, n, Path(key));
  char* end = nullptr;
  const double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !std::isfinite(v)) {
    reader_.Fail(n, Path(key), fmt::format("'{}' is not a number", text));
  }
  return v;
}

bool Fields::Bool(const std::string& key, bool fallback) {
  YAML::Node n = Get(key);
  if (!n) return fallback;
  const std::string text = ScalarText(reader_, n, Path(key));
  if (text == "true") return true;
  if (text == "false") return false;
  reader_.Fail(n, Path(key), fmt::format("'{}' is not true or false", text));
}

void Fields::Done() {
  std::string allowed;
  for (const auto& k : read_) allowed += (allowed.empty() ? "" : ", ") + k;
  for (const auto& kv : node_) {
    const std::string key = kv.first.Scalar();
    if (!read_.count(key)) {
      reader_.Fail(kv.first, Path(key), fmt::format("unknown key (allowed here: {})", allowed));
    }
  }
}

namespace {
void CheckUtf8(const Reader& r, const YAML::Node& n, const std::string& path) {
  const auto check = [&](const YAML::Node& at, const std::string& s, const std::string& field) {
    if (size_t bad = FirstInvalidUtf8(s); bad != std::string::npos) {
      r.Fail(
          at, field.empty() ? "(document)" : field,
          fmt::format("not valid UTF-8 (byte {} of the value; an escape such as \\ud800 is not a character)",
                      bad + 1));
    }
  };
  if (n.IsScalar()) return check(n, n.Scalar(), path);
  if (n.IsSequence()) {
    for (size_t i = 0; i < n.size(); ++i) CheckUtf8(r, n[i], fmt::format("{}[{}]", path, i));
  } else if (n.IsMap()) {
    for (const auto& kv : n) {
      const std::string key = kv.first.IsScalar() ? kv.first.Scalar() : "";
      check(kv.first, key, path);
      CheckUtf8(r, kv.second, path.empty() ? key : path + "." + key);
    }
  }
}
}  // namespace

YAML::Node LoadYaml(const Reader& r, const std::string& text) {
  YAML::Node root = YAML::Load(text);
  CheckUtf8(r, root, "");
  return root;
}

bool NestingTooDeep(const std::string& text, int limit) {
  int depth = 0;
  for (char c : text) {
    if (c == '[' || c == '{') {
      if (++depth > limit) return true;
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return false;
}

}  // namespace meridian::config
