// `swarmlens bench compression`: N simulated nodes in one process train the same model on their
// shards, each method sends its updates through the real codec into the real Aggregator, and the
// methods are compared side by side on the same data, model, seed and epochs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "codec.h"
#include "compressor.h"
#include "demo.h"
#include "downlink.h"
#include "frame_window.h"
#include "methods.h"
#include "node_trainer.h"
#include "sparsify.h"

namespace CLI {
class App;
}

namespace swarmlens {

class Commands;

struct BenchOptions {
  std::string preset = "quick";
  std::string model = ModelSpec::kDefaultName;  // cnn, mobilenet, or crnn (on moving Fashion-MNIST)
  uint32_t window = WindowConfig{}.window;  // crnn: frames per sample
  std::string data_dir;            // Fashion-MNIST or a folder of sites; empty: default_fashion_mnist_dir()
  int input_width = 0, input_height = 0;  // site folders: the model's input (0: the images' size)
  uint32_t nodes = DemoOptions::kDefaultNodes;  // as the demo's
  uint32_t epochs = 2;
  size_t train_limit = 8000;       // 0 = the whole training set
  size_t test_limit = 2000;        // 0 = the whole test set
  uint32_t batch = NodeTrainerConfig::kDefaultBatch;  // per node
  double lr = NodeTrainerConfig::kDefaultLr;
  double momentum = SparsifierConfig::kDefaultMomentum;
  double density = SparsifierConfig::kDefaultDensity;  // twostep/topk after warm-up
  double warmup_fraction = 0.05;   // share of the run spent in the four warm-up stages
  Criterion criterion = SparsifierConfig::kDefaultCriterion;
  ValueCoding values = CompressorConfig::kDefaultValues;
  double clip_norm = 0.0;          // local gradient clipping (DGC); 0 = off
  double downlink_density = DownlinkConfig::kDefaultDownlinkDensity;  // all but dense: the model stream's density
  uint64_t trigger_age = 2;        // twostep: release after this many steps...
  uint64_t trigger_nnz = 0;        // ...or this many pending entries (0 = off)...
  double trigger_norm = 0.0;       // ...or this pending L2 norm (0 = off)
  uint32_t fedavg_steps = MethodConfig::kDefaultFedAvgSteps;  // FedAvg: local steps between model averages
  double dirichlet_alpha = 0.0;    // 0 = IID shards
  uint64_t seed = NodeTrainerConfig::kDefaultSeed;
  int threads = 0;
  std::vector<std::string> methods = {"dense", "topk", "twostep", "fedavg"};
  std::string json_path;
};

// Applies a preset's values; explicit options given afterwards override them.
void apply_preset(BenchOptions& o, const std::string& preset);

// Runs the benchmark, prints the table, writes JSON if asked. Returns a process exit code.
int run_compression_bench(const BenchOptions& o);

// Declares `compression` and its options under `parent`.
void add_compression_bench_command(CLI::App& parent, Commands& commands);

}  // namespace swarmlens
