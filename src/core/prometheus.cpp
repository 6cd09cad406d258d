#include "core/prometheus.h"

#include <fmt/format.h>

#include <cmath>

namespace meridian {

namespace {

void AppendEscaped(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
}

std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

}  // namespace

void PrometheusText::Family(std::string_view name, std::string_view type, std::string_view help) {
  out_ += fmt::format("# HELP {} ", name);
  for (char c : help) {  // help text escapes only \ and newline
    if (c == '\\') {
      out_ += "\\\\";
    } else if (c == '\n') {
      out_ += "\\n";
    } else {
      out_ += c;
    }
  }
  out_ += fmt::format("\n# TYPE {} {}\n", name, type);
}

void PrometheusText::Series(std::string_view name, const Labels& labels, std::string_view extra_label,
                            std::string_view extra_value) {
  out_ += name;
  if (labels.empty() && extra_label.empty()) return;
  out_ += '{';
  bool first = true;
  const auto label = [&](std::string_view k, std::string_view v) {
    if (!first) out_ += ',';
    first = false;
    out_ += k;
    out_ += "=\"";
    AppendEscaped(out_, v);
    out_ += '"';
  };
  for (const auto& [k, v] : labels) label(k, v);
  if (!extra_label.empty()) label(extra_label, extra_value);
  out_ += '}';
}

void PrometheusText::Sample(std::string_view name, const Labels& labels, double value) {
  Series(name, labels);
  out_ += ' ';
  out_ += Number(value);
  out_ += '\n';
}

void PrometheusText::Histogram(std::string_view name, const Labels& labels, std::span<const double> bounds,
                               std::span<const uint64_t> counts, double sum) {
  const std::string bucket = std::string(name) + "_bucket";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds.size(); ++i) {
    cumulative += i < counts.size() ? counts[i] : 0;
    Series(bucket, labels, "le", Number(bounds[i]));
    out_ += fmt::format(" {}\n", cumulative);
  }
  for (size_t i = bounds.size(); i < counts.size(); ++i) cumulative += counts[i];
  Series(bucket, labels, "le", "+Inf");
  out_ += fmt::format(" {}\n", cumulative);
  Series(std::string(name) + "_sum", labels);
  out_ += ' ' + Number(sum) + '\n';
  Series(std::string(name) + "_count", labels);
  out_ += fmt::format(" {}\n", cumulative);
}

}  // namespace meridian
