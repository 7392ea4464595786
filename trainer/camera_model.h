// The model a camera node runs, from the elements' model properties.
#pragma once

#include <string>

#include "model.h"

namespace swarmlens {

// The model a camera node trains from its model name, input size and window (the elements'
// properties; swarmlens export reads snapshots the same way): cnn and crnn read grey frames, every
// other model RGB; 10 classes (Fashion-MNIST), but crnn 4 (the directions of moving
// Fashion-MNIST: left, right, up, down), unless `classes` (> 0) says otherwise. window counts only for
// temporal models.
ModelSpec camera_model_spec(const std::string& name, int width, int height, int window = 1, int classes = 0);

}  // namespace swarmlens
