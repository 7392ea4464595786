// The two-step deep compression of one node: sparsify with memory, trigger, encode. Quantisation
// error of what is encoded goes back into the residual, so "sent + residual == input" holds exactly
// up to float rounding.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "codec.h"
#include "sparsify.h"
#include "trigger.h"

namespace swarmlens {

struct CompressorConfig {
  // How an update's values go on the wire. Sign (a bit a value, a magnitude per block of 64, the
  // rest fed back into the residual): on the full preset 1,151x fewer uplink bytes than dense at
  // 0.42 points above it, against fp16's 335x at 0.74 above (docs/benchmarks.md, "Both directions").
  static constexpr ValueCoding kDefaultValues = ValueCoding::Sign;
  SparsifierConfig sparsify;
  TriggerConfig trigger;
  CodecConfig codec = {std::nullopt, kDefaultValues};
};

struct NodeIdentity {
  std::string model_id;
  uint64_t layout_hash = 0;
  uint32_t node_id = 0;
  uint64_t first_sequence = 1;  // the first update's sequence (then +1 per update)
};

class TwoStepCompressor {
 public:
  TwoStepCompressor(uint32_t dim, CompressorConfig cfg, NodeIdentity id);

  // One local step on gradient g (shape [dim]) computed against global model `base_version` from
  // `samples` training samples. Returns an encoded update when the trigger fires. Throws
  // std::invalid_argument for a NaN/Inf gradient, with no state changed.
  std::optional<std::vector<uint8_t>> step(const float* g, uint64_t samples, uint64_t base_version);

  // Encodes whatever is pending now, trigger or not (shutdown, checkpoint). nullopt if nothing is.
  std::optional<std::vector<uint8_t>> flush();

  // An encoded update could not be delivered: merge it back into the pending update so it goes out
  // with the next one. `message` must be one this compressor produced.
  void requeue(const std::vector<uint8_t>& message);

  // The node's own view of the model: `params` (shape [dim], the latest global model) plus what
  // this node has selected but not yet sent, applied as the aggregator will apply it
  // (w -= server_scale * pending). A node keeps training on its own progress while its update waits.
  void apply_pending(float* params, float server_scale) const;

  // The state a restarted node needs so that nothing accepted is lost: momentum, residual, the
  // pending (not yet sent) update, sparsifier steps (warm-up), message counters. Binary format
  // "SWLR" with a CRC-32; load_state() throws std::runtime_error, naming `what` and the problem,
  // for a corrupt state or one of another layout, and changes nothing then. Sequence numbers are
  // not restored (a new identity's first_sequence already continues them).
  std::vector<uint8_t> save_state() const;
  void load_state(const uint8_t* data, size_t size, const std::string& what);

  const DgcSparsifier& sparsifier() const { return sparsifier_; }
  const Trigger& trigger() const { return trigger_; }
  uint64_t messages() const { return messages_; }
  uint64_t bytes_out() const { return bytes_out_; }
  uint64_t sequence() const { return sequence_; }

 private:
  std::vector<uint8_t> encode(Trigger::Release r);

  DgcSparsifier sparsifier_;
  Trigger trigger_;
  CodecConfig codec_;
  NodeIdentity id_;
  uint64_t sequence_ = 0;
  uint64_t messages_ = 0;
  uint64_t bytes_out_ = 0;
  std::vector<float> sent_;
};

}  // namespace swarmlens
