#include "camera.h"

#include <fmt/core.h>

#include <stdexcept>

#include "demo.h"

namespace swarmlens {

namespace {

// A property value for gst-launch: quoted, so paths and URLs with spaces or commas survive.
std::string quoted(const std::string& v) {
  if (v.find('"') != std::string::npos) throw std::invalid_argument("a value with a double quote: " + v);
  return "\"" + v + "\"";
}

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
  std::string nats;
  if (!o.nats.empty()) {
    nats = " nats-url=" + quoted(o.nats);
    if (!o.nats_credentials.empty()) nats += " nats-credentials=" + quoted(o.nats_credentials);
    if (!o.nats_tls_ca.empty()) nats += " nats-tls-ca=" + quoted(o.nats_tls_ca);
  }
  std::string model = "model=" + o.model;
  if (o.input_width > 0) model += fmt::format(" input-width={}", o.input_width);
  if (o.input_height > 0) model += fmt::format(" input-height={}", o.input_height);
  std::string train = fmt::format(
      "swarmtrain name=train {} model-id={} label={} device={} idle-policy={} load-ceiling={} density={} "
      "trigger-age={} learning-rate={} stats-interval=10000{}",
      model, quoted(o.model_id), o.label, o.device, o.idle_policy, o.load_ceiling, o.density, o.trigger_age, o.lr,
      nats);
  if (o.node_id >= 0) train += fmt::format(" node-id={}", o.node_id);
  if (!o.schedule.empty()) train += " schedule=" + quoted(o.schedule);
  if (!o.checkpoint.empty()) train += " checkpoint=" + quoted(o.checkpoint);
  // The classifier takes the shared model from NATS when there is one, else this trainer's.
  return fmt::format("{} ! videoconvert ! video/x-raw,format=BGRx ! {}swarmclassify {} model-id={} device={}{} ! "
                     "swarmoverlay model-id={} ! {}",
                     o.source, o.train ? train + " ! " : "", model, quoted(o.model_id), o.device, nats,
                     quoted(o.model_id), output_tail(o));
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
  return run_launch(desc, "swarmlens camera", o.duration);
}

}  // namespace swarmlens
