// The aggregator core: merges decoded sparse updates into the global flat parameters.
// FedBuff-style buffered asynchronous aggregation (Nguyen et al. 2022): each accepted update is
// norm-clipped, weighted by its staleness tau = version - base_version as 1/(1+sqrt(tau - grace)),
// and buffered; when `buffer_size` updates are in, the buffer is applied with the server optimizer
// and the model version goes up by one. No NATS here: the daemon and the GStreamer element wrap it.
//
// Update convention: an update is a descent direction (a gradient or an accumulated DGC residual,
// or for FedAvg the model delta base - local); the server applies w -= lr * step.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "codec.h"
#include "optim.h"
#include "robust.h"
#include "sparse_accumulator.h"

namespace swarmlens {

struct AggregatorConfig {
  double server_lr = 1.0;
  double server_momentum = 0.0;  // > 0 makes every apply O(num_params)
  uint32_t buffer_size = 1;      // K: updates per model version
  bool average = true;           // divide the buffered sum by the number of updates in it
  // The L2 bound per update (robust.h): adaptive by default, clipping to a multiple of the median of
  // recent accepted norms and refusing far larger ones and any above an absolute ceiling.
  NormBoundConfig norm;
  uint64_t max_staleness = 1000; // reject updates whose tau exceeds this
  uint64_t staleness_grace = 0;  // tau up to this is weighted 1 (small lags are normal with triggers)
  bool check_sequence = true;    // reject a node's sequence number that does not increase
  // Refuse a sequence further ahead than this of the wall clock in microseconds (nodes number their
  // updates from it) and of the node's last one plus 2^32: an absurd jump would shut the node out.
  static constexpr uint64_t kDefaultMaxSequenceAheadS = 3600;
  uint64_t max_sequence_ahead_s = kDefaultMaxSequenceAheadS;
};

// The server learning rate at which `nodes` nodes' updates, each a gradient step at `node_lr`, add
// up like one averaged step: the aggregator applies the mean of each buffer of `buffer_size` updates,
// so buffer_size x node_lr / nodes. (One node alone: its own rate.)
double averaging_server_lr(double node_lr, uint32_t nodes, uint32_t buffer_size = 1);

// How to aggregate a fleet of `nodes` two-step nodes that step at node_lr and release an update at
// least every trigger_age steps, as `swarmlens bench fleet` measured it (docs/benchmarks.md,
// "Fleet"): below 64 nodes each update is applied as it comes at the averaging rate with lags of up
// to nodes x trigger_age versions weighted 1; from 64 nodes on, buffers of nodes / 64 updates are
// applied at the nodes' own rate with every lag discounted (grace 1). Same data, IID: 64 nodes
// 0.7567 against 0.7405 averaging, 1,024 nodes 0.4227 against 0.2102.
struct FleetAggregation {
  uint32_t buffer_size = 1;
  double server_lr = 0.0;
  uint64_t staleness_grace = 0;
};
FleetAggregation fleet_aggregation(double node_lr, uint32_t nodes, uint64_t trigger_age);

enum class Verdict {
  Accepted,        // buffered (and applied, if it filled the buffer)
  LayoutMismatch,  // another model id, layout hash or dimension
  NonFinite,
  TooStale,
  FromTheFuture,   // base version newer than the model
  Replayed,        // sequence not above the node's last accepted one
  AbsurdNorm,      // L2 norm refused by the norm bound (robust.h)
  SequenceJump,    // sequence absurdly far ahead (max_sequence_ahead_s)
  kCount
};
const char* verdict_name(Verdict v);

// The checks every receiver makes before merging an update: model id, layout hash, dimension, a
// well-formed sparse vector and finite values. Accepted when all pass.
Verdict check_update(const DecodedUpdate& u, const std::string& model_id, uint64_t layout_hash, size_t dim);

class Aggregator {
 public:
  Aggregator(std::string model_id, uint64_t layout_hash, std::vector<float> initial_params,
             AggregatorConfig cfg, uint64_t initial_version = 0);
  // Resuming from a snapshot: its per-node sequences count as accepted and applied, so a replay of
  // an update the snapshot holds is still rejected after a restart.
  void resume_sequences(const std::map<uint32_t, uint64_t>& applied);

  Verdict submit(const DecodedUpdate& u);
  // What submit would answer now, changing nothing (for a caller that journals an update remotely
  // before it merges it; a verdict may still change in between only if the model moved on: too_stale).
  Verdict precheck(const DecodedUpdate& u) const;
  // Applies what is buffered now (even below buffer_size). Returns true if the model changed.
  bool flush();

  const std::vector<float>& params() const { return w_; }  // [num_params]
  uint64_t version() const { return version_; }
  size_t buffered() const { return buffered_; }
  uint64_t count(Verdict v) const { return counts_[size_t(v)]; }
  double last_weight() const { return last_weight_; }
  double last_norm() const { return last_norm_; }  // of the last update submitted (before clipping)
  const NormBound& norm_bound() const { return bound_; }
  uint64_t clipped() const { return clipped_; }  // accepted updates scaled down by the norm bound
  // Replaces the parameters (a model that failed its check goes back to the last good one); the
  // buffer is dropped with them, the version and the sequences stay.
  void reset_params(std::vector<float> params);
  // Per node, the highest sequence number whose update is in params() (buffered ones are not yet).
  const std::map<uint32_t, uint64_t>& applied_sequences() const { return applied_; }
  double staleness_weight(uint64_t tau) const;

 private:
  std::string model_id_;
  uint64_t layout_hash_;
  std::vector<float> w_;     // global parameters [P]
  AggregatorConfig cfg_;
  FlatSgd opt_;
  uint64_t version_;
  SparseAccumulator acc_;    // weighted sum of buffered updates [P], and the entries written (sparse apply)
  std::vector<float> step_;  // scratch for the momentum path [P]
  size_t buffered_ = 0;
  std::map<uint32_t, uint64_t> last_sequence_;  // node id -> last accepted sequence
  std::map<uint32_t, uint64_t> buffered_sequence_, applied_;  // node id -> sequence in the buffer / in w_
  std::array<uint64_t, size_t(Verdict::kCount)> counts_{};
  double last_weight_ = 0.0;
  // submit's checks, in its order; norm gets the update's L2 norm once the checks before the norm
  // bound pass (so submit computes it once).
  Verdict check(const DecodedUpdate& u, std::optional<double>& norm) const;
  double last_norm_ = 0.0;
  NormBound bound_;
  uint64_t clipped_ = 0;
};

// Whether `sequence` is an absurd jump: beyond both now (in microseconds) + ahead_s and last + 2^32.
bool sequence_jump(uint64_t sequence, uint64_t last, uint64_t ahead_s);

}  // namespace swarmlens
