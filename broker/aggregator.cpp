#include "aggregator.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <cmath>
#include <stdexcept>

namespace swarmlens {

double averaging_server_lr(double node_lr, uint32_t nodes, uint32_t buffer_size) {
  if (nodes == 0) throw std::invalid_argument("averaging_server_lr: no nodes");
  return double(buffer_size) * node_lr / double(nodes);
}

FleetAggregation fleet_aggregation(double node_lr, uint32_t nodes, uint64_t trigger_age) {
  if (nodes == 0) throw std::invalid_argument("fleet_aggregation: no nodes");
  constexpr uint32_t kLargeFleet = 64;
  FleetAggregation f;
  if (nodes < kLargeFleet) {
    f.server_lr = averaging_server_lr(node_lr, nodes, 1);
    f.staleness_grace = uint64_t(nodes) * std::max<uint64_t>(1, trigger_age);
  } else {
    f.buffer_size = nodes / kLargeFleet;
    f.server_lr = node_lr;
    f.staleness_grace = 1;
  }
  return f;
}

const char* verdict_name(Verdict v) {
  switch (v) {
    case Verdict::Accepted: return "accepted";
    case Verdict::LayoutMismatch: return "layout_mismatch";
    case Verdict::NonFinite: return "non_finite";
    case Verdict::TooStale: return "too_stale";
    case Verdict::FromTheFuture: return "from_the_future";
    case Verdict::Replayed: return "replayed";
    case Verdict::AbsurdNorm: return "absurd_norm";
    case Verdict::SequenceJump: return "sequence_jump";
    case Verdict::kCount: break;
  }
  return "?";
}

Verdict check_update(const DecodedUpdate& u, const std::string& model_id, uint64_t layout_hash, size_t dim) {
  const UpdateHeader& h = u.header;
  const SparseVector& s = u.update;
  if (h.model_id != model_id || h.layout_hash != layout_hash || s.dim != dim || !s.well_formed())
    return Verdict::LayoutMismatch;
  for (float v : s.value)
    if (!std::isfinite(v)) return Verdict::NonFinite;
  return Verdict::Accepted;
}

Aggregator::Aggregator(std::string model_id, uint64_t layout_hash, std::vector<float> initial,
                       AggregatorConfig cfg, uint64_t initial_version)
    : model_id_(std::move(model_id)),
      layout_hash_(layout_hash),
      w_(std::move(initial)),
      cfg_(cfg),
      opt_(w_.size(), cfg.server_lr, cfg.server_momentum),
      version_(initial_version),
      acc_(w_.size()),
      bound_(cfg.norm) {
  if (cfg_.buffer_size == 0) throw std::invalid_argument("aggregator: buffer size must be >= 1");
  if (!(cfg_.server_lr > 0.0)) throw std::invalid_argument("aggregator: server lr must be > 0");
}

double Aggregator::staleness_weight(uint64_t tau) const {
  const uint64_t t = tau > cfg_.staleness_grace ? tau - cfg_.staleness_grace : 0;
  return 1.0 / (1.0 + std::sqrt(double(t)));
}

void Aggregator::resume_sequences(const std::map<uint32_t, uint64_t>& applied) {
  applied_ = applied;
  last_sequence_ = applied;
}

Verdict Aggregator::precheck(const DecodedUpdate& u) const {
  std::optional<double> norm;
  return check(u, norm);
}

Verdict Aggregator::check(const DecodedUpdate& u, std::optional<double>& norm) const {
  const UpdateHeader& h = u.header;
  if (const Verdict v = check_update(u, model_id_, layout_hash_, w_.size()); v != Verdict::Accepted) return v;
  if (h.base_version > version_) return Verdict::FromTheFuture;
  if (version_ - h.base_version > cfg_.max_staleness) return Verdict::TooStale;
  norm = u.update.l2_norm();
  if (bound_.decide(*norm).refused) return Verdict::AbsurdNorm;
  if (cfg_.check_sequence) {
    auto it = last_sequence_.find(h.node_id);
    if (it != last_sequence_.end() && h.sequence <= it->second) return Verdict::Replayed;
    if (sequence_jump(h.sequence, it == last_sequence_.end() ? 0 : it->second, cfg_.max_sequence_ahead_s))
      return Verdict::SequenceJump;
  }
  return Verdict::Accepted;
}

Verdict Aggregator::submit(const DecodedUpdate& u) {
  auto verdict = [&](Verdict v) {
    ++counts_[size_t(v)];
    return v;
  };
  const UpdateHeader& h = u.header;
  const SparseVector& s = u.update;
  std::optional<double> checked_norm;
  const Verdict v = check(u, checked_norm);
  if (checked_norm) last_norm_ = *checked_norm;  // every update that reached the norm bound
  if (v != Verdict::Accepted) return verdict(v);
  const uint64_t tau = version_ - h.base_version;
  const double norm = *checked_norm;
  const NormBound::Decision nd = bound_.decide(norm);
  if (cfg_.check_sequence) last_sequence_[h.node_id] = h.sequence;
  bound_.accepted(norm);
  if (nd.scale < 1.0) ++clipped_;
  last_weight_ = staleness_weight(tau) * nd.scale;
  acc_.add(s, float(last_weight_));
  ++buffered_;
  buffered_sequence_[h.node_id] = std::max(buffered_sequence_[h.node_id], h.sequence);
  if (buffered_ >= cfg_.buffer_size) flush();
  return verdict(Verdict::Accepted);
}

void Aggregator::reset_params(std::vector<float> params) {
  if (params.size() != w_.size()) throw std::invalid_argument("aggregator: reset with another dimension");
  w_ = std::move(params);
  opt_.reset();
  acc_.reset(true);
  buffered_ = 0;
  buffered_sequence_.clear();
}

bool sequence_jump(uint64_t sequence, uint64_t last, uint64_t ahead_s) {
  if (ahead_s == 0) return false;
  const uint64_t now_us = uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(
                                       std::chrono::system_clock::now().time_since_epoch()).count());
  const uint64_t by_clock = now_us + ahead_s * 1000000ull;
  const uint64_t by_last = last > UINT64_MAX - (1ull << 32) ? UINT64_MAX : last + (1ull << 32);
  return sequence > std::max(by_clock, by_last);
}

bool Aggregator::flush() {
  if (buffered_ == 0) return false;
  const float scale = cfg_.average ? 1.0f / float(buffered_) : 1.0f;
  if (opt_.has_momentum()) {
    // Momentum touches every coordinate: a dense step.
    step_.resize(w_.size());
    const std::vector<float>& acc = acc_.sum();
    for (size_t i = 0; i < w_.size(); ++i) step_[i] = acc[i] * scale;
    opt_.step(w_.data(), step_.data());
  } else {
    // Plain SGD: only coordinates some update touched change (O(nnz) for sparse updates).
    const float lr = opt_.lr() * scale;
    const std::vector<float>& acc = acc_.sum();
    for (uint32_t j : acc_.touched()) w_[j] -= lr * acc[j];
  }
  acc_.reset(true);
  buffered_ = 0;
  for (const auto& [node, seq] : buffered_sequence_) applied_[node] = std::max(applied_[node], seq);
  buffered_sequence_.clear();
  ++version_;
  return true;
}

}  // namespace swarmlens
