// `swarmlens camera --metrics-listen`: the camera node's Prometheus metrics, from swarmtrain's stats
// message (each stats-interval-ms): frames and frames/s, training state and steps, skipped batches,
// updates sent, delivered and refused, bytes up and down, the model version it runs, its held-out
// accuracy. The figures are as fresh as the last stats message.
#pragma once

#include <chrono>
#include <mutex>
#include <string>

#include "launch.h"

namespace swarmlens {

class CameraMetrics {
 public:
  explicit CameraMetrics(std::string model_id) : model_id_(std::move(model_id)) {}
  void take(const StatsFields& f);  // the loop's thread
  std::string text() const;         // the exposition text; any thread

 private:
  using Clock = std::chrono::steady_clock;
  const std::string model_id_;
  mutable std::mutex lock_;
  StatsFields last_;
  bool have_ = false;
  double fps_ = 0;
  Clock::time_point at_;
};

}  // namespace swarmlens
