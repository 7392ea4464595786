#include "update_merger.h"

#include <algorithm>

namespace swarmlens {

namespace {
constexpr size_t kMaxUnheld = 4096;  // gateway updates remembered until upstream holds them
}

UpdateMerger::UpdateMerger(std::string model_id, uint64_t layout_hash, uint32_t dim, MergerConfig cfg)
    : model_id_(std::move(model_id)),
      layout_hash_(layout_hash),
      dim_(dim),
      cfg_(cfg),
      sequence_(std::max<uint64_t>(cfg.first_sequence, 1)),
      acc_(dim),
      bound_(cfg.norm) {}

Verdict UpdateMerger::submit(const DecodedUpdate& u) {
  auto verdict = [&](Verdict v) {
    ++counts_[size_t(v)];
    return v;
  };
  if (const Verdict v = check_update(u, model_id_, layout_hash_, dim_); v != Verdict::Accepted) return verdict(v);
  const UpdateHeader& h = u.header;
  const double norm = u.update.l2_norm();
  const NormBound::Decision nd = bound_.decide(norm);
  if (nd.refused) return verdict(Verdict::AbsurdNorm);
  if (cfg_.check_sequence) {
    auto it = last_sequence_.find(h.node_id);
    if (it != last_sequence_.end() && h.sequence <= it->second) return verdict(Verdict::Replayed);
    if (sequence_jump(h.sequence, it == last_sequence_.end() ? 0 : it->second, cfg_.max_sequence_ahead_s))
      return verdict(Verdict::SequenceJump);
    last_sequence_[h.node_id] = h.sequence;
  }
  bound_.accepted(norm);
  if (nd.scale < 1.0) ++clipped_;
  acc_.add(u.update, float(nd.scale));
  ++pending_updates_;
  pending_samples_ += h.samples;
  pending_base_ = std::min(pending_base_.value_or(h.base_version), h.base_version);
  uint64_t& seq = pending_constituents_[h.node_id];
  seq = std::max(seq, h.sequence);
  return verdict(Verdict::Accepted);
}

std::optional<CombinedUpdate> UpdateMerger::take() {
  if (pending_updates_ == 0) return std::nullopt;
  CombinedUpdate c;
  std::vector<uint32_t>& touched = acc_.touched();
  std::vector<float>& acc = acc_.sum();
  std::sort(touched.begin(), touched.end());
  SparseVector sum;
  sum.dim = dim_;
  sum.index.reserve(touched.size());
  sum.value.reserve(touched.size());
  for (uint32_t j : touched) {
    if (acc[j] != 0.0f) {  // entries that cancelled out cost nothing to leave out
      sum.index.push_back(j);
      sum.value.push_back(acc[j]);
    }
  }
  acc_.reset(false);
  c.header = {model_id_, layout_hash_, pending_base_.value_or(0), cfg_.node_id, sequence_++, pending_samples_};
  std::vector<float> sent;
  c.bytes = encode_update(c.header, sum, cfg_.codec, &sent);
  // What the value coding rounded off stays in the sum, and goes with the next update that touches
  // the entry (error feedback, as the nodes' compressors do).
  for (size_t k = 0; k < sum.nnz(); ++k) acc[sum.index[k]] -= sent[k];
  c.update.dim = dim_;
  c.update.index = std::move(sum.index);
  c.update.value = std::move(sent);
  c.constituents = std::move(pending_constituents_);
  c.updates = pending_updates_;
  pending_constituents_.clear();
  pending_updates_ = 0;
  pending_samples_ = 0;
  pending_base_.reset();
  sent_.emplace(c.header.sequence, c.constituents);
  if (sent_.size() > kMaxUnheld) sent_.erase(sent_.begin());
  return c;
}

void UpdateMerger::restore(const CombinedUpdate& c) {
  acc_.add(c.update, 1.0f);
  pending_updates_ += c.updates;
  pending_samples_ += c.header.samples;
  pending_base_ = std::min(pending_base_.value_or(c.header.base_version), c.header.base_version);
  for (const auto& [node, seq] : c.constituents) {
    uint64_t& s = pending_constituents_[node];
    s = std::max(s, seq);
  }
  sent_.erase(c.header.sequence);
}

void UpdateMerger::translate(Snapshot& s) {
  const auto it = s.applied.find(cfg_.node_id);
  if (it != s.applied.end()) {
    const auto held_end = sent_.upper_bound(it->second);
    for (auto g = sent_.begin(); g != held_end; ++g)
      for (const auto& [node, seq] : g->second) held_[node] = std::max(held_[node], seq);
    sent_.erase(sent_.begin(), held_end);
  }
  for (const auto& [node, seq] : held_) {
    uint64_t& a = s.applied[node];
    a = std::max(a, seq);
  }
}

}  // namespace swarmlens
