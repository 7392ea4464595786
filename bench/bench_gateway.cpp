#include "bench_gateway.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <unistd.h>
#include <memory>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "bench_report.h"
#include "aggregator.h"
#include "dataset.h"
#include "launch.h"
#include "metrics.h"
#include "model.h"
#include "snapshot.h"
#include "command.h"

namespace swarmlens {

namespace {

struct Outcome {
  uint64_t node_messages = 0, node_bytes = 0;  // what the trainers released
  uint64_t up_messages = 0, up_bytes = 0;      // what reached the serving aggregator
  uint64_t version = 0;
  double accuracy = 0, seconds = 0;
};

Outcome run(const GatewayBenchOptions& o, uint32_t interval_ms, const Dataset& test) {
  const std::string snapshot = (std::filesystem::temp_directory_path() /
                                fmt::format("swarmlens-bench-gateway-{}.swm", ::getpid())).string();
  std::string desc;
  for (uint32_t n = 0; n < o.nodes; ++n)
    desc += fmt::format("swarmsrc num-buffers={} shard-index={} shard-count={} ! swarmtrain name=t{} node-id={} "
                        "drop-when-busy=false learning-rate={} momentum={} density={} trigger-age=1 warmup-steps=10 "
                        "stats-interval=0 ! fakesink ",
                        o.frames, n, o.nodes, n, n + 1, o.lr, o.momentum, o.density);
  const std::string top = fmt::format("swarmaggregate name=top learning-rate={} interval=50 snapshot={} stats-interval=0 "
                                      "! fakesink async=false", averaging_server_lr(o.lr, o.nodes), snapshot);
  if (interval_ms == 0) {
    desc += "t0.update ! " + top + " ";
    for (uint32_t n = 1; n < o.nodes; ++n) desc += fmt::format("t{}.update ! top. ", n);
  } else {
    desc += fmt::format("t0.update ! swarmaggregate name=gw mode=forward node-id=1000 interval={} stats-interval=0 ! {} ",
                        interval_ms, top);
    for (uint32_t n = 1; n < o.nodes; ++n) desc += fmt::format("t{}.update ! gw. ", n);
  }
  Outcome out;
  const Measured m = run_measured(desc);
  out.seconds = m.seconds();
  for (uint32_t n = 0; n < o.nodes; ++n) {
    out.node_messages += m.stat(fmt::format("t{}", n), "messages");
    out.node_bytes += m.stat(fmt::format("t{}", n), "bytes-out");
  }
  out.up_messages = m.stat("top", "accepted");
  out.up_bytes = m.stat("top", "bytes-in");
  out.version = m.stat("top", "model-version");
  const Snapshot s = load_snapshot(snapshot);
  std::remove(snapshot.c_str());
  auto model = Model::create({}, 1);
  model->set_params(s.params.data());
  out.accuracy = evaluate_accuracy(*model, test);
  return out;
}

}  // namespace

int run_gateway_bench(const GatewayBenchOptions& o) {
  const JsonReport report(o.json_path);
  set_compute_threads(1);
  const Dataset test = load_fashion_mnist(default_fashion_mnist_dir(), false);
  nlohmann::json runs = nlohmann::json::array();
  fmt::print("{} trainers x {} frames (every frame trained), density {}, into one serving swarmaggregate\n",
             o.nodes, o.frames, o.density);
  fmt::print("{:<18} {:>10} {:>12} {:>10} {:>12} {:>9} {:>9}\n", "uplink", "messages", "bytes", "msg ratio",
             "byte ratio", "accuracy", "seconds");
  Outcome direct;
  std::vector<uint32_t> intervals = {0};
  intervals.insert(intervals.end(), o.intervals.begin(), o.intervals.end());
  for (uint32_t interval : intervals) {
    const Outcome r = run(o, interval, test);
    if (interval == 0) direct = r;
    const std::string name = interval == 0 ? "each update" : fmt::format("gateway {} ms", interval);
    const double mr = double(r.up_messages) / double(direct.up_messages);
    const double br = double(r.up_bytes) / double(direct.up_bytes);
    fmt::print("{:<18} {:>10} {:>12} {:>10.3f} {:>12.3f} {:>9.4f} {:>9.1f}\n", name, r.up_messages, r.up_bytes, mr, br,
               r.accuracy, r.seconds);
    runs.push_back({{"uplink", name}, {"interval_ms", interval}, {"node_messages", r.node_messages},
                    {"node_bytes", r.node_bytes}, {"up_messages", r.up_messages}, {"up_bytes", r.up_bytes},
                    {"message_ratio", mr}, {"byte_ratio", br}, {"model_version", r.version},
                    {"test_accuracy", r.accuracy}, {"seconds", r.seconds}});
  }
  report.write({{"nodes", o.nodes}, {"frames", o.frames}, {"density", o.density}, {"lr", o.lr},
                {"momentum", o.momentum}, {"runs", runs}});
  return 0;
}


void add_gateway_bench_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<GatewayBenchOptions>();
  auto* c = parent.add_subcommand(
      "gateway", "A site gateway (swarmaggregate mode=forward) against every update sent on its own: uplink messages, bytes, accuracy");
  c->add_option("--nodes", o->nodes, "trainers behind the gateway")->check(CLI::Range(1, 64))->capture_default_str();
  c->add_option("--frames", o->frames, "frames per trainer, every one trained")->check(CLI::Range(64, 1000000))->capture_default_str();
  c->add_option("--intervals", o->intervals, "gateway intervals to compare, ms")->check(CLI::Range(1, 3600000))->capture_default_str();
  c->add_option("--density", o->density, "trainers' density")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  c->add_option("--json", o->json_path, "write results as JSON to this file");
  commands.add(c, [o] { return run_gateway_bench(*o); });
}

}  // namespace swarmlens
