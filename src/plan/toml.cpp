#include "plan/toml.h"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/json.h"

namespace meridian::plan {
namespace {

struct TomlError {
  std::string message;
};

// Block YAML whose every key is written on its TOML line: `"key": value` for values, `"key":` and the
// members below for tables, `- ` before the first member of each table of an array of tables (the [[x]]
// header lines stay blank). Inline tables and arrays, and tables made by dotted keys, are JSON flow on their
// key's line.
class Writer {
 public:
  explicit Writer(const std::string& file) : file_(file) {}

  void Table(const toml::table& t, int indent, bool dash) {
    bool first = true;
    for (const auto& [key, node] : Members(t)) {
      const std::string k = Quote(std::string(key->str()));
      const int64_t at = key->source().begin.line;
      const std::string lead = dash && first ? "- " : "";
      const int in = dash && first ? indent - 2 : indent;
      first = false;
      if (const toml::table* sub = node->as_table(); sub != nullptr && !Flow(*sub, at)) {
        // Just above its first value: the tables of [a.b.c] share the header's line, and each key needs one.
        const auto [line, depth] = FirstValue(*sub);
        Line(line - depth, in, lead + k + ":");
        Table(*sub, indent + 2, false);
      } else if (const toml::array* a = node->as_array(); a != nullptr && IsArrayOfTables(*a)) {
        Line(at, in, lead + k + ":");
        for (const auto& element : *a) {
          const toml::table& e = *element.as_table();
          if (Flow(e, e.source().begin.line)) {
            Line(e.source().begin.line, indent + 2, "- " + JsonText(Json(e)));
          } else {
            Table(e, indent + 4, true);
          }
        }
      } else {
        Line(at, in, lead + k + ": " + JsonText(Json(*node)));
      }
    }
  }

  std::string Take() { return std::move(out_) + "\n"; }

 private:
  // A table's members in the order of their lines (toml++ keeps them sorted by key).
  static std::vector<std::pair<const toml::key*, const toml::node*>> Members(const toml::table& t) {
    std::vector<std::pair<const toml::key*, const toml::node*>> m;
    for (const auto& [key, node] : t) m.emplace_back(&key, &node);
    std::stable_sort(m.begin(), m.end(), [](const auto& a, const auto& b) {
      const auto& x = a.first->source().begin;
      const auto& y = b.first->source().begin;
      return x.line != y.line ? x.line < y.line : x.column < y.column;
    });
    return m;
  }

  // Written on one line: an inline table, an empty one, or one made by dotted keys on that line.
  static bool Flow(const toml::table& t, int64_t line) {
    if (t.is_inline() || t.empty()) return true;
    return std::all_of(t.begin(), t.end(), [&](const auto& member) {
      const toml::table* sub = member.second.as_table();
      return member.first.source().begin.line == line && (sub == nullptr || Flow(*sub, line));
    });
  }

  // The line of a block table's first value, and how many keys lead to it (the table's own included).
  static std::pair<int64_t, int64_t> FirstValue(const toml::table& t) {
    const auto members = Members(t);
    const auto& [key, node] = members.front();  // not empty: empty tables are flow
    const int64_t at = key->source().begin.line;
    if (const toml::table* sub = node->as_table(); sub != nullptr && !Flow(*sub, at)) {
      const auto [line, depth] = FirstValue(*sub);
      return {line, depth + 1};
    }
    return {at, 1};
  }

  static bool IsArrayOfTables(const toml::array& a) {
    return !a.empty() && std::all_of(a.begin(), a.end(), [](const toml::node& n) {
      return n.is_table() && !n.as_table()->is_inline();
    });
  }

  void Line(int64_t want, int indent, const std::string& text) {
    if (!out_.empty()) {
      out_ += '\n';
      ++line_;
    }
    while (line_ < want) {
      out_ += '\n';
      ++line_;
    }
    out_.append(static_cast<size_t>(indent), ' ');
    out_ += text;
  }

  static std::string Quote(const std::string& s) { return JsonText(nlohmann::json(s)); }

  nlohmann::json Json(const toml::node& n) const {
    if (const auto* t = n.as_table()) {
      nlohmann::json o = nlohmann::json::object();
      for (const auto& [key, node] : Members(*t)) o[std::string(key->str())] = Json(*node);
      return o;
    }
    if (const auto* a = n.as_array()) {
      nlohmann::json l = nlohmann::json::array();
      for (const auto& e : *a) l.push_back(Json(e));
      return l;
    }
    if (const auto* s = n.as_string()) return s->get();
    if (const auto* i = n.as_integer()) return i->get();
    if (const auto* b = n.as_boolean()) return b->get();
    if (const auto* d = n.as_floating_point()) {
      if (!std::isfinite(d->get())) Fail(n, "inf and nan are not numbers a plan can use");
      return d->get();
    }
    Fail(n, "TOML dates and times are not used by plans (write it as a string)");
  }

  [[noreturn]] void Fail(const toml::node& at, const std::string& why) const {
    throw TomlError{
        fmt::format("{}:{}:{}: {}", file_, at.source().begin.line, at.source().begin.column, why)};
  }

  const std::string& file_;
  std::string out_;
  int64_t line_ = 1;
};

}  // namespace

bool IsTomlFile(const std::string& file) { return file.size() > 5 && file.ends_with(".toml"); }

Result<std::string> TomlToYaml(const std::string& text, const std::string& file) {
  toml::table root;
  try {
    root = toml::parse(text, file);
  } catch (const toml::parse_error& e) {
    return MakeError(ErrorCode::kInvalidArgument,
                     fmt::format("{}:{}:{}: not valid TOML: {}", file, e.source().begin.line,
                                 e.source().begin.column, e.description()));
  }
  try {
    Writer w(file);
    w.Table(root, 0, false);
    return w.Take();
  } catch (const TomlError& e) {
    return MakeError(ErrorCode::kInvalidArgument, e.message);
  }
}

}  // namespace meridian::plan
