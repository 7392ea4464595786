#include "camera.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <memory>
#include <stdexcept>

#include "camera_metrics.h"
#include "command.h"
#include "http_server.h"
#include "launch.h"
#include "launch_desc.h"
#include "nats_cli.h"
#include "prom_text.h"
#include "properties.h"
#include "overlay_snapshots.h"
#include "snapshot_sender.h"

namespace swarmlens {

namespace {

std::string output_tail(const CameraOptions& o) {
  if (o.output == "none") return "fakesink name=sink sync=false";
  if (o.output == "display") return "videoconvert ! autovideosink sync=false";
  const std::string scheme = "udp://";
  if (o.output.rfind(scheme, 0) == 0) {
    const std::string hostport = o.output.substr(scheme.size());
    const auto colon = hostport.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == hostport.size() ||
        hostport.find_first_not_of("0123456789", colon + 1) != std::string::npos)
      throw std::invalid_argument("output " + o.output + ": want udp://HOST:PORT");
    return fmt::format("videoconvert ! video/x-raw,format=I420 ! {} ! h264parse ! rtph264pay config-interval=1 pt=96 ! "
                       "udpsink host={} port={} sync=false",
                       o.encoder, hostport.substr(0, colon), hostport.substr(colon + 1));
  }
  throw std::invalid_argument("output " + o.output + ": want none, display or udp://HOST:PORT");
}

}  // namespace

std::string camera_pipeline(const CameraOptions& o) {
  if (o.source.find_first_not_of(" \t\n") == std::string::npos)
    throw std::invalid_argument("no camera source (e.g. source = libcamerasrc ! video/x-raw,width=640,height=480)");
  // The model and the NATS link, as swarmtrain and swarmclassify both take them.
  const auto model_and_nats = [&o](LaunchElement e) {
    e.set_word(props::kModel, o.model).set(props::kModelId, o.model_id).set_word(props::kDevice, o.device);
    if (o.input_width > 0) e.set(props::kInputWidth, o.input_width);
    if (o.input_height > 0) e.set(props::kInputHeight, o.input_height);
    if (o.classes > 0) e.set(props::kClasses, o.classes);
    if (!o.nats.empty())
      e.set(props::kNatsUrl, o.nats).set_if(props::kNatsCredentials, o.nats_credentials).set_if(props::kNatsTlsCa, o.nats_tls_ca)
        .set_if(props::kModelKey, o.model_key);
    return e;
  };
  LaunchElement train = model_and_nats(LaunchElement("swarmtrain name=train"));
  train.set(props::kLabel, o.label)
      .set_word(props::kIdlePolicy, o.idle_policy)
      .set(props::kLoadCeiling, o.load_ceiling)
      .set(props::kDensity, o.density)
      .set_word(props::kValueCoding, o.value_coding)
      .set(props::kTriggerAge, o.trigger_age)
      .set(props::kLearningRate, o.lr)
      .set(props::kBatchSize, o.batch_size)
      .set(props::kHoldoutEvery, o.holdout_every)
      .set(props::kStatsInterval, o.stats_interval_ms)
      .set_if(props::kSchedule, o.schedule)
      .set_if(props::kCheckpoint, o.checkpoint);
  if (o.node_id >= 0) train.set(props::kNodeId, o.node_id);
  // The classifier takes the shared model from NATS when there is one, else this trainer's.
  std::string tail = output_tail(o);
  if (o.snapshot_interval > 0) {
    if (o.nats.empty()) throw std::invalid_argument("--snapshot-interval sends the overlay to the broker: it needs --nats");
    tail = "tee name=snap ! queue ! " + tail + " snap. ! " + SnapshotSender::branch();
  }
  return fmt::format("{} ! videoconvert ! video/x-raw,format=BGRx ! {}{} ! {} ! {}", o.source,
                     o.train ? train.str() + " ! " : "", model_and_nats(LaunchElement("swarmclassify")).str(),
                     LaunchElement("swarmoverlay").set(props::kModelId, o.model_id).str(), tail);
}

int run_camera(const CameraOptions& o, bool print_only) {
  std::string desc;
  try {
    desc = camera_pipeline(o);
  } catch (const std::invalid_argument& e) {
    fmt::print(stderr, "swarmlens camera: {}\n", e.what());
    return 2;
  }
  if (print_only) {
    fmt::print("{}\n", desc);
    return 0;
  }
  fmt::print(stderr, "swarmlens camera: {}\n", desc);
  CameraMetrics metrics(o.model_id);
  std::unique_ptr<HttpServer> http;
  std::unique_ptr<SnapshotSender> snapshots;
  try {
    if (!o.metrics_listen.empty()) {
      http = std::make_unique<HttpServer>(ListenAddress::parse(o.metrics_listen, "--metrics-listen"));
      http->route("/metrics", [&metrics](const std::string&) { return HttpResponse{200, kPromContentType, metrics.text()}; });
      fmt::print(stderr, "swarmlens camera: Prometheus metrics on {}metrics (as fresh as the last stats line)\n", http->url());
    }
    if (o.snapshot_interval > 0) {
      NatsOptions nats;
      nats.urls = CLI::detail::split(o.nats, ',');
      nats.credentials_file = o.nats_credentials;
      nats.tls_ca = o.nats_tls_ca;
      nats.name = "swarmlens-camera-snapshots";
      snapshots = std::make_unique<SnapshotSender>(nats, o.model_id, o.snapshot_interval);
      if (o.node_id >= 0) snapshots->set_node(uint32_t(o.node_id));
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "swarmlens camera: {}\n", e.what());
    return 2;
  }
  LaunchHooks hooks;
  hooks.on_train_stats = [&](const StatsFields& f) {
    metrics.take(f);
    if (snapshots && f.numbers.count("node-id")) snapshots->set_node(uint32_t(f.numbers.at("node-id")));
  };
  if (snapshots) hooks.on_pipeline = [&](void* pipeline) { snapshots->attach(pipeline); };
  const int rc = run_launch(desc, "swarmlens camera", o.duration, hooks);
  if (snapshots)
    fmt::print(stderr, "swarmlens camera: {} overlay snapshots sent{}\n", snapshots->sent(),
               snapshots->skipped_large() ? fmt::format(", {} not sent (larger than {} bytes)", snapshots->skipped_large(),
                                                        OverlaySnapshots::kMaxBytes)
                                          : "");
  return rc;
}

void add_camera_command(CLI::App& parent, Commands& commands) {
  struct Options : CameraOptions {
    bool print_only = false;
  };
  auto o = std::make_shared<Options>();
  auto* c = parent.add_subcommand("camera", "A camera node as a service: a GStreamer camera source, then swarmtrain, "
                                              "swarmclassify, swarmoverlay and an output; options from --config "
                                              "(INI, section [camera]; docs/deploy.md)");
  c->add_option("--source", o->source, "the camera as a gst-launch description up to raw video, e.g. "
                                             "\"libcamerasrc ! video/x-raw,width=640,height=480\"")->required();
  add_nats_options(*c, {&o->nats, &o->nats_credentials, &o->nats_tls_ca, /*check_credentials=*/false, &o->model_key},
                   "NATS server URL(s) of the broker (empty: train alone)");
  c->add_option("--model", o->model, "cnn (grey 28x28) or mobilenet (RGB)")->check(CLI::IsMember({"cnn", "mobilenet"}))->capture_default_str();
  c->add_option("--input-width", o->input_width, "mobilenet input width")->check(CLI::Range(8, 1024));
  c->add_option("--input-height", o->input_height, "mobilenet input height")->check(CLI::Range(8, 1024));
  c->add_option("--model-id", o->model_id, "model id (NATS subjects swarmlens.<id>.*)")->capture_default_str();
  c->add_option("--node-id", o->node_id, "this node's id in the federation (-1: random)")->capture_default_str();
  c->add_option("--classes", o->classes, "classes the model tells apart (0: the model's own, 10; crnn 4)")->check(CLI::Range(0, 1000))->capture_default_str();
  c->add_option("--label", o->label, "teach mode: train every frame as this class, 0 .. classes-1 (-1: labelled frames only)")->check(CLI::Range(-1, 999))->capture_default_str();
  c->add_option("--device", o->device, "cpu, cuda or cuda:N (a CUDA LibTorch, as on a Jetson)")->capture_default_str();
  c->add_option("--idle-policy", o->idle_policy, "always, load, schedule or load+schedule")->capture_default_str();
  c->add_option("--load-ceiling", o->load_ceiling, "idle-policy load: pause above this share of busy CPU")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  c->add_option("--schedule", o->schedule, "idle-policy schedule: HH:MM-HH:MM[,...] local time");
  c->add_option("--checkpoint", o->checkpoint, "weights file: resumed from at start, written at stop");
  c->add_option("--density", o->density, "share of gradient entries sent")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  c->add_option("--value-coding", o->value_coding, "the update's values on the wire: sign (a bit a value and a magnitude per "
                "block of 64), int8, fp16 or fp32")->check(CLI::IsMember({"sign", "int8", "fp16", "fp32"}))->capture_default_str();
  c->add_option("--trigger-age", o->trigger_age, "send the pending update after this many steps")->check(CLI::Range(1, 1000000))->capture_default_str();
  c->add_option("--learning-rate,--lr", o->lr, "learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  c->add_option("--batch-size,--batch", o->batch_size, "frames per training step")->check(CLI::Range(1, 4096))->capture_default_str();
  c->add_option("--holdout-every", o->holdout_every, "hold out every Nth labelled frame: not trained on, classified to "
                "measure this camera's accuracy (its stats line; the broker without test data) (0 = off; 1 is an error)")
      ->capture_default_str();
  c->add_option("--output", o->output, "none, display, or udp://HOST:PORT (H.264 over RTP to a viewer)")->capture_default_str();
  c->add_option("--encoder", o->encoder, "H.264 encoder for udp:// (e.g. nvv4l2h264enc on a Jetson, v4l2h264enc on a Pi 4)")->capture_default_str();
  c->add_option("--duration", o->duration, "seconds (0: until SIGTERM / Ctrl-C)")->capture_default_str();
  c->add_option("--stats-interval-ms", o->stats_interval_ms, "a stats line (frames, steps, updates sent and refused, "
                "bytes up and down, model version, connection) this often (0 = none)")->check(CLI::Range(0, 3600000))->capture_default_str();
  c->add_option("--metrics-listen", o->metrics_listen, "serve Prometheus metrics at http://HOST:PORT/metrics, updated "
                 "with each stats line (empty: off; 127.0.0.1:9465 keeps them on this camera)")
      ->check([](const std::string& v) { return listen_address_error(v, "--metrics-listen"); });
  c->add_option("--snapshot-interval", o->snapshot_interval, "send the overlay as a small JPEG (320 pixels wide, at most "
                 "64 KiB) to the broker's dashboard every this many seconds (0: off, else at least 1; needs --nats)")
      ->check(SnapshotSender::interval_error)->capture_default_str();
  c->add_flag("--train,!--no-train", o->train, "train on this camera (--no-train: classify with the shared model only)");
  c->add_flag("--print-pipeline", o->print_only, "print the pipeline description and exit");
  commands.add(c, [o] { return run_camera(*o, o->print_only); });
}

}  // namespace swarmlens
