// A camera node's trainer: takes labelled frames from a live stream, trains on its own thread, and
// compresses its gradients with the two-step method. Without a link its released updates are applied
// to its own model (standalone); the model and statistics are published on the ModelHub under the
// model id. Frames are copied into a bounded buffer; when the trainer is busy and the buffer is full,
// new frames replace random buffered ones (a uniform sample), so the caller never blocks. An idle
// policy may pause training (device busy, outside the schedule): the pending update, the residual
// and the buffer are kept, and training resumes where it stopped.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <cstdint>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "compressor.h"
#include "idle_policy.h"
#include "model.h"
#include "model_hub.h"

namespace swarmlens {

struct NodeTrainerConfig {
  // The defaults, named for the configs and commands that take them over (elements, the broker, the
  // demo, the benchmarks): read as NodeTrainerConfig::kDefault*.
  static constexpr char kDefaultModelId[] = "default";
  static constexpr uint64_t kDefaultSeed = 1;
  static constexpr uint32_t kDefaultBatch = 32;
  static constexpr double kDefaultLr = 0.05;
  static constexpr char kDefaultDevice[] = "cpu";
  // A camera node's compression (node_compression_defaults): warm-up steps a stage, trigger age.
  static constexpr uint64_t kNodeWarmupStageSteps = 25;
  static constexpr uint64_t kNodeTriggerAge = 2;
  // A model whose parameter L2 norm exceeds this many times the initial model's is refused as
  // exploding, by the nodes (offer_model) and by the broker before it publishes.
  static constexpr double kDefaultMaxModelNormFactor = 20.0;

  // Held-out frames: every Nth labelled frame is not trained on but classified by the node's current
  // model, before the next batch; their accuracy over the last kHoldoutWindow is this node's own
  // held-out accuracy (TrainStats::holdout_accuracy; a broker without test data publishes the
  // nodes'). 0 = off: every frame is trained on.
  static constexpr uint32_t kDefaultHoldoutEvery = 0;
  static constexpr size_t kHoldoutWindow = 500;

  ModelSpec model;
  std::string model_id = kDefaultModelId;
  uint32_t node_id = 0;           // unique per node in a federation (the aggregator orders by it)
  uint64_t seed = kDefaultSeed;
  uint32_t batch_size = kDefaultBatch;
  double lr = kDefaultLr;
  CompressorConfig compression;   // compression.sparsify.momentum is the momentum
  size_t buffer_frames = 256;     // bounded frame buffer
  // Snapshot path: resumed at start, written at stop ("" = none); the compressor's state (residual,
  // momentum, the update not yet sent) goes beside it in <checkpoint>.state.
  std::string checkpoint;
  uint64_t publish_every = 8;     // publish the model to the hub every N steps
  IdlePolicyConfig idle;          // when to train; the training thread's nice value
  std::string device = kDefaultDevice;  // where forward/backward run: cpu, cuda, cuda:N (Model::create)
  double max_model_norm_factor = kDefaultMaxModelNormFactor;  // 0 = finiteness only
  uint32_t holdout_every = kDefaultHoldoutEvery;  // hold out every Nth labelled frame (0 = none)
};

// A camera node's compression unless told otherwise (swarmtrain's properties, the field testbed's
// nodes): the library's selection, density and momentum, a warm-up of 25 steps a stage, and the
// pending update released every 2 steps. (NodeTrainerConfig's own `compression` is the library's
// plain default: no warm-up, every step released.)
CompressorConfig node_compression_defaults();

// The rate a federated node steps its own view at: `local_lr`, or `lr` when it is 0 (the aggregator
// applies each update at its own rate, averaging_server_lr).
inline double own_step_lr(double local_lr, double lr) { return local_lr > 0 ? local_lr : lr; }

class NodeTrainer {
 public:
  explicit NodeTrainer(NodeTrainerConfig cfg);  // builds the model; throws on a bad config
  ~NodeTrainer();                               // stops the thread
  NodeTrainer(const NodeTrainer&) = delete;
  NodeTrainer& operator=(const NodeTrainer&) = delete;

  // Thread: any (the streaming thread). Copies one sample, sample_size(spec) floats ([C, H, W], or
  // [window, C, H, W] for a temporal model),
  // normalised. With block = false it never waits on training: when the buffer is full the frame
  // replaces a random buffered one (returns false). With block = true it waits for room (offline
  // sources such as files, where every frame should be trained on).
  bool push(const float* chw, int label, bool block = false);

  // Blocks until every full batch in the buffer has been trained (fewer than batch_size frames
  // remain), the idle policy paused training, or the trainer stopped. For the end of an offline
  // stream.
  void drain();

  // Federated mode (call before start): released updates go to `send` instead of the local model;
  // when send returns false (link down, buffer full) the update is merged back into the pending
  // one and goes out with the next, so nothing is lost. Thread: the training thread calls send.
  using Uplink = std::function<bool(const std::vector<uint8_t>&)>;
  void set_uplink(Uplink send);
  // A newer global model (from the aggregator); adopted before the next batch if its layout fits.
  // Thread: any (a NATS callback).
  void offer_model(std::shared_ptr<const Snapshot> model);

  // The broker's answer to one of this node's updates (the uplink's): a refusal is counted and its
  // reason shown (stats, the hub: the overlay) until an update gets through. Thread: any.
  void note_answer(bool delivered, const std::string& verdict);

  void start();  // resumes from the checkpoint if there is one; starts the training thread
  void stop();   // drains nothing: joins the thread, writes the checkpoint, publishes
  TrainStats stats() const;
  const NodeTrainerConfig& config() const { return cfg_; }
  size_t frame_size() const { return frame_size_; }
  // The last error from the training thread ("" if none); the thread stops on an error.
  std::string error() const;
  // The compressor, for inspection while the trainer is stopped (not thread-safe while it runs).
  const TwoStepCompressor& compressor() const { return *compressor_; }

 private:
  void run();
  void train_batch(std::vector<float>& images, std::vector<int64_t>& labels);
  // Classifies the held-out frames taken from the buffer with the model as it is now.
  void evaluate_holdout(const std::vector<float>& images, const std::vector<int64_t>& labels);
  void publish();
  std::string state_path() const;
  // A released update: sent (federated; requeued if the link refuses it) and applied to this node's
  // view, or applied as the node's step (standalone). Training thread, or stop() after the join.
  void deliver(const std::vector<uint8_t>& msg);

  NodeTrainerConfig cfg_;
  std::unique_ptr<Model> model_;  // used by the training thread only (and start/stop)
  std::unique_ptr<TwoStepCompressor> compressor_;
  IdleGate gate_;                 // the training thread's only
  std::vector<float> global_;     // the node's model without its pending update [P]
  double initial_norm_ = 0.0;     // L2 norm of the initial parameters (the exploding-model bound's base)
  size_t frame_size_;
  uint64_t version_ = 0;
  // The classes' names, as the last adopted model's description gives them (the broker's), for the
  // snapshots this node publishes and writes. Training thread (and start/stop).
  std::vector<std::string> class_names_;

  // mutex_ protects everything below it. Lock order: mutex_ only (the hub's lock is taken without it).
  mutable std::mutex mutex_;
  std::condition_variable wake_;  // frames ready, or stop
  std::condition_variable room_;  // a batch was trained, or stop
  bool training_ = false;          // a batch is taken and being trained
  std::vector<float> frames_;     // [buffer_frames, C, H, W]
  std::vector<int64_t> labels_;   // [buffered]
  size_t buffered_ = 0;
  uint64_t labelled_ = 0;               // labelled frames pushed (every holdout_every-th is held out)
  std::vector<float> holdout_frames_;   // held-out frames waiting to be classified [n, C, H, W]...
  std::vector<int64_t> holdout_labels_; // ...at most kHoldoutPending (then they replace random ones)
  std::vector<uint8_t> holdout_hits_;   // the last kHoldoutWindow outcomes (1 = right), a ring
  size_t holdout_next_ = 0, holdout_correct_ = 0;
  bool running_ = false;
  std::string error_;
  TrainStats stats_;
  std::mt19937_64 rng_;
  std::shared_ptr<const Snapshot> offered_;  // newest model offered, not yet adopted
  // Training thread only: updates sent but not yet known to be in an adopted model, by sequence.
  std::map<uint64_t, SparseVector> in_flight_;
  Uplink uplink_;                            // set before start; read by the training thread
  std::thread thread_;
};

}  // namespace swarmlens
