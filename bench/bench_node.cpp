#include "bench_node.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <memory>
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

#include "bench_report.h"
#include "camera.h"
#include "launch.h"
#include "process.h"
#include "command.h"

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
  const std::string desc = camera_pipeline(case_options(c, seconds));
  MeasureOptions mo;
  mo.probe_sink = true;
  mo.stop_after = seconds;
  const Measured m = run_measured(desc, mo);
  if (m.sink_buffers.empty()) throw std::runtime_error("no frame reached the sink: " + desc);
  std::vector<double> g;
  for (size_t i = 1; i < m.sink_buffers.size(); ++i)
    g.push_back(std::chrono::duration<double, std::milli>(m.sink_buffers[i] - m.sink_buffers[i - 1]).count());
  const uint64_t frames = m.sink_buffers.size();
  const uint64_t steps = m.stat_or_zero("train", "steps"), samples = m.stat_or_zero("train", "samples");
  const double span = std::chrono::duration<double>(m.sink_buffers.back() - m.sink_buffers.front()).count();
  std::sort(g.begin(), g.end());
  const auto pct = [&g](double q) { return g.empty() ? 0.0 : g[std::min(g.size() - 1, size_t(q * double(g.size())))]; };
  return {{"case", c.key()}, {"frames", frames}, {"fps", span > 0 ? double(frames - 1) / span : 0.0},
          {"gap_p99_ms", pct(0.99)}, {"gap_max_ms", g.empty() ? 0.0 : g.back()},
          {"train_steps", steps}, {"train_samples", samples},
          {"train_steps_per_s", span > 0 ? double(steps) / span : 0.0}, {"pipeline", desc}};
}

// Runs one case in a child of this executable pinned to `cpu`; its JSON line plus its peak RSS.
json run_child(const Case& c, const NodeBenchOptions& o) {
  int fds[2];
  if (pipe(fds) != 0) throw std::runtime_error("pipe failed");
  const std::string exe = self_dir() + "/swarmlens-bench";
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
    execl(exe.c_str(), exe.c_str(), "node", "--child", c.key().c_str(), "--seconds", secs.c_str(), nullptr);
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
  const JsonReport report(o.json_path);
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
  report.write(all);
  return 0;
}


void add_node_bench_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<NodeBenchOptions>();
  auto* c = parent.add_subcommand("node", "A camera node on a Pi-class budget: each case a process pinned to one "
                                              "core; peak RSS, live frames/s and gaps, with and without training");
  c->add_option("--duration,--seconds", o->seconds, "seconds per case")->check(CLI::Range(3.0, 3600.0))->capture_default_str();
  c->add_option("--cpu", o->cpu, "the core to pin to")->check(CLI::Range(0, 1023))->capture_default_str();
  c->add_option("--json", o->json_path, "write results as JSON to this file");
  c->add_option("--child", o->child, "internal: run one case here")->group("");
  commands.add(c, [o] { return run_node_bench(*o); });
}

}  // namespace swarmlens
