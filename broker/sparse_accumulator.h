// A dense sum of sparse vectors that remembers which entries were written since it was last
// reset, so that reading and resetting cost O(entries written), not O(dim). The aggregator's
// buffer and the gateway's combined update are both one.
#pragma once

#include <cstdint>
#include <vector>

#include "sparse.h"

namespace swarmlens {

class SparseAccumulator {
 public:
  explicit SparseAccumulator(size_t dim) : sum_(dim, 0.0f), written_(dim, 0) {}

  // sum += weight * s; s.dim must equal dim (checked by the callers' validation).
  void add(const SparseVector& s, float weight) {
    for (size_t i = 0; i < s.nnz(); ++i) {
      const uint32_t j = s.index[i];
      sum_[j] += weight * s.value[i];
      if (!written_[j]) {
        written_[j] = 1;
        touched_.push_back(j);
      }
    }
  }
  std::vector<float>& sum() { return sum_; }                   // [dim]
  std::vector<uint32_t>& touched() { return touched_; }        // written entries, in write order
  // Forgets which entries were written; with zero = true also sets them back to 0.
  void reset(bool zero) {
    for (uint32_t j : touched_) {
      if (zero) sum_[j] = 0.0f;
      written_[j] = 0;
    }
    touched_.clear();
  }

 private:
  std::vector<float> sum_;
  std::vector<uint32_t> touched_;
  std::vector<uint8_t> written_;
};

}  // namespace swarmlens
