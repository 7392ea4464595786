// Hierarchical aggregation: a site gateway merges the updates of its local nodes into one combined
// update and forwards that upstream, under its own node id, as if it were one bigger node. No NATS
// and no GStreamer here: swarmaggregate (forward mode) wraps it.
//
// The combined update is the sum of the accepted updates (the upstream aggregator applies
// w -= lr * update per update, so the sum moves the model as the separate updates would), computed
// against the oldest base version among them. Each accepted update is validated as the aggregator
// does (layout, NaN/Inf, per-node sequence, norm bound) and norm-clipped as it would be.
//
// Sequences: the upstream aggregator's snapshots say which of the *gateway's* updates they hold.
// The merger remembers which node sequences went into each combined update, and translate()
// rewrites a snapshot coming down so that it also names the local nodes' sequences it holds; so a
// local trainer re-applies exactly its own updates still in flight, as it does under a broker.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "aggregator.h"
#include "codec.h"
#include "snapshot.h"
#include "sparse_accumulator.h"

namespace swarmlens {

struct MergerConfig {
  uint32_t node_id = 0;        // the gateway's id upstream
  uint64_t first_sequence = 1; // the gateway's first sequence (a restarted gateway starts above its last)
  NormBoundConfig norm;        // L2 bound per local update, as the aggregator's (robust.h)
  bool check_sequence = true;
  uint64_t max_sequence_ahead_s = AggregatorConfig::kDefaultMaxSequenceAheadS;
  // The combined update's coding. fp16 halves the values' bytes; what it rounds off stays in the
  // sum for the next update that touches the entry. fp32 forwards the sum exactly.
  CodecConfig codec{std::nullopt, ValueCoding::Fp16};
};

// A combined update taken for sending: give it back with restore() if it could not be sent.
struct CombinedUpdate {
  std::vector<uint8_t> bytes;     // encoded (wire format v1)
  UpdateHeader header;
  SparseVector update;            // exactly the values encoded
  std::map<uint32_t, uint64_t> constituents;  // local node id -> highest sequence merged in
  uint64_t updates = 0;           // local updates merged
};

class UpdateMerger {
 public:
  UpdateMerger(std::string model_id, uint64_t layout_hash, uint32_t dim, MergerConfig cfg);

  // Validates and adds one local update. LayoutMismatch, NonFinite and Replayed are the rejections.
  Verdict submit(const DecodedUpdate& u);
  // The sum of what was submitted since the last take, or nothing if nothing was.
  std::optional<CombinedUpdate> take();
  // A taken update that could not be sent goes back into the sum (its sequence number is not reused).
  void restore(const CombinedUpdate& c);
  // Extends s.applied with the local node sequences held by the gateway updates s holds.
  void translate(Snapshot& s);

  size_t pending_updates() const { return pending_updates_; }
  uint64_t count(Verdict v) const { return counts_[size_t(v)]; }
  uint64_t next_sequence() const { return sequence_; }
  uint64_t clipped() const { return clipped_; }  // accepted updates scaled down by the norm bound

 private:

  std::string model_id_;
  uint64_t layout_hash_;
  uint32_t dim_;
  MergerConfig cfg_;
  uint64_t sequence_;
  SparseAccumulator acc_;           // the pending sum [dim], entries written since the last take
  size_t pending_updates_ = 0;
  uint64_t pending_samples_ = 0;
  std::optional<uint64_t> pending_base_;  // oldest base version in the sum
  std::map<uint32_t, uint64_t> pending_constituents_;
  std::map<uint32_t, uint64_t> last_sequence_;  // local node id -> last accepted sequence
  // Gateway sequence -> the local sequences in it, until a snapshot from upstream holds it.
  std::map<uint64_t, std::map<uint32_t, uint64_t>> sent_;
  std::map<uint32_t, uint64_t> held_;  // local sequences known to be in the upstream model
  std::array<uint64_t, size_t(Verdict::kCount)> counts_{};
  NormBound bound_;
  uint64_t clipped_ = 0;
};

}  // namespace swarmlens
