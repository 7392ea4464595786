#include "bench_input_size.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <gst/gst.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <stdexcept>

#include "bench_report.h"
#include "camera_model.h"
#include "command.h"
#include "dataset.h"
#include "launch.h"
#include "metrics.h"
#include "model.h"
#include "optim.h"
#include "snapshot.h"
#include "swarmlens/swarmlens-meta.h"

namespace swarmlens {

namespace {

struct Counts {
  uint64_t frames = 0, correct = 0;
};

// Plays `desc` (ending in "fakesink name=sink") to EOS, counting the labelled frames whose
// classification meta is right.
Counts pipeline_accuracy(const std::string& desc) {
  Counts c;
  MeasureOptions mo;
  mo.on_sink_buffer = [&c](GstBuffer* b) {
    const GstSwarmLabelMeta* truth = swarmlens_buffer_get_label_meta(b);
    const GstSwarmClassificationMeta* guess = swarmlens_buffer_get_classification_meta(b);
    if (!truth || !guess) return;
    ++c.frames;
    c.correct += truth->label == guess->label;
  };
  run_measured(desc, mo);
  return c;
}

// The small CNN after `epochs` passes of plain SGD (batch 32, momentum 0.9) over the training set.
std::unique_ptr<Model> train_cnn(const Dataset& train, int epochs) {
  auto model = Model::create({}, 1);
  FlatSgd sgd(model->num_params(), 0.05, 0.9);
  std::vector<float> images;
  std::vector<int64_t> labels;
  std::vector<uint32_t> order(train.size());
  std::iota(order.begin(), order.end(), 0u);
  std::mt19937_64 rng(1);
  const size_t batch = 32;
  for (int e = 0; e < epochs; ++e) {
    std::shuffle(order.begin(), order.end(), rng);
    for (size_t s = 0; s + batch <= order.size(); s += batch) {
      make_batch(train, order.data() + s, batch, images, labels);
      model->compute_gradient({images.data(), labels.data(), batch});
      sgd.step(model->params(), model->grad());
    }
  }
  return model;
}

}  // namespace

int run_input_size_bench(const InputSizeBenchOptions& o) {
  const JsonReport report(o.json_path);
  const std::string dir = default_fashion_mnist_dir();
  const Dataset train = load_fashion_mnist(dir, true);
  const Dataset all = load_fashion_mnist(dir, false);
  // The frames swarmsrc plays, in its order (shard 0 of 1, seed 1), for the figure without a pipeline.
  const std::vector<uint32_t> order = shard_iid(all.size(), 1, 1)[0];
  const size_t n = o.test_limit ? std::min(all.size(), size_t(o.test_limit)) : all.size();
  Dataset test;
  test.rows = all.rows, test.cols = all.cols, test.channels = all.channels;
  for (size_t i = 0; i < n; ++i) {
    test.pixels.insert(test.pixels.end(), all.image(order[i]), all.image(order[i]) + all.image_size());
    test.labels.push_back(all.labels[order[i]]);
  }
  auto model = train_cnn(train, o.train_epochs);
  const double direct = evaluate_accuracy(*model, test);
  const std::string snap = "bench-input-size-model.swm";
  Snapshot s{"cnn", model->layout_hash(), 1, model->params_copy()};
  s.description = describe_model(model->spec(), fashion_mnist_class_names());
  save_snapshot(snap, s);

  const std::string src = fmt::format("swarmsrc location={} set=test fps-n=0 num-buffers={}", dir, test.size());
  const std::string cls = fmt::format("swarmclassify location={} ! fakesink name=sink", snap);
  const std::string cases[] = {
      fmt::format("{} ! {}", src, cls),                                        // the model's own size
      fmt::format("{} width={} height={} ! {}", src, o.size, o.size, cls),     // swarmclassify scales
      fmt::format("{} width={} height={} ! videoscale ! video/x-raw,width=28,height=28 ! {}", src, o.size, o.size, cls),
  };
  nlohmann::json j = {{"benchmark", "input-size"}, {"size", o.size}, {"epochs", o.train_epochs}, {"test_frames", test.size()},
                      {"library_accuracy", direct}};
  fmt::print("the model on the test split, no pipeline: {:.4f}\n", direct);
  const char* keys[] = {"model_size", "element_downscale", "videoscale"};
  for (size_t i = 0; i < 3; ++i) {
    const Counts c = pipeline_accuracy(cases[i]);
    const double acc = c.frames ? double(c.correct) / double(c.frames) : 0.0;
    fmt::print("{:<17} {:.4f} ({} frames)   {}\n", keys[i], acc, c.frames, cases[i]);
    j[keys[i]] = {{"accuracy", acc}, {"frames", c.frames}, {"pipeline", cases[i]}};
  }
  std::remove(snap.c_str());
  report.write(j);
  return 0;
}

void add_input_size_bench_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<InputSizeBenchOptions>();
  auto* c = parent.add_subcommand("input-size", "Accuracy of frames larger than the model's input: scaled by "
                                                "swarmclassify itself vs by videoscale first, side by side");
  c->add_option("--size", o->size, "the larger frames' width and height")->check(CLI::Range(29, 2048))->capture_default_str();
  c->add_option("--epochs", o->train_epochs, "training passes before measuring")->check(CLI::Range(1, 100))->capture_default_str();
  c->add_option("--test-limit", o->test_limit, "test frames played (0 = all 10,000)")->check(CLI::Range(0, 10000))->capture_default_str();
  c->add_option("--json", o->json_path, "write results as JSON to this file");
  commands.add(c, [o] { return run_input_size_bench(*o); });
}

}  // namespace swarmlens
