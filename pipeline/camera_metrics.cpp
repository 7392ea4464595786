#include "camera_metrics.h"

#include "prom_text.h"

namespace swarmlens {

void CameraMetrics::take(const StatsFields& f) {
  const auto now = Clock::now();
  const auto frames = [](const StatsFields& s) {
    const auto n = [&s](const char* k) { return s.numbers.count(k) ? s.numbers.at(k) : 0.0; };
    return n("samples") + n("dropped");
  };
  std::lock_guard<std::mutex> g(lock_);
  if (have_) {
    const double dt = std::chrono::duration<double>(now - at_).count();
    if (dt > 0) fps_ = std::max(0.0, frames(f) - frames(last_)) / dt;
  }
  last_ = f;
  at_ = now;
  have_ = true;
}

std::string CameraMetrics::text() const {
  PromText p;
  std::lock_guard<std::mutex> g(lock_);
  if (have_) {
    const auto n = [this](const char* k) { return last_.numbers.count(k) ? last_.numbers.at(k) : 0.0; };
    const auto has = [this](const char* k) { return last_.numbers.count(k) > 0; };
    PromLabels l{{"model_id", model_id_}, {"node", std::to_string(uint64_t(n("node-id")))}};
    p.counter("swarmlens_camera_frames_total", "Frames that reached the trainer (trained on, held out or dropped).",
              n("samples") + n("dropped"), l);
    p.counter("swarmlens_camera_frames_dropped_total", "Frames the trainer dropped (busy or paused).", n("dropped"), l);
    p.gauge("swarmlens_camera_frames_per_second", "Frames per second between the last two stats messages.", fps_, l);
    p.counter("swarmlens_camera_training_steps_total", "Training steps.", n("steps"), l);
    p.counter("swarmlens_camera_skipped_batches_total", "Batches skipped for non-finite gradients.", n("skipped-batches"), l);
    p.counter("swarmlens_camera_pauses_total", "Times training paused (idle policy).", n("pauses"), l);
    p.counter("swarmlens_camera_unknown_labels_total", "Frames with a label the model does not have.", n("unknown-labels"), l);
    p.counter("swarmlens_camera_updates_sent_total", "Updates encoded and sent.", n("messages"), l);
    p.gauge("swarmlens_camera_model_version", "Version of the shared model this camera runs.", n("model-version"), l);
    p.gauge("swarmlens_camera_train_loss", "Training loss of the last steps.", n("loss"), l);
    p.gauge("swarmlens_camera_diverged", "1 when training has stopped on non-finite gradients.", n("diverged"), l);
    PromLabels st = l;
    st.push_back({"state", last_.strings.count("state") ? last_.strings.at("state") : "unknown"});
    p.gauge("swarmlens_camera_training_state", "1 for the trainer's state (training, paused-load, outside-schedule).", 1, st);
    if (n("holdout-accuracy") >= 0 && has("holdout-accuracy"))
      p.gauge("swarmlens_camera_holdout_accuracy_ratio", "Accuracy on the frames this camera holds out.",
              n("holdout-accuracy"), l);
    if (has("connected")) {  // federated: the link's figures
      p.gauge("swarmlens_camera_connected", "1 while connected to NATS.", n("connected"), l);
      p.counter("swarmlens_camera_uplink_bytes_total", "Bytes of updates sent.", n("bytes-sent"), l);
      p.counter("swarmlens_camera_downlink_bytes_total", "Bytes of models received.", n("bytes-received"), l);
      p.counter("swarmlens_camera_models_received_total", "Models received.", n("models-received"), l);
      p.counter("swarmlens_camera_models_refused_total", "Models refused (bad signature, failed checks).",
                n("models-refused") + n("models-refused-by-link"), l);
      p.counter("swarmlens_camera_updates_delivered_total", "Updates the broker accepted.", n("updates-delivered"), l);
      p.counter("swarmlens_camera_updates_refused_total", "Updates the broker refused.", n("updates-refused"), l);
      p.counter("swarmlens_camera_updates_resent_total", "Updates sent again (no answer in time).", n("updates-resent"), l);
    }
  }
  p.process();
  return p.str();
}

}  // namespace swarmlens
