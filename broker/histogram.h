// A fixed-bucket histogram, as the broker keeps its staleness and merge-time distributions: plain
// counts (not cumulative), exported as Prometheus histograms and drawn by the dashboard.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace swarmlens {

struct Histogram {
  std::vector<double> bounds;    // upper bounds, ascending
  std::vector<uint64_t> counts;  // bounds.size() + 1: the last counts what is above every bound
  double sum = 0.0;
  uint64_t count = 0;

  Histogram() = default;
  explicit Histogram(std::vector<double> b) : bounds(std::move(b)), counts(bounds.size() + 1, 0) {}
  void observe(double v) {
    const auto it = std::lower_bound(bounds.begin(), bounds.end(), v);  // first bound >= v: le semantics
    ++counts[size_t(it - bounds.begin())];
    sum += v;
    ++count;
  }
};

}  // namespace swarmlens
