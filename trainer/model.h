// Classifier models behind a torch-free interface. Every model keeps all its parameters in one
// contiguous fp32 vector with a stable layout (registration order), and its gradients in another,
// so the compressor, the aggregator and snapshots work on flat spans and never see LibTorch.
// LibTorch lives in model_torch.cpp only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace swarmlens {

struct ModelSpec {
  std::string name = "cnn";  // registry name: "cnn" (1x28x28 small CNN), "mobilenet" (any CxHxW)
  int channels = 1;
  int height = 28;
  int width = 28;
  int classes = 10;
};

struct BatchView {
  const float* images = nullptr;    // [size, channels, height, width], normalised
  const int64_t* labels = nullptr;  // [size], in [0, classes)
  size_t size = 0;
};

struct StepStats {
  double loss = 0.0;  // mean cross-entropy over the batch
  size_t correct = 0; // argmax == label, counted on the same forward pass
};

class Model {
 public:
  virtual ~Model() = default;

  // Throws std::invalid_argument for an unknown name or an input shape the model cannot take.
  static std::unique_ptr<Model> create(const ModelSpec& spec, uint64_t seed);
  static std::vector<std::string> names();

  virtual const ModelSpec& spec() const = 0;
  virtual size_t num_params() const = 0;
  // FNV-1a over the model name, input shape and each parameter's name and shape.
  virtual uint64_t layout_hash() const = 0;

  virtual float* params() = 0;              // [num_params], the live weights
  virtual const float* params() const = 0;
  virtual const float* grad() const = 0;    // [num_params], from the last compute_gradient

  // Zeroes the gradient, runs forward + backward on the batch (train mode), fills grad().
  virtual StepStats compute_gradient(const BatchView& batch) = 0;
  // Inference (no grad). labels_out [count]; probs_out [count, classes] if not null.
  virtual void predict(const float* images, size_t count, int64_t* labels_out,
                       float* probs_out = nullptr) = 0;

  std::vector<float> params_copy() const { return {params(), params() + num_params()}; }
  void set_params(const float* p);
};

// Intra-op threads LibTorch uses (0 leaves its default).
void set_compute_threads(int threads);

}  // namespace swarmlens
