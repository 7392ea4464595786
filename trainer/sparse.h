// Sparse vectors over a flat parameter space, the currency of the two-step compressor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace swarmlens {

// A sparse vector of dimension `dim`: `index` strictly increasing in [0, dim), `value[i]` belongs to
// `index[i]`. Shape: index [nnz], value [nnz].
struct SparseVector {
  uint32_t dim = 0;
  std::vector<uint32_t> index;
  std::vector<float> value;

  size_t nnz() const { return index.size(); }
  bool empty() const { return index.empty(); }
  void clear() {
    index.clear();
    value.clear();
  }
  double l2_norm() const;
  // True when indices are strictly increasing, below dim, and sizes agree.
  bool well_formed() const;
};

// a + b over the union of their indices (values summed where both have one). Dimensions must match.
SparseVector merge_add(const SparseVector& a, const SparseVector& b);

// dense[index[i]] += scale * value[i]. dense has s.dim entries.
void scatter_add(const SparseVector& s, float scale, float* dense);

// All entries of a dense vector as a SparseVector (index 0..n-1), for dense methods on the same path.
SparseVector from_dense(const float* dense, uint32_t n);

}  // namespace swarmlens
