// `swarmlens camera`: a camera node as a service. The camera is any GStreamer source description
// (libcamerasrc, v4l2src, nvarguscamerasrc ! nvvidconv, rtspsrc ! ... ! decoder); swarmlens
// appends the Swarmlens elements and an output (none, a display, or H.264 over RTP/UDP to a
// viewer), and runs it until SIGTERM, which sends EOS so the trainer's pending update and its
// checkpoint are written. Every option can come from a config file (--config, INI; docs/deploy.md).
#pragma once

#include <cstdint>
#include <string>

#include "demo.h"
#include "node_trainer.h"

namespace CLI {
class App;
}

namespace swarmlens {

class Commands;

struct CameraOptions {
  std::string source;                  // gst-launch description of the camera up to raw video
  std::string nats;                    // NATS URL(s); "" = train alone, nothing sent
  std::string nats_credentials;        // credentials file (user:password, token or .creds)
  std::string nats_tls_ca;             // CA bundle: TLS to the server
  std::string model_key;               // the broker's public key (models and acks verified)
  std::string model = ModelSpec::kDefaultName;  // cnn, mobilenet
  int input_width = 0, input_height = 0;  // mobilenet input (0 = the element default)
  int classes = 0;                     // 0 = the model's own (10; crnn 4)
  std::string model_id = NodeTrainerConfig::kDefaultModelId;
  int64_t node_id = -1;                // -1 = random
  int label = -1;                      // teach mode class; -1 = the frames' label metas
  std::string device = NodeTrainerConfig::kDefaultDevice;  // cpu, cuda, cuda:N
  std::string idle_policy = "load";    // always, load, schedule, load+schedule
  double load_ceiling = 0.7;
  std::string schedule;                // HH:MM-HH:MM,...
  std::string checkpoint;              // the weights: resumed from at start, written at stop
  // A camera node's compression: swarmtrain's own defaults (node_compression_defaults), so that a
  // camera started by `swarmlens camera` and one started by gst-launch behave alike.
  double density = SparsifierConfig::kDefaultDensity;
  std::string value_coding = value_coding_name(CompressorConfig::kDefaultValues);  // swarmtrain value-coding
  uint64_t trigger_age = NodeTrainerConfig::kNodeTriggerAge;
  double lr = NodeTrainerConfig::kDefaultLr;
  uint32_t batch_size = NodeTrainerConfig::kDefaultBatch;
  uint32_t holdout_every = NodeTrainerConfig::kDefaultHoldoutEvery;  // 0 = off
  std::string output = "none";         // none, display, udp://HOST:PORT
  std::string encoder = "x264enc tune=zerolatency speed-preset=ultrafast bitrate=1500 key-int-max=30";
  double duration = 0;                 // seconds (0 = until SIGTERM)
  static constexpr unsigned kDefaultStatsIntervalMs = 10000;
  unsigned stats_interval_ms = kDefaultStatsIntervalMs;  // a stats line on stderr (the journal) this often
  bool train = true;                   // false: classify with the shared model only (no swarmtrain)
  std::string metrics_listen;          // HOST:PORT of Prometheus' /metrics ("" = off)
  double snapshot_interval = 0;        // seconds between overlay snapshots for the dashboard (0 = off)
};

// The full gst-launch description; throws std::invalid_argument for an empty source or an output
// that is not none, display or udp://HOST:PORT.
std::string camera_pipeline(const CameraOptions& o);

int run_camera(const CameraOptions& o, bool print_only);

// Declares `camera` and its options under `parent`.
void add_camera_command(CLI::App& parent, Commands& commands);

}  // namespace swarmlens
