// `swarmlens bench fleet`: the two-step method at fleet scale. N asynchronous camera nodes (up to
// thousands) in one process, each with its own shard and its own state (residual, momentum, pending
// update, the model version it holds), the real codec, the real aggregator and the real model stream,
// on an event-driven timeline: each node's step time comes from its device class and each transfer
// from its link profile (bandwidth, latency, stalls, outages), so staleness arises as in a fleet, not
// in lock-step. Reports accuracy over simulated time and over bytes, time and bytes to a target, and
// the staleness histogram, for one or more fleet sizes side by side (JSON, and a PNG with gnuplot).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "aggregator.h"
#include "bench_compression.h"
#include "downlink.h"
#include "node_trainer.h"
#include "sparsify.h"

namespace CLI {
class App;
}

namespace swarmlens {

class Commands;

struct FleetOptions {
  std::vector<uint32_t> nodes = {4, 64};  // fleet sizes, run in turn with the same total samples
  uint32_t epochs = BenchOptions{}.epochs;  // passes over the training set, spread over the fleet
  size_t train_limit = 0;                 // 0 = every training image
  size_t test_limit = BenchOptions{}.test_limit;  // images for the curve; the final figure uses every test image
  uint32_t batch = NodeTrainerConfig::kDefaultBatch;
  double lr = NodeTrainerConfig::kDefaultLr;
  double density = SparsifierConfig::kDefaultDensity;
  double dirichlet_alpha = 0.0;  // 0 = IID shards
  // Device classes and link profiles, each "name:share,..." (docs/benchmarks.md, "Fleet").
  std::string devices = "pi4:0.5,jetson-nano:0.3,desktop:0.2";
  std::string links = "lte:0.5,congested-iot:0.3,datacenter:0.1,flaky:0.1";
  // The aggregator: 0 / -1 take the fleet rule (aggregator.h, fleet_aggregation: below 64 nodes each
  // update applied as it comes at the averaging rate lr / N, lags of up to N trigger periods weighted
  // 1; from 64 nodes on buffers of N / 64 at the nodes' rate lr, every lag discounted by
  // 1/(1 + sqrt(lag - 1))); other values are for studies (docs/benchmarks.md, "Fleet").
  uint32_t buffer_size = 0;
  double server_lr = 0.0;
  int64_t staleness_grace = -1;
  double server_momentum = AggregatorConfig{}.server_momentum;
  double publish_interval_s = 0.5;  // the broker's model stream (swarmlens-broker --publish-interval-ms)
  double downlink_density = DownlinkConfig::kDefaultDownlinkDensity;
  double target = 0.8;              // time and bytes to this test accuracy
  uint32_t curve_points = 24;       // accuracy samples over the run
  uint64_t seed = NodeTrainerConfig::kDefaultSeed;
  int threads = 0;
  std::string json_path, plot_path;
};

int run_fleet_bench(const FleetOptions& o);
void add_fleet_bench_command(CLI::App& parent, Commands& commands);

}  // namespace swarmlens
