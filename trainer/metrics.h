// Accuracy of a model on a labelled data set (torch-free: goes through Model::predict).
#pragma once

#include <cstddef>
#include <cstdint>

#include "dataset.h"
#include "model.h"

namespace swarmlens {

// Share of samples whose argmax equals the label, in [0, 1]. `limit` = 0 evaluates everything.
// `batch` = 0 sizes the batches to the input: kEvalBatchFloats input floats (500 grey 28x28 images,
// 14 RGB 96x96 ones: a large batch of large images costs more in memory traffic than it saves).
inline constexpr size_t kEvalBatchFloats = 500 * 28 * 28;
double evaluate_accuracy(Model& model, const Dataset& data, size_t limit = 0, size_t batch = 0);

// The same for a temporal model on moving Fashion-MNIST made from `data` (motion.h): one clip per
// item, seeded with `seed`, the model's window of frames, labelled with the direction.
double evaluate_motion_accuracy(Model& model, const Dataset& data, uint64_t seed, size_t limit = 0,
                                size_t batch = 0);

}  // namespace swarmlens
