#include "robust.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace swarmlens {

NormBound::NormBound(NormBoundConfig cfg) : cfg_(cfg) {
  if (cfg_.window == 0) throw std::invalid_argument("norm bound: window must be >= 1");
  if (cfg_.clip_factor < 0 || cfg_.reject_factor < 0 || cfg_.max_norm < 0 || cfg_.clip_norm < 0)
    throw std::invalid_argument("norm bound: factors and norms must be >= 0");
}

double NormBound::clip_bound() const {
  double b = cfg_.clip_norm;
  if (b == 0.0 && median_ > 0.0 && cfg_.clip_factor > 0.0) b = cfg_.clip_factor * median_;
  return b;
}

NormBound::Decision NormBound::decide(double norm) const {
  Decision d;
  if (!std::isfinite(norm) || (cfg_.max_norm > 0.0 && norm > cfg_.max_norm) ||
      (cfg_.reject_factor > 0.0 && median_ > 0.0 && norm > cfg_.reject_factor * median_)) {
    d.refused = true;
    return d;
  }
  const double b = clip_bound();
  if (b > 0.0 && norm > b) d.scale = b / norm;
  return d;
}

void NormBound::accepted(double norm) {
  if (!std::isfinite(norm)) return;
  norms_.push_back(norm);
  if (norms_.size() > cfg_.window) norms_.pop_front();
  if (norms_.size() < std::max<uint32_t>(cfg_.min_samples, 1)) {
    median_ = 0.0;
    return;
  }
  std::vector<double> v(norms_.begin(), norms_.end());
  auto mid = v.begin() + std::ptrdiff_t(v.size() / 2);
  std::nth_element(v.begin(), mid, v.end());
  median_ = *mid;
}

double NormBound::median() const { return median_; }

bool RateLimit::allow(uint32_t node, size_t bytes, Clock::time_point now) {
  if (cfg_.updates_per_s <= 0.0 && cfg_.bytes_per_s <= 0.0) return true;
  auto it = buckets_.find(node);
  if (it == buckets_.end()) {
    if (buckets_.size() >= cfg_.max_nodes && !lru_.empty()) {
      buckets_.erase(lru_.back());
      lru_.pop_back();
    }
    lru_.push_front(node);
    Bucket b;  // a new node starts with a full burst
    b.updates = cfg_.updates_per_s * cfg_.burst_s;
    b.bytes = cfg_.bytes_per_s * cfg_.burst_s;
    b.last = now;
    b.lru = lru_.begin();
    it = buckets_.emplace(node, b).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  }
  Bucket& b = it->second;
  const double dt = std::max(0.0, std::chrono::duration<double>(now - b.last).count());
  b.last = now;
  b.updates = std::min(cfg_.updates_per_s * cfg_.burst_s, b.updates + dt * cfg_.updates_per_s);
  b.bytes = std::min(cfg_.bytes_per_s * cfg_.burst_s, b.bytes + dt * cfg_.bytes_per_s);
  if (cfg_.updates_per_s > 0.0 && b.updates < 1.0) return false;
  if (cfg_.bytes_per_s > 0.0 && b.bytes < double(bytes)) return false;
  if (cfg_.updates_per_s > 0.0) b.updates -= 1.0;
  if (cfg_.bytes_per_s > 0.0) b.bytes -= double(bytes);
  return true;
}

}  // namespace swarmlens
