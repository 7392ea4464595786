// Robust aggregation: what keeps one bad update (a fault or an attack) from moving the shared model
// further than an honest one does. No NATS here: the aggregator, the site gateway's merger and the
// broker service use these.
//
// NormBound: an adaptive L2 bound per update. It keeps the norms of the last `window` accepted updates
// (as sent: a median moves only when more than half of the window moves, so a minority of attackers
// cannot drag it, while honest norms that grow or shrink as training goes are followed); an update
// is scaled down to clip_factor x their median, refused above reject_factor x the median (off by
// default: a node back from a long cut sends a large honest update, which is weighted down, not
// lost), and refused above the absolute ceiling max_norm at any time. Before the window has
// min_samples norms only the ceiling applies. A fixed clip_norm replaces the adaptive clip when
// set. docs/security.md says why these defaults.
//
// RateLimit: a token bucket per node id on updates/s and bytes/s, so one node id cannot fill the
// FedBuff buffer or the norm window by itself. The node ids it tracks are bounded (the least recently
// seen are forgotten).
//
// check_model (param_check.h, shared with the nodes' trainer): every parameter finite, the L2 norm
// within a bound.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <string>
#include <unordered_map>
#include <vector>

#include "param_check.h"  // check_model, l2_norm

namespace swarmlens {

struct NormBoundConfig {
  double clip_norm = 0.0;      // fixed L2 bound per update (0 = adaptive: clip_factor x median)
  static constexpr double kDefaultClipFactor = 1.0;
  double clip_factor = kDefaultClipFactor;  // adaptive bound: this many times the median of recent accepted norms
  double reject_factor = 0.0;  // refuse an update above this many times that median (0 = never)
  // Absolute ceiling: refused above it, always (0 = none). Far above honest updates: a node back from a
  // 60 s cut sends its accumulated residual, with norms over 1e6 (a 1e6 ceiling refused them in
  // tests/broker/test_faults.cpp, losing its work); the 1e31 of an attack is refused.
  double max_norm = 1e15;
  uint32_t window = 64;        // accepted norms the median is taken over
  uint32_t min_samples = 5;    // below this many, only max_norm (or clip_norm) applies
};

class NormBound {
 public:
  explicit NormBound(NormBoundConfig cfg);
  struct Decision {
    bool refused = false;
    double scale = 1.0;  // to multiply the update by (<= 1)
  };
  // What to do with an update of this norm (not recorded: call accepted() once it is merged).
  Decision decide(double norm) const;
  // Records an accepted update's norm (as sent, before any scaling).
  void accepted(double norm);
  double median() const;  // of the window; 0 while it holds fewer than min_samples
  double clip_bound() const;  // the current clip bound (0 = none)
  const NormBoundConfig& config() const { return cfg_; }

 private:
  NormBoundConfig cfg_;
  std::deque<double> norms_;
  double median_ = 0.0;  // recomputed on accepted()
};

struct RateLimitConfig {
  // Per node id (0 = no limit). Far above what a camera sends (the demo's nodes on a fast desktop:
  // tens of updates a second; a dense fp16 update of the small CNN is 0.8 MB), far below a flood.
  double updates_per_s = 200.0;
  double bytes_per_s = 64 << 20;
  double burst_s = 5.0;         // a node may send this many seconds' worth at once
  size_t max_nodes = 100000;    // node ids tracked (least recently seen forgotten beyond)
};

class RateLimit {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RateLimit(RateLimitConfig cfg) : cfg_(cfg) {}
  // Takes one update of `bytes` from `node` if its buckets allow; false (nothing taken) otherwise.
  bool allow(uint32_t node, size_t bytes, Clock::time_point now = Clock::now());
  size_t tracked() const { return buckets_.size(); }

 private:
  struct Bucket {
    double updates = 0, bytes = 0;
    Clock::time_point last;
    std::list<uint32_t>::iterator lru;
  };
  RateLimitConfig cfg_;
  std::unordered_map<uint32_t, Bucket> buckets_;
  std::list<uint32_t> lru_;  // most recent first
};


}  // namespace swarmlens
