// `swarmlens bench node`: a whole camera node (camera_pipeline) on a Pi-class budget. Each case runs
// in a child process pinned to one core: a live 640x480 30 fps camera (videotestsrc) into
// swarmtrain (training always on) and swarmclassify + swarmoverlay, beside the same node with no
// trainer. Reports each child's peak RSS, the frames/s and the longest gap between frames at the
// end of the live path, and the training steps/s.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace swarmlens {

class Commands;

struct NodeBenchOptions {
  double seconds = 40;     // per case
  int cpu = 0;             // the core every case is pinned to
  std::string json_path;
  std::string child;       // internal: run one case in this process ("cnn:train", ...)
};

int run_node_bench(const NodeBenchOptions& o);

// Declares `node` and its options under `parent`.
void add_node_bench_command(CLI::App& parent, Commands& commands);

}  // namespace swarmlens
