// Accuracy of a model on a labelled data set (torch-free: goes through Model::predict).
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataset.h"
#include "model.h"

namespace swarmlens {

// Share of samples whose argmax equals the label, in [0, 1]. `limit` = 0 evaluates everything.
double evaluate_accuracy(Model& model, const Dataset& data, size_t limit = 0, size_t batch = 500);

// The same for a temporal model on moving Fashion-MNIST made from `data` (motion.h): one clip per
// item, seeded with `seed`, the model's window of frames, labelled with the direction.
double evaluate_motion_accuracy(Model& model, const Dataset& data, uint64_t seed, size_t limit = 0,
                                size_t batch = 250);

}  // namespace swarmlens
