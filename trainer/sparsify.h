// Step 1 of the two-step compression: sparsify with memory (Deep Gradient Compression, Lin et al. 2018).
//
//   u = m*u + clip(g)      momentum correction: the velocity is accumulated locally
//   v = v + u              the residual: everything not yet sent
//   S = select(|v|)        pluggable criterion (top-k, sampled top-k, threshold, random-k)
//   send v[S]; v[S] = 0; u[S] = 0   (momentum factor masking)
//
// Nothing is lost, only delayed: what is not selected stays in v.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "sparse.h"

namespace swarmlens {

enum class Criterion { TopK, SampledTopK, Threshold, RandomK };

std::optional<Criterion> parse_criterion(std::string_view name);
const char* criterion_name(Criterion c);

struct SparsifierConfig {
  static constexpr Criterion kDefaultCriterion = Criterion::SampledTopK;
  static constexpr double kDefaultDensity = 0.001;
  static constexpr double kDefaultMomentum = 0.9;
  Criterion criterion = kDefaultCriterion;
  double density = kDefaultDensity;    // fraction of entries sent per step after warm-up (sparsity 99.9%)
  double threshold = 0.0;    // Criterion::Threshold: send entries with |v| >= threshold
  double momentum = kDefaultMomentum;  // momentum correction factor m (0 = plain gradient accumulation)
  double clip_norm = 0.0;    // local gradient clipping: L2 bound on each g (0 = off)
  // Exponential warm-up: density per stage, each stage lasting warmup_stage_steps steps
  // (sparsity 75%, 93.75%, 98.4375%, 99.6%, then `density`). 0 steps = no warm-up.
  std::vector<double> warmup_densities = {0.25, 0.0625, 0.015625, 0.004};
  uint64_t warmup_stage_steps = 0;
  double sample_fraction = 0.01;  // SampledTopK: share of entries sampled to estimate the threshold
  uint64_t seed = 1;              // RandomK and sample offsets
};

// The pluggable selection criterion. select() appends to `out` the chosen indices of v in increasing
// order, never an index whose value is exactly zero, and may choose none (e.g. a threshold above
// every |v|). `k` is the target count for count-based criteria.
class Selector {
 public:
  virtual ~Selector() = default;
  virtual void select(const float* v, uint32_t n, uint32_t k, std::vector<uint32_t>& out) = 0;
};

std::unique_ptr<Selector> make_selector(const SparsifierConfig& cfg);

// Exact k largest |v| (ties at the k-th value broken by lower index). Used by TopK and as the
// fallback of the sampled estimate.
void exact_top_k(const float* v, uint32_t n, uint32_t k, std::vector<float>& scratch,
                 std::vector<uint32_t>& out);

class DgcSparsifier {
 public:
  DgcSparsifier(uint32_t dim, SparsifierConfig cfg);

  // One local step on the dense gradient g (shape [dim]). Returns the selected entries of v (may be
  // empty). Throws std::invalid_argument, leaving all state untouched, if g holds NaN or Inf.
  SparseVector step(const float* g);

  // Adds e back into the residual v: quantisation error of what was sent, or an update that could
  // not be delivered. Keeps "sent + residual == input".
  void add_residual(const SparseVector& e);

  double density_at(uint64_t step) const;
  double current_density() const { return density_at(steps_); }
  uint64_t steps() const { return steps_; }
  uint32_t dim() const { return dim_; }
  const std::vector<float>& residual() const { return v_; }  // v, shape [dim]
  const std::vector<float>& velocity() const { return u_; }  // u, shape [dim]
  const SparsifierConfig& config() const { return cfg_; }

  // Restore state from a checkpoint (shapes must be [dim]).
  void restore(std::vector<float> velocity, std::vector<float> residual, uint64_t steps);

 private:
  uint32_t dim_;
  SparsifierConfig cfg_;
  std::unique_ptr<Selector> selector_;
  std::vector<float> u_;  // velocity, [dim]
  std::vector<float> v_;  // residual, [dim]
  std::vector<uint32_t> selected_;
  uint64_t steps_ = 0;
};

}  // namespace swarmlens
