#include "bench_elements.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <memory>
#include <gst/gst.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <stdexcept>
#include <thread>

#include "bench_report.h"
#include "classifier.h"
#include "compressor.h"
#include "dataset.h"
#include "launch.h"
#include "busy_load.h"
#include "model.h"
#include "onnx_export.h"
#include "snapshot.h"
#include "command.h"

namespace swarmlens {

namespace {

using Clock = std::chrono::steady_clock;

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Runs a pipeline that ends in "fakesink name=sink" to EOS. Returns the seconds from the first buffer
// at the sink to EOS, so that start-up (loading the data set, the model) is not counted, as the bare
// loops load theirs before their clock starts. `frames_out` gets the frames that reached the sink
// after the first, and `samples` (if asked) the last swarmtrain-stats' trained samples (of the
// swarmtrain named "train").
double run_pipeline(const std::string& desc, guint64* frames_out, guint64* samples = nullptr) {
  MeasureOptions mo;
  mo.probe_sink = true;
  const Measured m = run_measured(desc, mo);
  if (m.sink_buffers.empty()) throw std::runtime_error("no frame reached the sink: " + desc);
  if (samples) *samples = m.stat("train", "samples");
  *frames_out = m.sink_buffers.size() - 1;
  return std::chrono::duration<double>(m.ended - m.sink_buffers.front()).count();
}

// Peak resident set of a gst-launch-1.0 child running `desc`, in MiB.
double peak_rss_mib(const std::string& desc) {
  const pid_t pid = fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    execlp("sh", "sh", "-c", ("exec gst-launch-1.0 -q " + desc + " >/dev/null").c_str(), nullptr);
    _exit(127);
  }
  int status = 0;
  struct rusage ru {};
  wait4(pid, &status, 0, &ru);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) throw std::runtime_error("gst-launch-1.0 failed: " + desc);
  return double(ru.ru_maxrss) / 1024.0;
}

// Training: the bare loop (batch, gradient, two-step compression, local apply) vs swarmtrain.
nlohmann::json measure_train(const ElementsBenchOptions& o, const Dataset& train, const std::vector<uint32_t>& order) {
  auto model = Model::create({}, 1);
  const float lr = float(NodeTrainerConfig::kDefaultLr);  // as swarmtrain's defaults
  TwoStepCompressor comp(uint32_t(model->num_params()), node_compression_defaults(), {"bench", model->layout_hash(), 0});
  std::vector<float> global = model->params_copy(), images;
  std::vector<int64_t> labels;
  const int steps = o.train_frames / int(o.batch);
  const auto t0 = Clock::now();
  for (int s = 0; s < steps; ++s) {
    make_batch(train, order.data() + size_t(s) * o.batch, o.batch, images, labels);
    model->set_params(global.data());
    comp.apply_pending(model->params(), lr);
    model->compute_gradient({images.data(), labels.data(), o.batch});
    if (auto msg = comp.step(model->grad(), o.batch, 0))
      scatter_add(decode_update(*msg).value.update, -lr, global.data());
  }
  const double bare_fps = double(steps) * o.batch / since(t0);
  // drop-when-busy=false: the element trains on every frame (and drains at EOS), as the bare loop does.
  guint64 samples = 0, frames = 0;
  const double secs = run_pipeline(fmt::format(
      "swarmsrc fps-n=0 num-buffers={} ! swarmtrain name=train batch-size={} drop-when-busy=false stats-interval=0 ! "
      "fakesink name=sink", o.train_frames, o.batch), &frames, &samples);
  const double element_fps = double(frames) / secs;
  if (samples < guint64(steps) * o.batch) throw std::runtime_error("swarmtrain trained fewer frames than it saw");
  fmt::print("train     bare loop {:8.1f} frames/s   swarmtrain in a pipeline {:8.1f} frames/s   ratio {:.3f}\n",
             bare_fps, element_fps, element_fps / bare_fps);
  return {{"bare_frames_per_second", bare_fps}, {"element_frames_per_second", element_fps},
          {"ratio", element_fps / bare_fps}, {"frames", o.train_frames}, {"element_trained", samples},
          {"batch", o.batch}};
}

// Classification: bare forward passes (one frame at a time) vs swarmclassify.
nlohmann::json measure_classify(const ElementsBenchOptions& o, const Dataset& train, const std::vector<uint32_t>& order) {
  auto model = Model::create({}, 1);
  const std::string snap = "bench-elements-model.swm";
  save_snapshot(snap, {"cnn", model->layout_hash(), 1, model->params_copy()});
  Classifier cls({}, 1);
  cls.load_file(snap);
  std::vector<float> images;
  std::vector<int64_t> labels;
  const auto t0 = Clock::now();
  for (int i = 0; i < o.classify_frames; ++i) {
    make_batch(train, order.data() + i, 1, images, labels);
    cls.classify(images.data());
  }
  const double bare_fps = o.classify_frames / since(t0);
  guint64 frames = 0;
  const double secs = run_pipeline(fmt::format(
      "swarmsrc fps-n=0 num-buffers={} ! swarmclassify location={} ! fakesink name=sink", o.classify_frames, snap),
      &frames);
  const double element_fps = double(frames) / secs;
  std::remove(snap.c_str());
  fmt::print("classify  bare loop {:8.1f} frames/s   swarmclassify in a pipeline {:8.1f} frames/s   ratio {:.3f}\n",
             bare_fps, element_fps, element_fps / bare_fps);
  return {{"bare_frames_per_second", bare_fps}, {"element_frames_per_second", element_fps},
          {"ratio", element_fps / bare_fps}, {"frames", o.classify_frames}};
}

// Peak RSS of a whole node pipeline in its own process.
nlohmann::json measure_node_pipeline() {
  const std::string desc =
      "swarmsrc fps-n=0 num-buffers=3000 width=280 height=280 format=BGRx ! swarmtrain ! swarmclassify ! "
      "swarmoverlay ! fakesink";
  const double mib = peak_rss_mib(desc);
  fmt::print("node pipeline peak RSS {:.1f} MiB   ({})\n", mib, desc);
  return {{"peak_rss_mib", mib}, {"pipeline", desc}};
}

// The two classify backends side by side: LibTorch on the snapshot vs OpenCV DNN on the same
// model exported to ONNX. Frames/s in this process, peak RSS each in a process of its own.
nlohmann::json measure_classify_backends(const ElementsBenchOptions& o) {
  ModelSpec spec;
  auto model = Model::create(spec, 1);
  const std::string snap = "bench-elements-backend.swm", onnx = "bench-elements-backend.onnx";
  save_snapshot(snap, {"cnn", model->layout_hash(), 1, model->params_copy()});
  OnnxExportInfo info;
  info.class_names = fashion_mnist_class_names();
  std::ofstream(onnx, std::ios::binary) << export_onnx(*model, info);
  auto pipeline = [&](const std::string& props, int frames) {
    return fmt::format("swarmsrc fps-n=0 num-buffers={} ! swarmclassify {} ! fakesink name=sink", frames, props);
  };
  const std::string torch_props = "location=" + snap, cv_props = "backend=opencv location=" + onnx;
  guint64 f1 = 0, f2 = 0;
  const double t_secs = run_pipeline(pipeline(torch_props, o.classify_frames), &f1);
  const double c_secs = run_pipeline(pipeline(cv_props, o.classify_frames), &f2);
  const double t_fps = double(f1) / t_secs, c_fps = double(f2) / c_secs;
  const double t_rss = peak_rss_mib(pipeline(torch_props, o.classify_frames));
  const double c_rss = peak_rss_mib(pipeline(cv_props, o.classify_frames));
  std::remove(snap.c_str());
  std::remove(onnx.c_str());
  fmt::print("backends  libtorch {:8.1f} frames/s {:6.1f} MiB   opencv {:8.1f} frames/s {:6.1f} MiB   "
             "fps ratio opencv/libtorch {:.3f}   RSS ratio {:.3f}\n", t_fps, t_rss, c_fps, c_rss, c_fps / t_fps, c_rss / t_rss);
  return {{"libtorch_frames_per_second", t_fps}, {"opencv_frames_per_second", c_fps},
          {"libtorch_peak_rss_mib", t_rss}, {"opencv_peak_rss_mib", c_rss},
          {"fps_ratio_opencv_to_libtorch", c_fps / t_fps}, {"rss_ratio_opencv_to_libtorch", c_rss / t_rss},
          {"frames", o.classify_frames}};
}

// Training on idle cycles: the live path's classify frames/s while other processes load every
// core, with no trainer, a trainer that trains always at normal priority, and one under
// idle-policy=load; against the same pipeline on an idle machine.
nlohmann::json measure_idle_policy(const ElementsBenchOptions& o) {
  auto model = Model::create({}, 1);
  const std::string snap = "bench-elements-idle.swm";
  save_snapshot(snap, {"cnn", model->layout_hash(), 1, model->params_copy()});
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  struct Case {
    const char* name;
    bool busy;
    std::string trainer;  // swarmtrain properties, "" = none
  };
  const Case cases[] = {
      {"idle machine, no trainer", false, ""},
      {"idle machine, trainer always (nice 10)", false, "idle-policy=always"},
      {"busy machine, no trainer", true, ""},
      {"busy machine, trainer always at nice 0", true, "idle-policy=always nice=0"},
      {"busy machine, trainer idle-policy=load", true, "idle-policy=load load-ceiling=0.5"},
  };
  nlohmann::json rows = nlohmann::json::array();
  double base = 0.0, busy_base = 0.0;
  for (const auto& c : cases) {
    BusyLoad load(c.busy ? cores : 0);
    if (c.busy) std::this_thread::sleep_for(std::chrono::milliseconds(700));  // the policy sees it
    const std::string train = c.trainer.empty() ? "" : "swarmtrain name=train stats-interval=200 " + c.trainer + " ! ";
    guint64 frames = 0, samples = 0;
    const double secs = run_pipeline(fmt::format("swarmsrc fps-n=0 num-buffers={} ! {}swarmclassify location={} ! fakesink name=sink",
                                                 o.idle_frames, train, snap), &frames, c.trainer.empty() ? nullptr : &samples);
    const double fps = double(frames) / secs;
    if (!c.busy && c.trainer.empty()) base = fps;
    if (c.busy && c.trainer.empty()) busy_base = fps;
    fmt::print("idle      {:<42} {:8.1f} frames/s   vs idle {:.3f}   vs busy-no-trainer {}   trained {}\n", c.name, fps,
               fps / base, busy_base > 0 ? fmt::format("{:.3f}", fps / busy_base) : "-", samples);
    rows.push_back({{"case", c.name}, {"busy_processes", c.busy ? cores : 0}, {"trainer", c.trainer},
                    {"classify_frames_per_second", fps}, {"ratio_to_idle", fps / base},
                    {"ratio_to_busy_without_trainer", busy_base > 0 ? nlohmann::json(fps / busy_base) : nlohmann::json(nullptr)},
                    {"trained_samples", samples}});
  }
  std::remove(snap.c_str());
  return {{"frames", o.idle_frames}, {"cases", rows}};
}

}  // namespace

int run_elements_bench(const ElementsBenchOptions& o) {
  const JsonReport report(o.json_path);
  const auto train = load_fashion_mnist(default_fashion_mnist_dir(), true);
  const auto order = shard_iid(train.size(), 1, 1)[0];  // swarmsrc's frame order
  nlohmann::json j;
  j["train"] = measure_train(o, train, order);
  j["classify"] = measure_classify(o, train, order);
  j["node_pipeline"] = measure_node_pipeline();
  j["classify_backends"] = measure_classify_backends(o);
  j["idle_policy"] = measure_idle_policy(o);
  report.write(j);
  return 0;
}


void add_elements_bench_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<ElementsBenchOptions>();
  auto* c = parent.add_subcommand(
      "elements", "GStreamer elements vs the bare library loops they wrap; peak RSS of a node pipeline");
  c->add_option("--train-frames", o->train_frames, "frames for the training comparison")->check(CLI::Range(64, 1000000))->capture_default_str();
  c->add_option("--classify-frames", o->classify_frames, "frames for the classification comparison")->check(CLI::Range(10, 1000000))->capture_default_str();
  c->add_option("--idle-frames", o->idle_frames, "classify frames per idle-policy case")->check(CLI::Range(100, 1000000))->capture_default_str();
  c->add_option("--batch-size,--batch", o->batch, "batch size")->check(CLI::Range(1, 4096))->capture_default_str();
  c->add_option("--json", o->json_path, "write results as JSON to this file");
  commands.add(c, [o] { return run_elements_bench(*o); });
}

}  // namespace swarmlens
