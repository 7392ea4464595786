#include "metrics.h"

#include <algorithm>
#include <numeric>

#include "motion.h"

namespace swarmlens {

namespace {

template <typename MakeBatch>
double accuracy(Model& model, size_t n, size_t batch, MakeBatch make) {
  if (n == 0) return 0.0;
  if (batch == 0) batch = std::clamp<size_t>(kEvalBatchFloats / sample_size(model.spec()), 1, 500);
  std::vector<uint32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0u);
  std::vector<float> images;
  std::vector<int64_t> labels, predicted(batch);
  size_t correct = 0;
  for (size_t start = 0; start < n; start += batch) {
    const size_t count = std::min(batch, n - start);
    make(idx.data() + start, count, start, images, labels);
    model.predict(images.data(), count, predicted.data());
    for (size_t i = 0; i < count; ++i) correct += predicted[i] == labels[i];
  }
  return double(correct) / double(n);
}

}  // namespace

double evaluate_accuracy(Model& model, const Dataset& data, size_t limit, size_t batch) {
  const size_t n = limit ? std::min(limit, data.size()) : data.size();
  return accuracy(model, n, batch, [&](const uint32_t* idx, size_t count, size_t, auto& images, auto& labels) {
    make_batch(data, idx, count, images, labels);
  });
}

double evaluate_motion_accuracy(Model& model, const Dataset& data, uint64_t seed, size_t limit, size_t batch) {
  const size_t n = limit ? std::min(limit, data.size()) : data.size();
  MotionConfig mc;
  mc.canvas = model.spec().height;
  return accuracy(model, n, batch, [&](const uint32_t* idx, size_t count, size_t first, auto& images, auto& labels) {
    make_motion_batch(data, idx, count, model.spec().window, seed, first, mc, images, labels);
  });
}

}  // namespace swarmlens
