// Inference with a hot-swappable model: takes weights from a snapshot file or live from the
// ModelHub, swaps in a newer version between frames (a parameter copy), and keeps the old weights
// when a new model does not fit the layout.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "model.h"
#include "snapshot.h"

namespace swarmlens {

struct Classification {
  int label = -1;
  float confidence = 0.0f;
};

class Classifier {
 public:
  // Throws std::invalid_argument for a bad spec or an unusable device (Model::create).
  Classifier(const ModelSpec& spec, uint64_t seed, const std::string& device = "cpu");

  // Throws std::runtime_error (file problems, another layout); the current weights stay.
  void load_file(const std::string& path);
  // Swaps in `s` if it is newer than what is loaded. Returns true if it swapped; false (and sets
  // *why) if it is for another layout. Thread: the caller's; not thread-safe against classify().
  bool update(const Snapshot& s, std::string* why = nullptr);

  Classification classify(const float* chw);  // [C, H, W] normalised
  uint64_t version() const { return version_; }
  bool loaded() const { return loaded_; }
  const ModelSpec& spec() const { return model_->spec(); }

 private:
  std::unique_ptr<Model> model_;
  uint64_t version_ = 0;
  bool loaded_ = false;
  std::vector<float> probs_;
};

}  // namespace swarmlens
