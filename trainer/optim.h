// SGD with momentum on a flat parameter span: u = m*u + g; w -= lr*u.
// Shared by FedAvg's local steps and the aggregator's server optimizer.
#pragma once

#include <cstddef>
#include <algorithm>
#include <vector>

namespace swarmlens {

class FlatSgd {
 public:
  FlatSgd(size_t dim, double lr, double momentum)
      : dim_(dim), lr_(float(lr)), m_(float(momentum)), u_(momentum > 0.0 ? dim : 0, 0.0f) {}

  // w, g: [dim]
  void step(float* w, const float* g) {
    if (u_.empty()) {
      for (size_t i = 0; i < dim_; ++i) w[i] -= lr_ * g[i];
      return;
    }
    for (size_t i = 0; i < dim_; ++i) {
      u_[i] = m_ * u_[i] + g[i];
      w[i] -= lr_ * u_[i];
    }
  }
  bool has_momentum() const { return !u_.empty(); }
  void reset() { std::fill(u_.begin(), u_.end(), 0.0f); }  // forget the velocity
  float lr() const { return lr_; }
  size_t dim() const { return dim_; }

 private:
  size_t dim_;
  float lr_, m_;
  std::vector<float> u_;  // velocity [dim], empty without momentum
};

}  // namespace swarmlens
