// `swarmlens bench broker`: sparse updates merged per second by the aggregator, bare (decode + merge
// in one loop) and served (BrokerService over a real nats-server, many concurrent publishers), side
// by side in one run; and the update-to-model latency a node sees.
#pragma once

#include <cstdint>
#include <string>

#include "aggregator.h"
#include "broker_service.h"
#include "demo.h"

namespace CLI {
class App;
}

namespace swarmlens {

class Commands;

struct BrokerBenchOptions {
  uint32_t publishers = 8;
  uint64_t updates = 2500;       // per publisher
  double density = FederationSettings::kDefaultDensity;  // share of the small CNN's entries in each update (the demo's)
  uint32_t buffer_size = AggregatorConfig{}.buffer_size;  // FedBuff K
  uint64_t window = 2000;        // updates in flight (sent, not yet taken by the broker)
  int publish_interval_ms = 100; // the broker's model publish timer
  uint64_t latency_samples = 200;
  unsigned decode_threads = BrokerConfig::kDefaultDecodeThreads;
  int operator_repeats = 0;      // served runs with the operator view off and on, alternated (0 = none)
  std::string json_path;
};

int run_broker_bench(const BrokerBenchOptions& o);

// Declares `broker` and its options under `parent`.
void add_broker_bench_command(CLI::App& parent, Commands& commands);

}  // namespace swarmlens
