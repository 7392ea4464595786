// Step 2 of the two-step compression: accumulate selected entries locally and release them only when
// the pending update is worth a message. A node on a slow link sends fewer, fuller updates and keeps
// training meanwhile; nothing accepted is dropped (a pending update that cannot be sent is merged
// back with `restore`).
#pragma once

#include <cstdint>

#include "sparse.h"

namespace swarmlens {

// A threshold of 0 is off. With every threshold off the trigger releases after each non-empty step.
struct TriggerConfig {
  double norm_threshold = 0.0;   // release when ||pending||_2 >= this
  uint64_t nnz_threshold = 0;    // release when the pending update holds this many entries
  uint64_t max_age_steps = 0;    // release when this many steps have been merged
};

class Trigger {
 public:
  Trigger(uint32_t dim, TriggerConfig cfg);

  // Merges one step's selection (empty is fine: it still ages the pending update).
  // `base_version` is the model version the step's gradient was computed on.
  void add(const SparseVector& selected, uint64_t samples, uint64_t base_version);
  // Puts an update that could not be delivered back in front, merged with anything newer.
  void restore(const SparseVector& update, uint64_t samples, uint64_t base_version);

  bool ready() const;
  struct Release {
    SparseVector update;
    uint64_t samples = 0;       // training samples behind the update
    uint64_t base_version = 0;  // oldest model version any part of it was computed on
    uint64_t steps = 0;         // local steps merged into it
  };
  // Hands over the pending update and starts a new one. Call when ready() (or to flush).
  Release take();

  const SparseVector& pending() const { return pending_; }
  uint64_t age_steps() const { return steps_; }
  uint64_t pending_samples() const { return samples_; }
  uint64_t pending_base_version() const { return base_version_; }
  const TriggerConfig& config() const { return cfg_; }

 private:
  TriggerConfig cfg_;
  SparseVector pending_;
  uint64_t samples_ = 0;
  uint64_t steps_ = 0;
  uint64_t base_version_ = 0;
};

}  // namespace swarmlens
