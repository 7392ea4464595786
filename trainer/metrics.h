// Accuracy of a model on a labelled data set (torch-free: goes through Model::predict).
#pragma once

#include <cstddef>

#include "dataset.h"
#include "model.h"

namespace swarmlens {

// Share of samples whose argmax equals the label, in [0, 1]. `limit` = 0 evaluates everything.
double evaluate_accuracy(Model& model, const Dataset& data, size_t limit = 0, size_t batch = 500);

}  // namespace swarmlens
