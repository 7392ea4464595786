#include "model_hub.h"

namespace swarmlens {

ModelHub& ModelHub::instance() {
  static ModelHub hub;
  return hub;
}

void ModelHub::publish(const std::string& id, std::shared_ptr<const Snapshot> model) {
  std::lock_guard<std::mutex> lock(mutex_);
  models_[id] = std::move(model);
}

std::shared_ptr<const Snapshot> ModelHub::latest(const std::string& id) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = models_.find(id);
  return it == models_.end() ? nullptr : it->second;
}

void ModelHub::publish_stats(const std::string& id, const TrainStats& s) {
  std::lock_guard<std::mutex> lock(mutex_);
  stats_[id] = s;
}

bool ModelHub::stats(const std::string& id, TrainStats& out) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = stats_.find(id);
  if (it == stats_.end()) return false;
  out = it->second;
  return true;
}

}  // namespace swarmlens
