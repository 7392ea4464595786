// The swarmlens command. Subcommands: demo, node, camera, bench (compression, elements, broker, gateway, node, field-node, field-watch), export.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <cstdlib>
#include <exception>
#include <string>

#include "bench_broker.h"
#include "bench_gateway.h"
#include "bench_compression.h"
#include "bench_elements.h"
#include "bench_field.h"
#include "bench_node.h"
#include "camera.h"
#include "demo.h"
#include "export.h"

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

void add_federation_options(CLI::App* app, swarmlens::FederationSettings& f) {
  app->add_option("--model-id", f.model_id, "model id (NATS subjects swarmlens.<id>.*)")->capture_default_str();
  app->add_option("--lr", f.lr, "learning rate of one node's update")->check(CLI::PositiveNumber)->capture_default_str();
  app->add_option("--local-lr", f.local_lr, "rate of a node's step on its own view (0 = --lr; the broker applies lr / nodes)")->check(CLI::NonNegativeNumber)->capture_default_str();
  app->add_option("--momentum", f.momentum, "momentum, corrected locally")->check(CLI::Range(0.0, 0.999))->capture_default_str();
  app->add_option("--density", f.density, "share of gradient entries sent after warm-up")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  app->add_option("--trigger-age", f.trigger_age, "release the pending update after this many steps")->check(CLI::Range(1, 1000000))->capture_default_str();
  app->add_option("--warmup-steps", f.warmup_steps, "steps per sparsity warm-up stage")->capture_default_str();
  app->add_option("--batch", f.batch, "frames per training step")->check(CLI::Range(1, 4096))->capture_default_str();
  app->add_flag("--dense", f.dense, "no compression: every gradient entry every step (the baseline)");
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
  DemoOptions dm;
  auto* demo = app.add_subcommand(
      "demo", "The federation on this machine: nats-server (JetStream), swarmlens-broker and N camera-node "
              "pipelines on Fashion-MNIST shards; live progress, then a report folder");
  demo->add_option("--nodes", dm.nodes, "camera nodes, each its own process and pipeline")->check(CLI::Range(1, 64))->capture_default_str();
  demo->add_option("--duration", dm.duration, "seconds per run")->check(CLI::Range(3.0, 86400.0))->capture_default_str();
  demo->add_option("--report", dm.report, "report folder (accuracy.csv/png, overlay.png, summary)")->capture_default_str();
  demo->add_option("--nats", dm.nats, "use this NATS server (with JetStream) instead of starting one");
  demo->add_option("--data", dm.data, "Fashion-MNIST folder (default: the Debian package's)");
  demo->add_option("--fps", dm.fps, "frames per second each node plays")->check(CLI::Range(1, 10000))->capture_default_str();
  demo->add_flag("--baseline", dm.baseline, "then run dense (no compression) for as long, and compare");
  demo->add_flag("--view", dm.view, "show node 0's overlay in a window (needs a display)");
  demo->add_flag("--quiet", dm.quiet, "no live progress lines");
  add_federation_options(demo, dm.fed);

  NodeOptions nd;
  auto* node = app.add_subcommand("node", "One camera node: plays its Fashion-MNIST shard as live video into "
                                          "swarmtrain, federated over NATS (what the demo starts N of)");
  node->add_option("--nats", nd.nats, "NATS server URL(s)")->capture_default_str();
  node->add_option("--data", nd.data, "Fashion-MNIST folder");
  node->add_option("--node-id", nd.node_id, "this node's id and shard index")->capture_default_str();
  node->add_option("--nodes", nd.nodes, "number of shards")->check(CLI::Range(1, 100000))->capture_default_str();
  node->add_option("--fps", nd.fps, "frames per second played")->check(CLI::Range(1, 10000))->capture_default_str();
  node->add_option("--duration", nd.duration, "seconds (0 = until Ctrl-C / SIGTERM)")->capture_default_str();
  node->add_option("--overlay-png", nd.overlay_png, "also classify and draw the overlay; a PNG of it here each second");
  node->add_flag("--view", nd.view, "also show the overlay in a window");
  add_federation_options(node, nd.fed);

  auto* bench = app.add_subcommand("bench", "Benchmarks");
  bench->require_subcommand(1);
  auto* comp = bench->add_subcommand(
      "compression", "Simulated nodes on Fashion-MNIST: dense SGD vs DGC top-k vs two-step vs FedAvg");
  std::string criterion = criterion_name(bo.criterion), values = value_coding_name(bo.values);
  comp->add_option("--preset", bo.preset, "quick (CI, a few minutes) or full (where targets are judged)")
      ->check(CLI::IsMember({"quick", "full"}))->capture_default_str();
  comp->add_option("--model", bo.model, "model registry name; crnn (recurrent) trains on moving Fashion-MNIST, class = direction")
      ->check(CLI::IsMember({"cnn", "mobilenet", "crnn"}))->capture_default_str();
  comp->add_option("--window", bo.window, "crnn: frames per sample")->check(CLI::Range(1, 64))->capture_default_str();
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
  elements->add_option("--idle-frames", eo.idle_frames, "classify frames per idle-policy case")->check(CLI::Range(100, 1000000))->capture_default_str();
  elements->add_option("--batch", eo.batch, "batch size")->check(CLI::Range(1, 4096))->capture_default_str();
  elements->add_option("--json", eo.json_path, "write results as JSON to this file");

  BrokerBenchOptions bb;
  auto* bbroker = bench->add_subcommand(
      "broker", "Sparse updates merged per second, bare and served over NATS by many publishers; update-to-model latency");
  bbroker->add_option("--publishers", bb.publishers, "concurrent publishers, each its own connection")->check(CLI::Range(1, 1024))->capture_default_str();
  bbroker->add_option("--updates", bb.updates, "updates per publisher")->check(CLI::Range(1, 10000000))->capture_default_str();
  bbroker->add_option("--density", bb.density, "share of the model's entries in each update")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  bbroker->add_option("--buffer-size", bb.buffer_size, "FedBuff K: updates per model version")->check(CLI::Range(1, 100000))->capture_default_str();
  bbroker->add_option("--window", bb.window, "updates in flight at most")->check(CLI::Range(1, 10000000))->capture_default_str();
  bbroker->add_option("--publish-interval-ms", bb.publish_interval_ms, "the broker's model publish timer")->check(CLI::Range(1, 60000))->capture_default_str();
  bbroker->add_option("--latency-samples", bb.latency_samples, "updates timed for latency")->check(CLI::Range(1, 100000))->capture_default_str();
  bbroker->add_option("--json", bb.json_path, "write results as JSON to this file");

  GatewayBenchOptions gw;
  NodeBenchOptions nbo;
  auto* bnode = bench->add_subcommand("node", "A camera node on a Pi-class budget: each case a process pinned to one "
                                              "core; peak RSS, live frames/s and gaps, with and without training");
  bnode->add_option("--seconds", nbo.seconds, "seconds per case")->check(CLI::Range(3.0, 3600.0))->capture_default_str();
  bnode->add_option("--cpu", nbo.cpu, "the core to pin to")->check(CLI::Range(0, 1023))->capture_default_str();
  bnode->add_option("--json", nbo.json_path, "write results as JSON to this file");
  bnode->add_option("--child", nbo.child, "internal: run one case here")->group("");
  FieldNodeOptions fno;
  auto* fnode = bench->add_subcommand("field-node", "One node of the field testbed (bench/field/run): trains its shard "
                                      "as fast as its core allows with one method, over NATS");
  fnode->add_option("--nats", fno.nats, "NATS server URL")->capture_default_str();
  fnode->add_option("--credentials", fno.credentials, "NATS credentials file")->check(CLI::ExistingFile);
  fnode->add_option("--model-id", fno.model_id, "model id")->capture_default_str();
  fnode->add_option("--method", fno.method, "dense, fedavg, topk (synchronous, no trigger) or twostep")
      ->check(CLI::IsMember({"dense", "fedavg", "topk", "twostep"}))->capture_default_str();
  fnode->add_option("--data", fno.data, "Fashion-MNIST folder");
  fnode->add_option("--node-id", fno.node_id, "this node's id and shard")->capture_default_str();
  fnode->add_option("--nodes", fno.nodes, "shards")->check(CLI::Range(1, 100000))->capture_default_str();
  fnode->add_option("--batch", fno.batch, "batch per step")->check(CLI::Range(1, 4096))->capture_default_str();
  fnode->add_option("--lr", fno.lr, "learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  fnode->add_option("--local-lr", fno.local_lr, "twostep: rate of the node's own steps (0 = --lr; the broker applies lr / nodes)")->check(CLI::NonNegativeNumber)->capture_default_str();
  fnode->add_option("--momentum", fno.momentum, "momentum")->check(CLI::Range(0.0, 0.999))->capture_default_str();
  fnode->add_option("--density", fno.density, "topk, twostep: share of entries sent")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  fnode->add_option("--warmup-steps", fno.warmup_steps, "steps per sparsity warm-up stage")->capture_default_str();
  fnode->add_option("--trigger-age", fno.trigger_age, "twostep: release after this many steps")->check(CLI::Range(1, 1000000))->capture_default_str();
  fnode->add_option("--fedavg-steps", fno.fedavg_steps, "fedavg: local steps per round")->check(CLI::Range(1, 100000))->capture_default_str();
  fnode->add_option("--seed", fno.seed, "seed (as the broker's)")->capture_default_str();
  fnode->add_option("--duration", fno.duration, "seconds (0 = until SIGTERM)")->capture_default_str();
  fnode->add_option("--checkpoint", fno.checkpoint, "twostep: resume from and write this checkpoint");
  FieldWatchOptions fwo;
  auto* fwatch = bench->add_subcommand("field-watch", "The field testbed's recorder: accuracy over wall time, every "
                                       "node's counters, the final model's accuracy on the whole test set, as JSON");
  fwatch->add_option("--nats", fwo.nats, "NATS server URL")->capture_default_str();
  fwatch->add_option("--credentials", fwo.credentials, "NATS credentials file")->check(CLI::ExistingFile);
  fwatch->add_option("--model-id", fwo.model_id, "model id")->capture_default_str();
  fwatch->add_option("--data", fwo.data, "Fashion-MNIST folder");
  fwatch->add_option("--duration", fwo.duration, "seconds to record")->check(CLI::Range(1.0, 86400.0))->capture_default_str();
  fwatch->add_option("--target", fwo.target, "accuracy whose first crossing is timed")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  fwatch->add_option("--sample-interval", fwo.sample_interval, "seconds between samples of the kept model")->check(CLI::Range(0.1, 3600.0))->capture_default_str();
  fwatch->add_option("--curve-images", fwo.curve_images, "test images per curve point")->check(CLI::Range(100, 10000))->capture_default_str();
  fwatch->add_option("--json", fwo.json_path, "write the record here")->required();
  fwatch->add_option("--label", fwo.label, "free text kept in the record");
  auto* bgateway = bench->add_subcommand(
      "gateway", "A site gateway (swarmaggregate mode=forward) against every update sent on its own: uplink messages, bytes, accuracy");
  bgateway->add_option("--nodes", gw.nodes, "trainers behind the gateway")->check(CLI::Range(1, 64))->capture_default_str();
  bgateway->add_option("--frames", gw.frames, "frames per trainer, every one trained")->check(CLI::Range(64, 1000000))->capture_default_str();
  bgateway->add_option("--intervals", gw.intervals, "gateway intervals to compare, ms")->check(CLI::Range(1, 3600000))->capture_default_str();
  bgateway->add_option("--density", gw.density, "trainers' density")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  bgateway->add_option("--json", gw.json_path, "write results as JSON to this file");

  swarmlens::ExportOptions xo;
  auto* exp = app.add_subcommand("export", "Write the shared model (a snapshot file, or live from NATS) as ONNX");
  exp->add_option("--format", xo.format, "file format")->check(CLI::IsMember({"onnx"}))->capture_default_str();
  exp->add_option("-o,--output", xo.output, "the file to write")->required();
  exp->add_option("--snapshot", xo.snapshot, "a snapshot file (a node's checkpoint, the broker's --snapshot)");
  exp->add_option("--nats-url", xo.nats_url, "take the latest model kept in JetStream on this server");
  exp->add_option("--model-id", xo.model_id, "model id (NATS subjects swarmlens.<id>.*)")->capture_default_str();
  exp->add_option("--credentials,--creds", xo.credentials_file, "NATS credentials file: a .creds file, one line user:password, or a token")
      ->check(CLI::ExistingFile);
  exp->add_option("--model", xo.model, "registry name (default: the snapshot's)")->check(CLI::IsMember({"cnn", "mobilenet"}));
  exp->add_option("--input-width", xo.input_width, "model input width (default: cnn 28, others 96)")->check(CLI::Range(8, 1024));
  exp->add_option("--input-height", xo.input_height, "model input height (default: cnn 28, others 96)")->check(CLI::Range(8, 1024));
  exp->add_option("--classes", xo.classes, "number of classes")->check(CLI::Range(2, 100000))->capture_default_str();
  exp->add_option("--class-names", xo.classes_file, "file with one class name per line (default: Fashion-MNIST's)");

  CameraOptions cam;
  bool cam_print = false;
  auto* camera = app.add_subcommand("camera", "A camera node as a service: a GStreamer camera source, then swarmtrain, "
                                              "swarmclassify, swarmoverlay and an output; options from --config "
                                              "(INI, section [camera]; docs/deploy.md)");
  camera->add_option("--source", cam.source, "the camera as a gst-launch description up to raw video, e.g. "
                                             "\"libcamerasrc ! video/x-raw,width=640,height=480\"")->required();
  camera->add_option("--nats", cam.nats, "NATS server URL(s) of the broker (empty: train alone)");
  camera->add_option("--nats-credentials", cam.nats_credentials, "NATS credentials file (user:password, a token, or .creds)");
  camera->add_option("--nats-tls-ca", cam.nats_tls_ca, "CA bundle to verify the NATS server (turns TLS on)");
  camera->add_option("--model", cam.model, "cnn (grey 28x28) or mobilenet (RGB)")->check(CLI::IsMember({"cnn", "mobilenet"}))->capture_default_str();
  camera->add_option("--input-width", cam.input_width, "mobilenet input width")->check(CLI::Range(8, 1024));
  camera->add_option("--input-height", cam.input_height, "mobilenet input height")->check(CLI::Range(8, 1024));
  camera->add_option("--model-id", cam.model_id, "model id (NATS subjects swarmlens.<id>.*)")->capture_default_str();
  camera->add_option("--node-id", cam.node_id, "this node's id in the federation (-1: random)")->capture_default_str();
  camera->add_option("--label", cam.label, "teach mode: train every frame as this class (-1: labelled frames only)")->check(CLI::Range(-1, 9))->capture_default_str();
  camera->add_option("--device", cam.device, "cpu, cuda or cuda:N (a CUDA LibTorch, as on a Jetson)")->capture_default_str();
  camera->add_option("--idle-policy", cam.idle_policy, "always, load, schedule or load+schedule")->capture_default_str();
  camera->add_option("--load-ceiling", cam.load_ceiling, "idle-policy load: pause above this share of busy CPU")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  camera->add_option("--schedule", cam.schedule, "idle-policy schedule: HH:MM-HH:MM[,...] local time");
  camera->add_option("--checkpoint", cam.checkpoint, "weights file: resumed from at start, written at stop");
  camera->add_option("--density", cam.density, "share of gradient entries sent")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  camera->add_option("--trigger-age", cam.trigger_age, "send the pending update after this many steps")->check(CLI::Range(1, 1000000))->capture_default_str();
  camera->add_option("--lr", cam.lr, "learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  camera->add_option("--output", cam.output, "none, display, or udp://HOST:PORT (H.264 over RTP to a viewer)")->capture_default_str();
  camera->add_option("--encoder", cam.encoder, "H.264 encoder for udp:// (e.g. nvv4l2h264enc on a Jetson, v4l2h264enc on a Pi 4)")->capture_default_str();
  camera->add_option("--duration", cam.duration, "seconds (0: until SIGTERM / Ctrl-C)")->capture_default_str();
  camera->add_flag("--train,!--no-train", cam.train, "train on this camera (--no-train: classify with the shared model only)");
  camera->add_flag("--print-pipeline", cam_print, "print the pipeline description and exit");
  // A config file gives any option, by its long name without dashes, under [camera].
  app.set_config("--config", "", "INI file of options, one section per subcommand (e.g. [camera])");

  CLI11_PARSE(app, argc, argv);
  // Run from the build tree, find the plugin built beside this binary unless told otherwise.
  if (!std::getenv("GST_PLUGIN_PATH")) setenv("GST_PLUGIN_PATH", SWARMLENS_BUILD_PLUGIN_DIR, 0);

  try {
    if (demo->parsed()) {
      if (dm.view && !std::getenv("DISPLAY") && !std::getenv("WAYLAND_DISPLAY")) {
        fmt::print(stderr, "swarmlens demo: --view needs a display (DISPLAY or WAYLAND_DISPLAY); running without the window\n");
        dm.view = false;
      }
      return run_demo(dm);
    }
    if (node->parsed()) {
      if (nd.node_id >= nd.nodes) throw std::invalid_argument("--node-id must be below --nodes");
      return run_node(nd);
    }
    if (comp->parsed()) {
      bo.criterion = *parse_criterion(criterion);
      bo.values = *parse_value_coding(values);
      return run_compression_bench(bo);
    }
    if (elements->parsed()) return run_elements_bench(eo);
    if (bbroker->parsed()) return run_broker_bench(bb);
    if (bgateway->parsed()) return run_gateway_bench(gw);
    if (bnode->parsed()) return run_node_bench(nbo);
    if (fnode->parsed()) return run_field_node(fno);
    if (fwatch->parsed()) return run_field_watch(fwo);
    if (exp->parsed()) return run_export(xo);
    if (camera->parsed()) return run_camera(cam, cam_print);
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
