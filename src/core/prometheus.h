#pragma once
// The one Prometheus text-exposition writer (format 0.0.4): a family's # HELP and # TYPE once, then its
// samples with label values escaped as the format requires (\\, \", \n), so a pool or region name cannot
// break a scrape. Used by the control plane's GET /metrics (its own gauges and the lease service's).

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meridian {

class PrometheusText {
 public:
  using Labels = std::vector<std::pair<std::string_view, std::string_view>>;

  // `type`: counter, gauge, histogram.
  void Family(std::string_view name, std::string_view type, std::string_view help);
  void Sample(std::string_view name, const Labels& labels, double value);
  // `counts[i]` observations at most `bounds[i]` (not cumulative; one more for above the last bound), their
  // sum.
  void Histogram(std::string_view name, const Labels& labels, std::span<const double> bounds,
                 std::span<const uint64_t> counts, double sum);

  const std::string& text() const { return out_; }

 private:
  void Series(std::string_view name, const Labels& labels, std::string_view extra_label = {},
              std::string_view extra_value = {});
  std::string out_;
};

}  // namespace meridian
