#include "compressor.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace swarmlens {

TwoStepCompressor::TwoStepCompressor(uint32_t dim, CompressorConfig cfg, NodeIdentity id)
    : sparsifier_(dim, std::move(cfg.sparsify)),
      trigger_(dim, cfg.trigger),
      codec_(cfg.codec),
      id_(std::move(id)),
      sequence_(std::max<uint64_t>(id_.first_sequence, 1) - 1) {}

std::optional<std::vector<uint8_t>> TwoStepCompressor::step(const float* g, uint64_t samples,
                                                            uint64_t base_version) {
  trigger_.add(sparsifier_.step(g), samples, base_version);
  if (!trigger_.ready()) return std::nullopt;
  return encode(trigger_.take());
}

std::optional<std::vector<uint8_t>> TwoStepCompressor::flush() {
  if (trigger_.pending().empty()) return std::nullopt;
  return encode(trigger_.take());
}

std::vector<uint8_t> TwoStepCompressor::encode(Trigger::Release r) {
  UpdateHeader h;
  h.model_id = id_.model_id;
  h.layout_hash = id_.layout_hash;
  h.base_version = r.base_version;
  h.node_id = id_.node_id;
  h.sequence = ++sequence_;
  h.samples = r.samples;
  auto bytes = encode_update(h, r.update, codec_, &sent_);
  // Error feedback: what quantisation took off goes back into the residual.
  SparseVector err;
  err.dim = r.update.dim;
  for (size_t i = 0; i < r.update.nnz(); ++i) {
    const float e = r.update.value[i] - sent_[i];
    if (e != 0.0f) {
      err.index.push_back(r.update.index[i]);
      err.value.push_back(e);
    }
  }
  if (!err.empty()) sparsifier_.add_residual(err);
  ++messages_;
  bytes_out_ += bytes.size();
  return bytes;
}

void TwoStepCompressor::apply_pending(float* params, float server_scale) const {
  scatter_add(trigger_.pending(), -server_scale, params);
}

void TwoStepCompressor::requeue(const std::vector<uint8_t>& message) {
  DecodeOptions opts;
  opts.layout_hash = id_.layout_hash;
  opts.dim = sparsifier_.dim();
  auto d = decode_update(message, opts);
  if (!d.ok()) throw std::invalid_argument("requeue: not a valid update: " + d.detail);
  trigger_.restore(d.value.update, d.value.header.samples, d.value.header.base_version);
  --messages_;
  bytes_out_ -= message.size();
}

}  // namespace swarmlens
