#include "sparsify.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace swarmlens {

std::optional<Criterion> parse_criterion(std::string_view name) {
  if (name == "topk") return Criterion::TopK;
  if (name == "sampled-topk") return Criterion::SampledTopK;
  if (name == "threshold") return Criterion::Threshold;
  if (name == "randomk") return Criterion::RandomK;
  return std::nullopt;
}

const char* criterion_name(Criterion c) {
  switch (c) {
    case Criterion::TopK: return "topk";
    case Criterion::SampledTopK: return "sampled-topk";
    case Criterion::Threshold: return "threshold";
    case Criterion::RandomK: return "randomk";
  }
  return "?";
}

namespace {

// Indices with |v| >= thr and v != 0, increasing.
void collect_at_least(const float* v, uint32_t n, float thr, std::vector<uint32_t>& out) {
  for (uint32_t i = 0; i < n; ++i) {
    float a = std::fabs(v[i]);
    if (a >= thr && a > 0.0f) out.push_back(i);
  }
}

class TopKSelector final : public Selector {
 public:
  void select(const float* v, uint32_t n, uint32_t k, std::vector<uint32_t>& out) override {
    exact_top_k(v, n, k, scratch_, out);
  }

 private:
  std::vector<float> scratch_;
};

// DGC's estimate: take the k-th largest |v| of a strided ~1% sample as the threshold, select, and
// correct: too many -> exact top-k among the candidates; too few -> lower the threshold a few
// times, then fall back to exact top-k.
class SampledTopKSelector final : public Selector {
 public:
  SampledTopKSelector(double fraction, uint64_t seed) : fraction_(fraction), rng_(seed) {}

  void select(const float* v, uint32_t n, uint32_t k, std::vector<uint32_t>& out) override {
    if (k == 0 || n == 0) return;
    const uint32_t stride = std::max<uint32_t>(1, uint32_t(std::lround(1.0 / fraction_)));
    if (stride == 1 || n / stride < 100 || k * 4 >= n) return exact_top_k(v, n, k, scratch_, out);

    const uint32_t offset = std::uniform_int_distribution<uint32_t>(0, stride - 1)(rng_);
    sample_.clear();
    for (uint32_t i = offset; i < n; i += stride) sample_.push_back(std::fabs(v[i]));
    const size_t ks = std::clamp<size_t>(size_t(std::ceil(double(sample_.size()) * k / n)), 1,
                                         sample_.size());
    std::nth_element(sample_.begin(), sample_.begin() + (ks - 1), sample_.end(), std::greater<>());
    float thr = sample_[ks - 1];

    const size_t base = out.size();
    for (int attempt = 0; attempt < 3; ++attempt) {
      if (thr > 0.0f) {
        out.resize(base);
        collect_at_least(v, n, thr, out);
        const size_t got = out.size() - base;
        if (got > k * 13 / 10) {  // too many: keep the exact top-k of the candidates
          trim_to_top_k(v, k, base, out);
          return;
        }
        if (got * 10 >= size_t(k) * 7) return;  // within 70%..130% of k: accept
      }
      thr *= 0.5f;
    }
    out.resize(base);
    exact_top_k(v, n, k, scratch_, out);
  }

 private:
  void trim_to_top_k(const float* v, uint32_t k, size_t base, std::vector<uint32_t>& out) {
    cand_.assign(out.begin() + long(base), out.end());
    scratch_.resize(cand_.size());
    for (size_t i = 0; i < cand_.size(); ++i) scratch_[i] = v[cand_[i]];
    out.resize(base);
    std::vector<uint32_t> local;
    exact_top_k(scratch_.data(), uint32_t(cand_.size()), k, tmp_, local);
    for (uint32_t li : local) out.push_back(cand_[li]);
  }

  double fraction_;
  std::mt19937_64 rng_;
  std::vector<float> sample_, scratch_, tmp_;
  std::vector<uint32_t> cand_;
};

class ThresholdSelector final : public Selector {
 public:
  explicit ThresholdSelector(double thr) : thr_(float(thr)) {}
  void select(const float* v, uint32_t n, uint32_t, std::vector<uint32_t>& out) override {
    collect_at_least(v, n, thr_, out);
  }

 private:
  float thr_;
};

// k distinct uniformly random indices (Floyd's algorithm), zero entries dropped.
class RandomKSelector final : public Selector {
 public:
  explicit RandomKSelector(uint64_t seed) : rng_(seed) {}
  void select(const float* v, uint32_t n, uint32_t k, std::vector<uint32_t>& out) override {
    k = std::min(k, n);
    mark_.assign(n, 0);  // O(n), as every step already is; keeps the draw O(k)
    for (uint32_t j = n - k; j < n; ++j) {
      uint32_t t = std::uniform_int_distribution<uint32_t>(0, j)(rng_);
      if (mark_[t]) t = j;
      mark_[t] = 1;
    }
    for (uint32_t i = 0; i < n; ++i)
      if (mark_[i] && v[i] != 0.0f) out.push_back(i);
  }

 private:
  std::mt19937_64 rng_;
  std::vector<uint8_t> mark_;
};

}  // namespace

void exact_top_k(const float* v, uint32_t n, uint32_t k, std::vector<float>& scratch,
                 std::vector<uint32_t>& out) {
  k = std::min(k, n);
  if (k == 0) return;
  if (k == n) return collect_at_least(v, n, 0.0f, out);
  scratch.resize(n);
  for (uint32_t i = 0; i < n; ++i) scratch[i] = std::fabs(v[i]);
  std::nth_element(scratch.begin(), scratch.begin() + (k - 1), scratch.end(), std::greater<>());
  const float kth = scratch[k - 1];
  if (kth == 0.0f) return collect_at_least(v, n, 0.0f, out);  // fewer than k non-zeros
  // Entries strictly above the k-th value all belong; fill the rest with ties, lowest index first.
  uint32_t above = 0;
  for (uint32_t i = 0; i < n; ++i) above += std::fabs(v[i]) > kth;
  uint32_t ties_left = k - above;
  for (uint32_t i = 0; i < n; ++i) {
    const float a = std::fabs(v[i]);
    if (a > kth || (a == kth && ties_left > 0 && ties_left--)) out.push_back(i);
  }
}

std::unique_ptr<Selector> make_selector(const SparsifierConfig& cfg) {
  switch (cfg.criterion) {
    case Criterion::TopK: return std::make_unique<TopKSelector>();
    case Criterion::SampledTopK:
      return std::make_unique<SampledTopKSelector>(cfg.sample_fraction, cfg.seed);
    case Criterion::Threshold: return std::make_unique<ThresholdSelector>(cfg.threshold);
    case Criterion::RandomK: return std::make_unique<RandomKSelector>(cfg.seed);
  }
  throw std::invalid_argument("unknown selection criterion");
}

DgcSparsifier::DgcSparsifier(uint32_t dim, SparsifierConfig cfg)
    : dim_(dim), cfg_(std::move(cfg)), selector_(make_selector(cfg_)), u_(dim, 0.0f), v_(dim, 0.0f) {
  if (!(cfg_.density > 0.0 && cfg_.density <= 1.0))
    throw std::invalid_argument("sparsifier: density must be in (0, 1]");
  if (!(cfg_.momentum >= 0.0 && cfg_.momentum < 1.0))
    throw std::invalid_argument("sparsifier: momentum must be in [0, 1)");
  if (!(cfg_.sample_fraction > 0.0 && cfg_.sample_fraction <= 1.0))
    throw std::invalid_argument("sparsifier: sample fraction must be in (0, 1]");
}

double DgcSparsifier::density_at(uint64_t step) const {
  if (cfg_.warmup_stage_steps > 0) {
    const uint64_t stage = step / cfg_.warmup_stage_steps;
    if (stage < cfg_.warmup_densities.size())
      return std::max(cfg_.warmup_densities[stage], cfg_.density);
  }
  return cfg_.density;
}

SparseVector DgcSparsifier::step(const float* g) {
  // Validate (and measure) before touching any state.
  double sq = 0.0;
  for (uint32_t i = 0; i < dim_; ++i) sq += double(g[i]) * double(g[i]);
  if (!std::isfinite(sq)) throw std::invalid_argument("gradient holds NaN or Inf; step skipped");
  const double norm = std::sqrt(sq);
  const float clip =
      (cfg_.clip_norm > 0.0 && norm > cfg_.clip_norm) ? float(cfg_.clip_norm / norm) : 1.0f;

  const float m = float(cfg_.momentum);
  for (uint32_t i = 0; i < dim_; ++i) {
    u_[i] = m * u_[i] + clip * g[i];
    v_[i] += u_[i];
  }

  const auto k = uint32_t(std::max(1.0, std::ceil(density_at(steps_) * dim_)));
  ++steps_;
  selected_.clear();
  selector_->select(v_.data(), dim_, k, selected_);

  SparseVector out;
  out.dim = dim_;
  out.index = selected_;
  out.value.resize(selected_.size());
  for (size_t j = 0; j < selected_.size(); ++j) {
    const uint32_t i = selected_[j];
    out.value[j] = v_[i];
    v_[i] = 0.0f;
    u_[i] = 0.0f;
  }
  return out;
}

void DgcSparsifier::add_residual(const SparseVector& e) {
  if (e.dim != dim_) throw std::invalid_argument("add_residual: dimension mismatch");
  scatter_add(e, 1.0f, v_.data());
}

void DgcSparsifier::restore(std::vector<float> velocity, std::vector<float> residual,
                            uint64_t steps) {
  if (velocity.size() != dim_ || residual.size() != dim_)
    throw std::invalid_argument("restore: state has the wrong shape");
  u_ = std::move(velocity);
  v_ = std::move(residual);
  steps_ = steps;
}

}  // namespace swarmlens
