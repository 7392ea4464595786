// `swarmlens node`: one camera node, a GStreamer pipeline that plays its shard of Fashion-MNIST as live
// video and trains with swarmtrain over NATS (optionally classifying and drawing the overlay).
// `swarmlens demo`: nats-server (embedded, JetStream), swarmlens-broker and N node processes, live
// progress in the terminal, and a report folder at the end.
#pragma once

#include <cstdint>
#include <string>

#include "nats_link.h"
#include "node_trainer.h"

namespace CLI {
class App;
}

namespace swarmlens {

class Commands;

// What a node trains with; the demo passes the same to every node and derives the broker's settings.
struct FederationSettings {
  std::string model_id = "demo";
  double lr = NodeTrainerConfig::kDefaultLr;  // one node's step; the broker applies each update at averaging_server_lr
  // The step a node takes on its own view (0 = lr). The broker applies each update at lr / nodes, so
  // the nodes' progress is averaged; stepping the own view at lr / nodes too made nodes that pull the
  // model rarely overshoot (docs/benchmarks.md, field testbed).
  double local_lr = 0;
  static constexpr double kDefaultMomentum = 0.6;  // asynchronous nodes add momentum of their own (docs/benchmarks.md)
  static constexpr double kDefaultDensity = 0.01;  // share of gradient entries sent after warm-up
  double momentum = kDefaultMomentum;
  double density = kDefaultDensity;
  uint64_t trigger_age = 1;  // release the pending update after this many steps
  uint64_t warmup_steps = 10;
  uint32_t batch = NodeTrainerConfig::kDefaultBatch;
  bool dense = false;        // baseline: every entry every step (density 1, no warm-up)
  double alpha = 0.0;        // the nodes' shards: Dirichlet(alpha) class skew (swarmsrc alpha); 0 = IID
};

struct NodeOptions {
  std::string nats = NatsOptions::kDefaultUrl;
  std::string model_key;     // the broker's public key: models and acks verified with it
  std::string data;          // Fashion-MNIST folder ("" = the default)
  uint32_t node_id = 0, nodes = 1;  // shard node_id of nodes
  int fps = 300;             // frames per second played
  double duration = 0;       // seconds (0 = until SIGINT/SIGTERM)
  static constexpr unsigned kDefaultStatsIntervalMs = 1000;  // the demo's progress reads the metrics this often
  unsigned stats_interval_ms = kDefaultStatsIntervalMs;    // stats line and metrics JSON
  std::string overlay_png;   // also classify + overlay, a PNG of it each second to this path
  bool view = false;         // also show the overlay in a window
  double snapshot_interval = 0;  // also send the overlay to the dashboard this often, seconds (0 = off)
  FederationSettings fed;
};
int run_node(const NodeOptions& o);

struct DemoOptions {
  std::string nats;          // "" = start nats-server with JetStream on a free loopback port
  std::string data;
  std::string report = "report";
  static constexpr uint32_t kDefaultNodes = 4;
  uint32_t nodes = kDefaultNodes;
  double duration = 60;      // seconds per run
  int fps = 300;
  bool baseline = false;     // also run dense, for the same time, and compare
  bool view = false;
  bool quiet = false;        // no live progress lines
  // The broker's live dashboard (and /metrics) on a free loopback port, its URL printed; at the end
  // of the first run a screenshot of it goes into the report (dashboard.png, headless Chromium).
  bool dashboard = true;
  FederationSettings fed;
};
int run_demo(const DemoOptions& o);

// Declares `demo` and its options under `parent`.
void add_demo_command(CLI::App& parent, Commands& commands);
// Declares `node` and its options under `parent`.
void add_node_command(CLI::App& parent, Commands& commands);

}  // namespace swarmlens
