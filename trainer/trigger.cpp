#include "trigger.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace swarmlens {

Trigger::Trigger(uint32_t dim, TriggerConfig cfg) : cfg_(cfg) {
  if (cfg_.norm_threshold < 0.0) throw std::invalid_argument("trigger: negative norm threshold");
  pending_.dim = dim;
}

void Trigger::add(const SparseVector& selected, uint64_t samples, uint64_t base_version) {
  if (selected.dim != pending_.dim) throw std::invalid_argument("trigger: dimension mismatch");
  if (steps_ == 0 && pending_.empty()) base_version_ = base_version;
  base_version_ = std::min(base_version_, base_version);
  if (!selected.empty()) pending_ = pending_.empty() ? selected : merge_add(pending_, selected);
  samples_ += samples;
  ++steps_;
}

void Trigger::restore(const SparseVector& update, uint64_t samples, uint64_t base_version) {
  if (update.dim != pending_.dim) throw std::invalid_argument("trigger: dimension mismatch");
  base_version_ = (steps_ == 0 && pending_.empty()) ? base_version
                                                    : std::min(base_version_, base_version);
  pending_ = merge_add(update, pending_);
  samples_ += samples;
}

bool Trigger::ready() const {
  if (pending_.empty()) return false;  // never an empty message
  const bool any = cfg_.norm_threshold > 0.0 || cfg_.nnz_threshold > 0 || cfg_.max_age_steps > 0;
  if (!any) return true;
  if (cfg_.max_age_steps > 0 && steps_ >= cfg_.max_age_steps) return true;
  if (cfg_.nnz_threshold > 0 && pending_.nnz() >= cfg_.nnz_threshold) return true;
  return cfg_.norm_threshold > 0.0 && pending_.l2_norm() >= cfg_.norm_threshold;
}

Trigger::Release Trigger::take() {
  Release r;
  r.update = std::move(pending_);
  r.samples = samples_;
  r.base_version = base_version_;
  r.steps = steps_;
  pending_ = SparseVector{};
  pending_.dim = r.update.dim;
  samples_ = 0;
  steps_ = 0;
  base_version_ = 0;
  return r;
}

}  // namespace swarmlens
