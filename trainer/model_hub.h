// In-process exchange of live models and training statistics by model id: a swarmtrain publishes,
// a swarmclassify or swarmoverlay in the same process reads. Thread-safe; readers get immutable
// shared snapshots, so a publisher never waits on a reader.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "idle_policy.h"
#include "snapshot.h"

namespace swarmlens {

struct TrainStats {
  uint64_t steps = 0;
  uint64_t samples = 0;        // frames trained on
  uint64_t dropped = 0;        // frames sampled away while the trainer was busy
  double loss = 0.0;           // moving average of the batch loss
  double train_accuracy = 0.0; // moving average of batch accuracy
  uint64_t bytes_out = 0;      // encoded update bytes (sent, or that would be sent)
  uint64_t messages = 0;
  uint64_t dense_bytes = 0;    // what dense fp32 gradients every step would have cost
  uint64_t model_version = 0;
  TrainState state = TrainState::Training;  // the idle policy's verdict (idle_policy.h)
  double other_load = 0.0;    // other processes' share of the CPUs, as last measured (load modes)
  uint64_t pauses = 0;        // times the policy paused training
  uint64_t skipped_batches = 0;  // batches whose gradient was not finite: not trained on, not sent
  uint64_t models_refused = 0;   // offered models that were not finite or exploded (never adopted)
  uint64_t unknown_labels = 0;   // frames whose label is not one of the model's classes: not trained on
  uint64_t updates_refused = 0;  // federated: updates the broker refused (NodeTrainer::note_answer)
  std::string last_refusal;      // the broker's reason for the last one, "" once an update got through
  uint64_t held_out = 0;         // frames held out (NodeTrainerConfig::holdout_every), never trained on
  // Accuracy of the node's model on its last holdout_samples held-out frames (at most
  // kHoldoutWindow), each classified when it was taken; -1 before the first.
  double holdout_accuracy = -1.0;
  uint64_t holdout_samples = 0;
  // Whether the last batches were skipped for non-finite gradients: the node is not learning.
  bool diverged = false;
  double compression_ratio() const { return bytes_out ? double(dense_bytes) / double(bytes_out) : 0.0; }
};

class ModelHub {
 public:
  static ModelHub& instance();

  void publish(const std::string& id, std::shared_ptr<const Snapshot> model);
  std::shared_ptr<const Snapshot> latest(const std::string& id) const;  // null if none yet
  void publish_stats(const std::string& id, const TrainStats& s);
  bool stats(const std::string& id, TrainStats& out) const;

 private:
  mutable std::mutex mutex_;  // protects both maps; held only to copy a pointer or a struct
  std::map<std::string, std::shared_ptr<const Snapshot>> models_;
  std::map<std::string, TrainStats> stats_;
};

}  // namespace swarmlens
