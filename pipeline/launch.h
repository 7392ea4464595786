// Running gst-launch descriptions: the product's run-until-stopped loop (swarmlens node, camera) and
// the benchmarks' run-to-the-end with a probe on the sink and every element's last stats message.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

typedef struct _GstBuffer GstBuffer;  // as gst/gst.h declares it: this header stays free of GStreamer

namespace swarmlens {

// Runs a gst-launch description until EOS, an error (1), `duration` seconds (0 = no limit) or
// SIGINT/SIGTERM; a stop sends EOS first, so trainers send their pending update and write their
// checkpoint. Errors and warnings go to stderr prefixed with `who`. 2 = the description is bad.
int run_launch(const std::string& desc, const std::string& who, double duration);

// An element's stats message (swarmtrain-stats) as plain values: numbers (integers, doubles and
// booleans as 0/1) and strings, by field name.
struct StatsFields {
  std::map<std::string, double> numbers;
  std::map<std::string, std::string> strings;
};
struct LaunchHooks {
  // Every swarmtrain-stats message, on the loop's thread.
  std::function<void(const StatsFields&)> on_train_stats;
  // The pipeline (a GstElement*) once parsed, before it plays: to find elements and connect signals.
  std::function<void(void* pipeline)> on_pipeline;
};
int run_launch(const std::string& desc, const std::string& who, double duration, const LaunchHooks& hooks);

// SIGINT and SIGTERM set a flag instead of ending the process (run_launch installs this itself).
void catch_stop_signals();
bool stop_requested();

// Run to its end, for measuring: the pipeline plays until EOS (or, with stop_after, until it has
// been sent EOS after that many seconds and drained); an error message on the bus, a bad
// description or no end within `timeout` seconds throws std::runtime_error.
struct Measured {
  using Clock = std::chrono::steady_clock;
  Clock::time_point playing, ended;            // set to PLAYING; EOS came
  std::vector<Clock::time_point> sink_buffers; // arrivals at the element named "sink", when probed
  // Each element's last "<element>-stats" message by element name (those posted while stopping
  // included): its unsigned integer fields.
  std::map<std::string, std::map<std::string, uint64_t>> stats;

  double seconds() const { return std::chrono::duration<double>(ended - playing).count(); }
  // A field of an element's stats; throws if that element posted none or has no such field.
  uint64_t stat(const std::string& element, const std::string& field) const;
  // The same, 0 if that element posted no stats.
  uint64_t stat_or_zero(const std::string& element, const std::string& field) const;
};
struct MeasureOptions {
  bool probe_sink = false;  // time every buffer at the element named "sink"
  // Called with every buffer at the element named "sink" (on the streaming thread, before it is
  // timed), e.g. to read its metas; empty = none.
  std::function<void(GstBuffer*)> on_sink_buffer;
  double stop_after = 0;    // seconds; 0 = play to the pipeline's own EOS
  double timeout = 600;     // seconds
};
Measured run_measured(const std::string& desc, const MeasureOptions& o = {});

// In a build tree, GStreamer finds the plugin built beside this program unless GST_PLUGIN_PATH says
// otherwise.
void use_build_plugin_dir();

}  // namespace swarmlens
