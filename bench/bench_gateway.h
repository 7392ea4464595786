// `swarmlens bench gateway`: what a site gateway (swarmaggregate mode=forward) saves on the uplink,
// and what it costs in accuracy. The same trainers on the same frames run once with every update
// going up on its own, and once per gateway interval with one combined update per interval, each
// into a serving swarmaggregate; side by side in one run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "demo.h"

namespace CLI {
class App;
}

namespace swarmlens {

class Commands;

struct GatewayBenchOptions {
  uint32_t nodes = DemoOptions::kDefaultNodes;  // as the demo's
  uint32_t frames = 1500;                  // per node, every one trained
  std::vector<uint32_t> intervals = {250, 1000};  // gateway intervals, ms
  // the demo's node settings
  double lr = NodeTrainerConfig::kDefaultLr, density = FederationSettings::kDefaultDensity, momentum = FederationSettings::kDefaultMomentum;
  std::string json_path;
};

int run_gateway_bench(const GatewayBenchOptions& o);

// Declares `gateway` and its options under `parent`.
void add_gateway_bench_command(CLI::App& parent, Commands& commands);

}  // namespace swarmlens
