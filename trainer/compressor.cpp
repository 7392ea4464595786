#include "compressor.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "bytes.h"
#include "framing.h"

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

namespace {
constexpr Magic kStateMagic = {'S', 'W', 'L', 'R'};
constexpr uint8_t kStateVersion = 1;
}  // namespace

std::vector<uint8_t> TwoStepCompressor::save_state() const {
  std::vector<uint8_t> out;
  begin_frame(out, kStateMagic, kStateVersion);
  ByteWriter w(out);
  const uint32_t dim = sparsifier_.dim();
  const SparseVector& p = trigger_.pending();
  w.put(id_.layout_hash);
  w.put(dim);
  w.put(sparsifier_.steps());
  w.put(messages_);
  w.put(bytes_out_);
  std::vector<float> velocity = sparsifier_.velocity();
  velocity.resize(dim, 0.0f);
  w.bytes(velocity.data(), size_t(dim) * sizeof(float));
  w.bytes(sparsifier_.residual().data(), size_t(dim) * sizeof(float));
  w.put(trigger_.pending_samples());
  w.put(trigger_.pending_base_version());
  w.put(uint32_t(p.nnz()));
  w.bytes(p.index.data(), p.nnz() * sizeof(uint32_t));
  w.bytes(p.value.data(), p.nnz() * sizeof(float));
  end_frame(out);
  return out;
}

void TwoStepCompressor::load_state(const uint8_t* data, size_t size, const std::string& what) {
  const auto bad = [&](const std::string& why) { return std::runtime_error(what + ": node state " + why); };
  FrameCheck frame = check_frame(data, size, kStateMagic, kStateVersion);
  if (frame.error == FrameError::Truncated || frame.error == FrameError::BadMagic) throw bad("has no SWLR magic");
  if (frame.error == FrameError::BadVersion) throw bad("has an unknown format version");
  if (frame.error == FrameError::BadChecksum) throw bad("fails its checksum");
  ByteReader& r = frame.body;
  uint64_t layout = 0, steps = 0, messages = 0, bytes_out = 0, samples = 0, base = 0;
  uint32_t dim = 0, nnz = 0;
  if (!r.get(layout) || !r.get(dim) || !r.get(steps) || !r.get(messages) || !r.get(bytes_out)) throw bad("is truncated");
  if (layout != id_.layout_hash || dim != sparsifier_.dim()) throw bad("is for another model layout");
  std::vector<float> velocity(dim), residual(dim);
  if (!r.bytes(velocity.data(), velocity.size() * sizeof(float)) || !r.bytes(residual.data(), dim * sizeof(float)) ||
      !r.get(samples) || !r.get(base) || !r.get(nnz))
    throw bad("is truncated");
  if (nnz > dim) throw bad("has a pending update larger than the model");
  SparseVector pending;
  pending.dim = dim;
  pending.index.resize(nnz);
  pending.value.resize(nnz);
  if (!r.bytes(pending.index.data(), nnz * sizeof(uint32_t)) || !r.bytes(pending.value.data(), nnz * sizeof(float)))
    throw bad("is truncated");
  if (r.remaining() != 0) throw bad("has trailing bytes");
  for (uint32_t i = 0; i < nnz; ++i)
    if (pending.index[i] >= dim || (i && pending.index[i] <= pending.index[i - 1])) throw bad("has a malformed pending update");
  sparsifier_.restore(std::move(velocity), std::move(residual), steps);
  Trigger fresh(dim, trigger_.config());
  if (nnz) fresh.restore(pending, samples, base);
  trigger_ = std::move(fresh);
  messages_ = messages;
  bytes_out_ = bytes_out;
}

}  // namespace swarmlens
