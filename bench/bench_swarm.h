// `swarmlens bench swarm`: the broker at fleet scale on a real NATS cluster. A cluster of
// nats-servers on loopback (routes, JetStream streams replicated), the swarmlens-broker daemon as
// its own process, and a fleet of lightweight simulated nodes, each its own NATS connection: each
// publishes sparse updates on its own subject at the fleet's rate, hears its answers, and follows
// the model stream as a node does. Reports updates/s offered and answered, update-to-model latency
// (p50/p99), downlink bytes/s out of the cluster, the broker's CPU and peak RSS, and what was lost
// (updates never answered). The broker aggregates as for a fleet of that size (--fleet-size), with
// no staleness discount (the synthetic updates all claim version 0).
#pragma once

#include <cstdint>
#include <string>

#include "broker_service.h"
#include "daemon.h"

namespace CLI {
class App;
}

namespace swarmlens {

class Commands;

struct SwarmBenchOptions {
  static constexpr uint32_t kDefaultServers = 3;
  uint32_t servers = kDefaultServers;  // nats-servers in the cluster
  int replicas = 3;         // the model streams' copies (swarmlens-broker --stream-replicas)
  uint32_t nodes = 1000;    // simulated nodes, a connection each
  double rate = 10000;      // updates per second offered by the whole fleet
  double seconds = 10;      // how long the fleet offers them
  double density = 0.001;   // share of the small CNN's entries in an update
  int publish_interval_ms = DaemonConfig::kDefaultPublishIntervalMs;
  unsigned decode_threads = BrokerConfig::kDefaultDecodeThreads;
  double downlink_density = DownlinkConfig::kDefaultDownlinkDensity;
  uint32_t drivers = 4;     // threads that publish the nodes' updates
  uint32_t sites = 0;       // > 0: the nodes connect to this many site servers, leaf nodes of the cluster
  std::string json_path;
};

int run_swarm_bench(const SwarmBenchOptions& o);
void add_swarm_bench_command(CLI::App& parent, Commands& commands);

}  // namespace swarmlens
