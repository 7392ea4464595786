// The model a camera node runs, from the elements' model properties.
#pragma once

#include <string>

#include "model.h"
#include "snapshot.h"

namespace swarmlens {

// The model a camera node trains from its model name, input size and window (the elements'
// properties; swarmlens export reads snapshots the same way): cnn and crnn read grey frames, every
// other model RGB; 10 classes (Fashion-MNIST), but crnn 4 (the directions of moving
// Fashion-MNIST: left, right, up, down), unless `classes` (> 0) says otherwise. window counts only for
// temporal models.
ModelSpec camera_model_spec(const std::string& name, int width, int height, int window = 1, int classes = 0);

// A snapshot's description of a model of this spec, with the classes' names (none, or one per class).
ModelDescription describe_model(const ModelSpec& spec, const std::vector<std::string>& class_names = {});
// The spec a snapshot describes (registry name, input, classes, window; names in its description); throws
// std::runtime_error for a snapshot without a description (format 1).
ModelSpec described_spec(const Snapshot& s);
// A model as people name it: "mobilenet 3x96x96, 5 classes (cat, dog, ...)"; without a
// description: "cnn (undescribed)".
std::string describe(const std::string& name, const ModelDescription& d);
// "" when `served` has this side's layout, else a sentence naming both sides, `mine` as describe()
// says it: "the model served is mobilenet 3x96x96, 5 classes; this side runs cnn 1x28x28, 10 classes".
// A window and class names are not part of the layout (a recurrent model's weights fit any window).
std::string model_mismatch(const Snapshot& served, uint64_t my_layout_hash, const std::string& mine);

}  // namespace swarmlens
