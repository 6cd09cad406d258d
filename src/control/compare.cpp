#include "control/compare.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

namespace meridian::control {

namespace {

using nlohmann::ordered_json;

double Num(const ordered_json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

// One row's figures: {requests, rate, error_rate, p50_ms, p95_ms, p99_ms}.
ordered_json Figures(double requests, double rate, double failed, double p50, double p95, double p99) {
  return {{"requests", requests}, {"rate", rate},  {"error_rate", requests > 0 ? failed / requests : 0.0},
          {"p50_ms", p50},        {"p95_ms", p95}, {"p99_ms", p99}};
}

// (scope, name) -> figures, in the summary's order.
std::vector<std::pair<std::pair<std::string, std::string>, ordered_json>> Rows(const ordered_json& s) {
  std::vector<std::pair<std::pair<std::string, std::string>, ordered_json>> rows;
  if (!s.is_object()) return rows;
  const ordered_json requests = s.value("requests", ordered_json::object());
  const ordered_json latency = s.value("latency_ms", ordered_json::object());
  rows.push_back({{"total", "all requests"},
                  Figures(Num(requests, "count"), Num(requests, "rate"), Num(requests, "failed"),
                          Num(latency, "med"), Num(latency, "p95"), Num(latency, "p99"))});
  const ordered_json regions = s.value("regions", ordered_json::object());
  for (const auto& [name, r] : regions.items()) {
    rows.push_back({{"region", name},
                    Figures(Num(r, "requests"), Num(r, "rate"), Num(r, "failed"), Num(r, "p50_ms"),
                            Num(r, "p95_ms"), Num(r, "p99_ms"))});
  }
  const double seconds = Num(s, "duration_s");
  const ordered_json by_request = s.value("by_request", ordered_json::array());
  std::map<std::string, int> seen;  // a name two scenarios share: "NAME [2]" for the second
  for (const auto& r : by_request) {
    const ordered_json l = r.value("latency_ms", ordered_json::object());
    const double n = Num(r, "count");
    std::string name = r.value("name", "");
    if (const int k = ++seen[name]; k > 1) name += fmt::format(" [{}]", k);
    rows.push_back({{"request", name},
                    Figures(n, seconds > 0 ? n / seconds : 0.0, Num(r, "failed"), Num(l, "med"),
                            Num(l, "p95"), Num(l, "p99"))});
  }
  return rows;
}

ordered_json Pct(double a, double b) {
  if (a <= 0) return nullptr;
  return std::round((b - a) / a * 1000) / 10;  // one decimal
}

ordered_json RunHead(const RunSummary& r) {
  if (!r.run.is_object() || !r.summary.is_object()) return ordered_json::object();
  return {{"id", r.run.value("id", "")},
          {"name", r.run.value("name", "")},
          {"state", r.run.value("state", "")},
          {"started_at", r.summary.value("started_at", "")},
          {"duration_s", Num(r.summary, "duration_s")}};
}

}  // namespace

ordered_json CompareJson(const RunSummary& a, const RunSummary& b, const CompareOptions& o) {
  const auto rows_a = Rows(a.summary), rows_b = Rows(b.summary);
  std::map<std::pair<std::string, std::string>, ordered_json> in_b(rows_b.begin(), rows_b.end());
  // A's rows in A's order, then B's rows A has not.
  std::vector<std::pair<std::string, std::string>> keys;
  for (const auto& [key, f] : rows_a) keys.push_back(key);
  for (const auto& [key, f] : rows_b) {
    if (std::find(keys.begin(), keys.end(), key) == keys.end()) keys.push_back(key);
  }
  std::map<std::pair<std::string, std::string>, ordered_json> in_a(rows_a.begin(), rows_a.end());
  ordered_json rows = ordered_json::array();
  size_t regressions = 0;
  for (const auto& key : keys) {
    ordered_json row = {{"scope", key.first}, {"name", key.second}};
    const auto fa = in_a.find(key), fb = in_b.find(key);
    row["a"] = fa == in_a.end() ? ordered_json() : fa->second;
    row["b"] = fb == in_b.end() ? ordered_json() : fb->second;
    ordered_json regressed = ordered_json::array();
    if (fa != in_a.end() && fb != in_b.end()) {
      const ordered_json &x = fa->second, &y = fb->second;
      row["change"] = {
          {"rate_pct", Pct(Num(x, "rate"), Num(y, "rate"))},
          {"error_rate_pp", std::round((Num(y, "error_rate") - Num(x, "error_rate")) * 100 * 100) / 100},
          {"p50_pct", Pct(Num(x, "p50_ms"), Num(y, "p50_ms"))},
          {"p95_pct", Pct(Num(x, "p95_ms"), Num(y, "p95_ms"))},
          {"p99_pct", Pct(Num(x, "p99_ms"), Num(y, "p99_ms"))}};
      const double up = 1 + o.tolerance_pct / 100;
      for (const char* p : {"p95", "p99"}) {
        const std::string k = std::string(p) + "_ms";
        const double va = Num(x, k.c_str()), vb = Num(y, k.c_str());
        if (vb > va * up && vb - va >= o.min_latency_ms) regressed.push_back(p);
      }
      if (Num(x, "rate") > 0 && Num(y, "rate") < Num(x, "rate") * (1 - o.tolerance_pct / 100)) {
        regressed.push_back("rate");
      }
      if ((Num(y, "error_rate") - Num(x, "error_rate")) * 100 > o.error_rate_pp)
        regressed.push_back("error_rate");
    } else if (fb == in_b.end()) {
      regressed.push_back("missing");
    }
    regressions += !regressed.empty();
    row["regressed"] = std::move(regressed);
    rows.push_back(std::move(row));
  }
  return {{"a", RunHead(a)},
          {"b", RunHead(b)},
          {"tolerance_pct", o.tolerance_pct},
          {"min_latency_ms", o.min_latency_ms},
          {"error_rate_pp", o.error_rate_pp},
          {"regressions", regressions},
          {"rows", std::move(rows)}};
}

std::string CompareText(const ordered_json& c) {
  const auto head = [](const ordered_json& r) {
    return fmt::format("{} ({}, {}, {:.0f} s)", r.value("id", ""), r.value("name", ""), r.value("state", ""),
                       r.value("duration_s", 0.0));
  };
  std::string out = fmt::format("\n  A (baseline): {}\n  B:            {}\n\n", head(c["a"]), head(c["b"]));
  size_t width = 12;
  for (const auto& r : c["rows"]) width = std::max(width, r.value("name", "").size() + 2);
  const auto value = [](const ordered_json& f, const char* key, const char* unit) -> std::string {
    if (!f.is_object()) return "-";
    const double v = Num(f, key);
    if (std::string_view(unit) == "%") return fmt::format("{:.2f}%", v * 100);
    if (std::string_view(unit) == "/s") return fmt::format("{:.1f}/s", v);
    return fmt::format("{:.2f}ms", v);
  };
  const auto change = [](const ordered_json& row, const char* key, const char* unit) -> std::string {
    if (!row.contains("change") || !row["change"][key].is_number()) return "";
    const double v = row["change"][key].get<double>();
    return fmt::format("{:+.1f}{}", v, unit);
  };
  out += fmt::format("  {:<8} {:<{}} {:>26} {:>26} {:>26} {:>26} {:>26}\n", "scope", "name", width,
                     "req/s A->B", "errors A->B", "p50 A->B", "p95 A->B", "p99 A->B");
  for (const auto& r : c["rows"]) {
    const ordered_json &a = r["a"], &b = r["b"];
    std::vector<std::string> flags;
    for (const auto& f : r["regressed"]) flags.push_back(f.get<std::string>());
    const auto cell = [&](const char* key, const char* unit, const char* change_key, const char* change_unit,
                          const char* flag) {
      const bool bad = std::find(flags.begin(), flags.end(), flag) != flags.end();
      return fmt::format("{}->{} {}{}", value(a, key, unit), value(b, key, unit),
                         change(r, change_key, change_unit), bad ? "!" : "");
    };
    out +=
        fmt::format("  {:<8} {:<{}} {:>26} {:>26} {:>26} {:>26} {:>26}{}\n", r.value("scope", ""),
                    r.value("name", ""), width, cell("rate", "/s", "rate_pct", "%", "rate"),
                    cell("error_rate", "%", "error_rate_pp", "pp", "error_rate"),
                    cell("p50_ms", "ms", "p50_pct", "%", "p50"), cell("p95_ms", "ms", "p95_pct", "%", "p95"),
                    cell("p99_ms", "ms", "p99_pct", "%", "p99"),
                    std::find(flags.begin(), flags.end(), "missing") != flags.end() ? "  missing in B!" : "");
  }
  const size_t n = c.value("regressions", size_t{0});
  out += fmt::format(
      "\n  {} (p95/p99 more than {:.0f}% and {:.1f} ms higher, throughput more than {:.0f}% lower, error "
      "rate more than {:.1f} points higher, or a row of A missing in B; marked !)\n",
      n == 0 ? std::string("no regression") : fmt::format("{} row(s) regressed", n),
      c.value("tolerance_pct", 0.0), c.value("min_latency_ms", 0.0), c.value("tolerance_pct", 0.0),
      c.value("error_rate_pp", 0.0));
  return out;
}

}  // namespace meridian::control
