#include "metrics.h"

#include <algorithm>
#include <numeric>

namespace swarmlens {

double evaluate_accuracy(Model& model, const Dataset& data, size_t limit, size_t batch) {
  const size_t n = limit ? std::min(limit, data.size()) : data.size();
  if (n == 0) return 0.0;
  std::vector<uint32_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0u);
  std::vector<float> images;
  std::vector<int64_t> labels, predicted(batch);
  size_t correct = 0;
  for (size_t start = 0; start < n; start += batch) {
    const size_t count = std::min(batch, n - start);
    make_batch(data, idx.data() + start, count, images, labels);
    model.predict(images.data(), count, predicted.data());
    for (size_t i = 0; i < count; ++i) correct += predicted[i] == labels[i];
  }
  return double(correct) / double(n);
}

}  // namespace swarmlens
