#include "sparse.h"

#include <cmath>
#include <numeric>
#include <stdexcept>

namespace swarmlens {

double SparseVector::l2_norm() const {
  double s = 0.0;
  for (float v : value) s += double(v) * double(v);
  return std::sqrt(s);
}

bool SparseVector::well_formed() const {
  if (index.size() != value.size()) return false;
  for (size_t i = 0; i < index.size(); ++i) {
    if (index[i] >= dim) return false;
    if (i > 0 && index[i] <= index[i - 1]) return false;
  }
  return true;
}

SparseVector merge_add(const SparseVector& a, const SparseVector& b) {
  if (a.dim != b.dim) throw std::invalid_argument("merge_add: dimensions differ");
  SparseVector out;
  out.dim = a.dim;
  out.index.reserve(a.nnz() + b.nnz());
  out.value.reserve(a.nnz() + b.nnz());
  size_t i = 0, j = 0;
  while (i < a.nnz() || j < b.nnz()) {
    if (j == b.nnz() || (i < a.nnz() && a.index[i] < b.index[j])) {
      out.index.push_back(a.index[i]);
      out.value.push_back(a.value[i++]);
    } else if (i == a.nnz() || b.index[j] < a.index[i]) {
      out.index.push_back(b.index[j]);
      out.value.push_back(b.value[j++]);
    } else {
      out.index.push_back(a.index[i]);
      out.value.push_back(a.value[i++] + b.value[j++]);
    }
  }
  return out;
}

void scatter_add(const SparseVector& s, float scale, float* dense) {
  for (size_t i = 0; i < s.nnz(); ++i) dense[s.index[i]] += scale * s.value[i];
}

SparseVector from_dense(const float* dense, uint32_t n) {
  SparseVector out;
  out.dim = n;
  out.index.resize(n);
  std::iota(out.index.begin(), out.index.end(), 0u);
  out.value.assign(dense, dense + n);
  return out;
}

}  // namespace swarmlens
