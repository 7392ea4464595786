#include "classifier.h"

#include <algorithm>
#include <stdexcept>

namespace swarmlens {

Classifier::Classifier(const ModelSpec& spec, uint64_t seed, const std::string& device)
    : model_(Model::create(spec, seed, device)), probs_(size_t(spec.classes)) {}

void Classifier::load_file(const std::string& path) {
  std::string why;
  if (!update(load_snapshot(path), &why)) throw std::runtime_error(path + ": " + why);
}

bool Classifier::update(const Snapshot& s, std::string* why) {
  if (s.layout_hash != model_->layout_hash() || s.params.size() != model_->num_params()) {
    if (why) *why = "model '" + s.model + "' has another parameter layout than this classifier's";
    return false;
  }
  if (loaded_ && s.version <= version_) return false;
  model_->set_params(s.params.data());
  version_ = s.version;
  loaded_ = true;
  return true;
}

Classification Classifier::classify(const float* chw) {
  int64_t label = -1;
  model_->predict(chw, 1, &label, probs_.data());
  return {int(label), probs_[size_t(std::clamp<int64_t>(label, 0, int64_t(probs_.size()) - 1))]};
}

}  // namespace swarmlens
