#include "bench_gateway.h"

#include <fmt/core.h>
#include <gst/gst.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "dataset.h"
#include "metrics.h"
#include "model.h"
#include "snapshot.h"

namespace swarmlens {

namespace {

struct Outcome {
  uint64_t node_messages = 0, node_bytes = 0;  // what the trainers released
  uint64_t up_messages = 0, up_bytes = 0;      // what reached the serving aggregator
  uint64_t version = 0;
  double accuracy = 0, seconds = 0;
};

uint64_t u64(const GstStructure* s, const char* f) {
  guint64 v = 0;
  gst_structure_get_uint64(s, f, &v);
  return v;
}

// Runs to EOS and NULL; returns each element's last *-stats structure by element name.
std::map<std::string, GstStructure*> play(const std::string& desc, double& seconds) {
  GError* err = nullptr;
  GstElement* p = gst_parse_launch(desc.c_str(), &err);
  if (!p) throw std::runtime_error(std::string("pipeline: ") + (err ? err->message : desc));
  std::map<std::string, GstStructure*> stats;
  GstBus* bus = gst_element_get_bus(p);
  auto take = [&](GstMessage* m) {
    const GstStructure* s = gst_message_get_structure(m);
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT && s && g_str_has_suffix(gst_structure_get_name(s), "-stats")) {
      GstStructure*& slot = stats[GST_OBJECT_NAME(GST_MESSAGE_SRC(m))];
      if (slot) gst_structure_free(slot);
      slot = gst_structure_copy(s);
    }
  };
  const auto start = std::chrono::steady_clock::now();
  gst_element_set_state(p, GST_STATE_PLAYING);
  std::string error;
  for (bool done = false; !done;) {
    GstMessage* m = gst_bus_timed_pop(bus, 600 * GST_SECOND);
    if (!m) throw std::runtime_error("pipeline did not end in 600 s");
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS) done = true;
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
      GError* e = nullptr;
      gst_message_parse_error(m, &e, nullptr);
      error = e->message;
      g_error_free(e);
      done = true;
    }
    take(m);
    gst_message_unref(m);
  }
  seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  gst_element_set_state(p, GST_STATE_NULL);
  while (GstMessage* m = gst_bus_pop(bus)) {
    take(m);
    gst_message_unref(m);
  }
  gst_object_unref(bus);
  gst_object_unref(p);
  if (!error.empty()) throw std::runtime_error("pipeline failed: " + error);
  return stats;
}

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
                                      "! fakesink async=false", o.lr / o.nodes, snapshot);
  if (interval_ms == 0) {
    desc += "t0.update ! " + top + " ";
    for (uint32_t n = 1; n < o.nodes; ++n) desc += fmt::format("t{}.update ! top. ", n);
  } else {
    desc += fmt::format("t0.update ! swarmaggregate name=gw mode=forward node-id=1000 interval={} stats-interval=0 ! {} ",
                        interval_ms, top);
    for (uint32_t n = 1; n < o.nodes; ++n) desc += fmt::format("t{}.update ! gw. ", n);
  }
  Outcome out;
  auto stats = play(desc, out.seconds);
  auto of = [&](const std::string& name) {
    auto it = stats.find(name);
    if (it == stats.end()) throw std::runtime_error("no stats from " + name);
    return it->second;
  };
  for (uint32_t n = 0; n < o.nodes; ++n) {
    out.node_messages += u64(of(fmt::format("t{}", n)), "messages");
    out.node_bytes += u64(of(fmt::format("t{}", n)), "bytes-out");
  }
  out.up_messages = u64(of("top"), "accepted");
  out.up_bytes = u64(of("top"), "bytes-in");
  out.version = u64(of("top"), "model-version");
  for (auto& [name, s] : stats) gst_structure_free(s);
  const Snapshot s = load_snapshot(snapshot);
  std::remove(snapshot.c_str());
  auto model = Model::create({}, 1);
  model->set_params(s.params.data());
  out.accuracy = evaluate_accuracy(*model, test);
  return out;
}

}  // namespace

int run_gateway_bench(const GatewayBenchOptions& o) {
  gst_init(nullptr, nullptr);
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
  if (!o.json_path.empty()) {
    std::ofstream(o.json_path) << nlohmann::json{{"nodes", o.nodes}, {"frames", o.frames}, {"density", o.density},
                                                 {"lr", o.lr}, {"momentum", o.momentum}, {"runs", runs}}.dump(2)
                               << "\n";
  }
  return 0;
}

}  // namespace swarmlens
