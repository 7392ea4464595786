// The field testbed's two processes (bench/field/run starts them inside network namespaces):
//  - field-node: one camera node training on its Fashion-MNIST shard as fast as its core allows,
//    with one of four methods: dense synchronous SGD, FedAvg, DGC-style top-k (synchronous, no
//    trigger) or the two-step method (sparsify + trigger, asynchronous: while an update is on the
//    wire, newer releases merge into the pending one instead of queueing behind it);
//  - field-watch: records the broker's test accuracy over wall time and every node's counters,
//    then evaluates the final model on the whole test set, and writes one JSON file.
#pragma once

#include <cstdint>
#include <string>

#include "demo.h"
#include "methods.h"
#include "nats_link.h"
#include "node_trainer.h"

namespace CLI {
class App;
}

namespace swarmlens {

class Commands;

struct FieldNodeOptions {
  std::string nats = NatsOptions::kDefaultUrl;
  std::string credentials;       // NATS credentials file ("" = none)
  std::string model_id = "field";
  std::string method = "twostep";  // dense, fedavg, topk, twostep
  std::string data;                // Fashion-MNIST folder ("" = the default)
  uint32_t node_id = 0, nodes = DemoOptions::kDefaultNodes;  // as the demo's
  uint32_t batch = NodeTrainerConfig::kDefaultBatch;
  double lr = NodeTrainerConfig::kDefaultLr, momentum = SparsifierConfig::kDefaultMomentum;
  // twostep: the rate a node steps its own view at (0 = lr). The broker applies each update at
  // lr / nodes; a node stepping at that rate too overshoots when it pulls the model rarely.
  double local_lr = 0;
  double density = SparsifierConfig::kDefaultDensity;  // topk, twostep after warm-up
  // steps per warm-up stage (topk, twostep); twostep: release after this many steps (when the link is free)
  uint64_t warmup_steps = NodeTrainerConfig::kNodeWarmupStageSteps;
  uint64_t trigger_age = NodeTrainerConfig::kNodeTriggerAge;
  uint32_t fedavg_steps = MethodConfig::kDefaultFedAvgSteps;  // FedAvg: local steps per round
  uint64_t seed = NodeTrainerConfig::kDefaultSeed;
  double duration = 0;             // seconds (0 = until SIGTERM)
  double report_interval = 1.0;    // seconds between metrics messages
  std::string checkpoint;          // twostep: node checkpoint (weights, residuals, pending update)
};

struct FieldWatchOptions {
  std::string nats = NatsOptions::kDefaultUrl;
  std::string credentials;
  std::string model_id = "field";
  std::string data;
  double duration = 180;           // seconds to record
  double target = 0.85;            // accuracy whose first crossing is reported
  double sample_interval = 2.0;    // seconds between samples of the kept model
  size_t curve_images = 2000;      // test images each sample is evaluated on (the final model: all)
  std::string json_path;           // where the record goes
  std::string label;               // free text copied into the record (method, profile)
};

int run_field_node(const FieldNodeOptions& o);   // exit code
int run_field_watch(const FieldWatchOptions& o); // exit code

// Declares `field-node` and its options under `parent`.
void add_field_node_command(CLI::App& parent, Commands& commands);
// Declares `field-watch` and its options under `parent`.
void add_field_watch_command(CLI::App& parent, Commands& commands);

}  // namespace swarmlens
