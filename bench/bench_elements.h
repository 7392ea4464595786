// `swarmlens bench elements`: the GStreamer elements against the bare library loops they wrap, side
// by side in one run, and the peak RSS of a node pipeline.
#pragma once

#include <string>

#include "node_trainer.h"

namespace CLI {
class App;
}

namespace swarmlens {

class Commands;

struct ElementsBenchOptions {
  int train_frames = 4096;
  int classify_frames = 2000;
  int idle_frames = 3000;         // classify frames per idle-policy case
  unsigned batch = NodeTrainerConfig::kDefaultBatch;
  std::string json_path;
};

int run_elements_bench(const ElementsBenchOptions& o);

// Declares `elements` and its options under `parent`.
void add_elements_bench_command(CLI::App& parent, Commands& commands);

}  // namespace swarmlens
