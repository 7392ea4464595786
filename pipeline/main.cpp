// The swarmlens command. Subcommands: bench compression, bench elements.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdlib>
#include <exception>
#include <string>

#include "bench_compression.h"
#include "bench_elements.h"

namespace {

// A preset sets defaults; options given on the command line override it whatever their order, so
// the preset is found before the real parse.
std::string find_preset(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--preset" && i + 1 < argc) return argv[i + 1];
    if (a.rfind("--preset=", 0) == 0) return a.substr(9);
  }
  return "quick";
}

}  // namespace

int main(int argc, char** argv) {
  using namespace swarmlens;
  CLI::App app{"Swarmlens: video analytics pipelines that train on the camera nodes themselves"};
  app.require_subcommand(1);

  BenchOptions bo;
  try {
    apply_preset(bo, find_preset(argc, argv));
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 2;
  }
  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto* comp = bench->add_subcommand(
      "compression", "Simulated nodes on Fashion-MNIST: dense SGD vs DGC top-k vs two-step vs FedAvg");
  std::string criterion = criterion_name(bo.criterion), values = value_coding_name(bo.values);
  comp->add_option("--preset", bo.preset, "quick (CI, a few minutes) or full (where targets are judged)")
      ->check(CLI::IsMember({"quick", "full"}))->capture_default_str();
  comp->add_option("--model", bo.model, "model registry name")->check(CLI::IsMember({"cnn"}))->capture_default_str();
  comp->add_option("--data", bo.data_dir, "Fashion-MNIST folder (default: $SWARMLENS_FASHION_MNIST or the Debian package's)");
  comp->add_option("--nodes", bo.nodes, "simulated nodes")->check(CLI::Range(1, 256))->capture_default_str();
  comp->add_option("--epochs", bo.epochs, "passes over each node's shard")->check(CLI::Range(1, 1000))->capture_default_str();
  comp->add_option("--train-limit", bo.train_limit, "training images used (0 = all)")->capture_default_str();
  comp->add_option("--test-limit", bo.test_limit, "test images used (0 = all)")->capture_default_str();
  comp->add_option("--batch", bo.batch, "batch size per node")->check(CLI::Range(1, 4096))->capture_default_str();
  comp->add_option("--lr", bo.lr, "learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  comp->add_option("--momentum", bo.momentum, "momentum")->check(CLI::Range(0.0, 0.999))->capture_default_str();
  comp->add_option("--density", bo.density, "share of entries sent per step after warm-up")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  comp->add_option("--warmup-fraction", bo.warmup_fraction, "share of the run in sparsity warm-up")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  comp->add_option("--criterion", criterion, "selection: topk, sampled-topk, threshold, randomk")
      ->check(CLI::IsMember({"topk", "sampled-topk", "randomk"}))->capture_default_str();
  comp->add_option("--values", values, "value coding on the wire: fp32, fp16, int8")
      ->check(CLI::IsMember({"fp32", "fp16", "int8"}))->capture_default_str();
  comp->add_option("--clip-norm", bo.clip_norm, "local gradient clipping L2 bound (0 = off)")->check(CLI::NonNegativeNumber)->capture_default_str();
  comp->add_option("--trigger-age", bo.trigger_age, "two-step: release after this many steps (0 = off)")->capture_default_str();
  comp->add_option("--trigger-nnz", bo.trigger_nnz, "two-step: release at this many pending entries (0 = off)")->capture_default_str();
  comp->add_option("--trigger-norm", bo.trigger_norm, "two-step: release at this pending L2 norm (0 = off)")->check(CLI::NonNegativeNumber)->capture_default_str();
  comp->add_option("--fedavg-steps", bo.fedavg_steps, "FedAvg local steps per round")->check(CLI::Range(1, 100000))->capture_default_str();
  comp->add_option("--alpha", bo.dirichlet_alpha, "non-IID shards with Dirichlet(alpha); 0 = IID")->check(CLI::NonNegativeNumber)->capture_default_str();
  comp->add_option("--seed", bo.seed, "seed for weights, shards and sampling")->capture_default_str();
  comp->add_option("--threads", bo.threads, "LibTorch threads (0 = its default)")->capture_default_str();
  comp->add_option("--methods", bo.methods, "methods to run, in order")
      ->check(CLI::IsMember({"dense", "topk", "twostep", "fedavg"}))->delimiter(',')->capture_default_str();
  comp->add_option("--json", bo.json_path, "write results as JSON to this file");

  ElementsBenchOptions eo;
  auto* elements = bench->add_subcommand(
      "elements", "GStreamer elements vs the bare library loops they wrap; peak RSS of a node pipeline");
  elements->add_option("--train-frames", eo.train_frames, "frames for the training comparison")->check(CLI::Range(64, 1000000))->capture_default_str();
  elements->add_option("--classify-frames", eo.classify_frames, "frames for the classification comparison")->check(CLI::Range(10, 1000000))->capture_default_str();
  elements->add_option("--batch", eo.batch, "batch size")->check(CLI::Range(1, 4096))->capture_default_str();
  elements->add_option("--json", eo.json_path, "write results as JSON to this file");

  CLI11_PARSE(app, argc, argv);
  // Run from the build tree, find the plugin built beside this binary unless told otherwise.
  if (!std::getenv("GST_PLUGIN_PATH")) setenv("GST_PLUGIN_PATH", SWARMLENS_BUILD_PLUGIN_DIR, 0);

  try {
    if (comp->parsed()) {
      bo.criterion = *parse_criterion(criterion);
      bo.values = *parse_value_coding(values);
      return run_compression_bench(bo);
    }
    if (elements->parsed()) return run_elements_bench(eo);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
