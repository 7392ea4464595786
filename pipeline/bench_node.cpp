#include "bench_node.h"

#include <fmt/core.h>
#include <gst/gst.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <vector>

#include "camera.h"
#include "process.h"

namespace swarmlens {

namespace {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;

struct Case {
  std::string model;  // cnn, mobilenet
  bool train;
  std::string key() const { return model + (train ? ":train" : ":classify-only"); }
};

CameraOptions case_options(const Case& c, double seconds) {
  CameraOptions o;
  o.source = "videotestsrc is-live=true pattern=ball ! video/x-raw,width=640,height=480,framerate=30/1";
  o.model = c.model;
  if (c.model == "mobilenet") o.input_width = o.input_height = 96;
  o.model_id = "budget";
  o.label = 3;
  o.idle_policy = "always";  // the worst case for the video path: training never pauses
  o.trigger_age = 8;
  o.output = "none";
  o.duration = seconds;
  o.train = c.train;
  return o;
}

// One case in this process: frames at the sink after the first, their gaps, and the trainer's steps.
json run_case(const Case& c, double seconds) {
  gst_init(nullptr, nullptr);
  const std::string desc = camera_pipeline(case_options(c, seconds));
  GError* err = nullptr;
  GstElement* p = gst_parse_launch(desc.c_str(), &err);
  if (!p || err) throw std::runtime_error("pipeline: " + std::string(err ? err->message : "?"));
  struct Timing {
    Clock::time_point first, last;
    std::vector<double> gaps_ms;
    uint64_t frames = 0;
  } t;
  GstElement* sink = gst_bin_get_by_name(GST_BIN(p), "sink");
  GstPad* pad = gst_element_get_static_pad(sink, "sink");
  gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, +[](GstPad*, GstPadProbeInfo*, gpointer data) {
    auto* t = static_cast<Timing*>(data);
    const auto now = Clock::now();
    if (t->frames++ == 0) t->first = now;
    else t->gaps_ms.push_back(std::chrono::duration<double, std::milli>(now - t->last).count());
    t->last = now;
    return GST_PAD_PROBE_OK;
  }, &t, nullptr);
  gst_object_unref(pad);
  gst_object_unref(sink);
  GstBus* bus = gst_element_get_bus(p);
  gst_element_set_state(p, GST_STATE_PLAYING);
  const auto t0 = Clock::now();
  guint64 steps = 0, samples = 0;
  bool eos_sent = false;
  for (;;) {
    if (!eos_sent && std::chrono::duration<double>(Clock::now() - t0).count() >= seconds) {
      gst_element_send_event(p, gst_event_new_eos());
      eos_sent = true;
    }
    GstMessage* m = gst_bus_timed_pop_filtered(bus, 100 * GST_MSECOND,
        GstMessageType(GST_MESSAGE_ERROR | GST_MESSAGE_EOS | GST_MESSAGE_ELEMENT));
    if (!m) continue;
    const auto type = GST_MESSAGE_TYPE(m);
    if (type == GST_MESSAGE_ELEMENT) {
      const GstStructure* s = gst_message_get_structure(m);
      if (gst_structure_has_name(s, "swarmtrain-stats")) {
        gst_structure_get_uint64(s, "steps", &steps);
        gst_structure_get_uint64(s, "samples", &samples);
      }
    }
    gst_message_unref(m);
    if (type == GST_MESSAGE_ERROR) throw std::runtime_error("pipeline error: " + desc);
    if (type == GST_MESSAGE_EOS) break;
  }
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(p);
  const double span = std::chrono::duration<double>(t.last - t.first).count();
  std::vector<double> g = t.gaps_ms;
  std::sort(g.begin(), g.end());
  const auto pct = [&g](double q) { return g.empty() ? 0.0 : g[std::min(g.size() - 1, size_t(q * double(g.size())))]; };
  return {{"case", c.key()}, {"frames", t.frames}, {"fps", span > 0 ? double(t.frames - 1) / span : 0.0},
          {"gap_p99_ms", pct(0.99)}, {"gap_max_ms", g.empty() ? 0.0 : g.back()},
          {"train_steps", steps}, {"train_samples", samples},
          {"train_steps_per_s", span > 0 ? double(steps) / span : 0.0}, {"pipeline", desc}};
}

// Runs one case in a child of this executable pinned to `cpu`; its JSON line plus its peak RSS.
json run_child(const Case& c, const NodeBenchOptions& o) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  const std::string exe = self_dir() + "/swarmlens";
  const auto t0 = Clock::now();
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(o.cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0) _exit(126);
    dup2(fds[1], STDOUT_FILENO);
    close(fds[0]);
    const std::string secs = fmt::format("{}", o.seconds);
    execl(exe.c_str(), exe.c_str(), "bench", "node", "--child", c.key().c_str(), "--seconds", secs.c_str(), nullptr);
    _exit(127);
  }
  close(fds[1]);
  std::string out;
  char buf[4096];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, size_t(n));
  close(fds[0]);
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw std::runtime_error(fmt::format("case {} failed (status {})", c.key(), status));
  json j = json::parse(out.substr(out.rfind("{\"")));
  j["peak_rss_mib"] = double(ru.ru_maxrss) / 1024.0;
  // The share of its one core the whole process used (start-up included): the headroom a slower
  // core has before swarmtrain must skip frames.
  const double cpu = double(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + 1e-6 * double(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
  j["cpu_share"] = cpu / wall;
  return j;
}

}  // namespace

int run_node_bench(const NodeBenchOptions& o) {
  if (!o.child.empty()) {
    const auto colon = o.child.find(':');
    const Case c{o.child.substr(0, colon), o.child.substr(colon + 1) == "train"};
    fmt::print("{}\n", run_case(c, o.seconds).dump());
    return 0;
  }
  fmt::print("node budget: each case a process pinned to CPU {}, a live 640x480 30 fps camera, {:.0f} s\n", o.cpu,
             o.seconds);
  json all = {{"cpu", o.cpu}, {"seconds", o.seconds}, {"cases", json::array()}};
  for (const std::string model : {"cnn", "mobilenet"}) {
    const json train = run_child({model, true}, o), plain = run_child({model, false}, o);
    for (const json& j : {train, plain})
      fmt::print("  {:<24} peak RSS {:6.1f} MiB  {:5.1f} frames/s  gap p99 {:6.1f} ms  max {:6.1f} ms  "
                 "train {:5.2f} steps/s  core busy {:4.0f}%\n",
                 j["case"].get<std::string>(), j["peak_rss_mib"].get<double>(), j["fps"].get<double>(),
                 j["gap_p99_ms"].get<double>(), j["gap_max_ms"].get<double>(), j["train_steps_per_s"].get<double>(),
                 100.0 * j["cpu_share"].get<double>());
    const double ratio = train["fps"].get<double>() / plain["fps"].get<double>();
    fmt::print("  {}: live frames/s with training / without {:.3f}\n", model, ratio);
    all["cases"].push_back(train);
    all["cases"].push_back(plain);
    all[model + "_fps_ratio_train_to_classify_only"] = ratio;
  }
  if (!o.json_path.empty()) std::ofstream(o.json_path) << all.dump(2) << "\n";
  return 0;
}

}  // namespace swarmlens
