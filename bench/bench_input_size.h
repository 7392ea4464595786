// `swarmlens bench input-size`: what a frame larger than the model's input costs in accuracy. A small
// CNN trained here on Fashion-MNIST classifies the test split played as video at the model's size,
// at a larger size (swarmclassify scales each frame down itself), and at the larger size scaled
// down by videoscale first: the three accuracies side by side, from the metas at the sink.
#pragma once

#include <string>

namespace CLI {
class App;
}

namespace swarmlens {

class Commands;

struct InputSizeBenchOptions {
  int size = 112;          // the larger frames' width and height
  int train_epochs = 2;    // training passes over Fashion-MNIST's training set before measuring
  int test_limit = 0;      // test frames played (0 = the whole test split, 10,000)
  std::string json_path;
};

int run_input_size_bench(const InputSizeBenchOptions& o);
void add_input_size_bench_command(CLI::App& parent, Commands& commands);

}  // namespace swarmlens
