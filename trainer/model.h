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
  // Registry name: "cnn" (1x28x28 small CNN), "mobilenet" (any CxHxW), "crnn" (a per-frame CNN
  // encoder feeding a GRU over `window` frames; H and W multiples of 4).
  static constexpr char kDefaultName[] = "cnn";
  static constexpr int kDefaultClasses = 10;  // Fashion-MNIST's
  std::string name = kDefaultName;
  int channels = 1;
  int height = 28;
  int width = 28;
  int classes = kDefaultClasses;
  // Frames per sample. Temporal models take [window, C, H, W] per sample; the others take one frame
  // (window must be 1). Not part of the layout: a recurrent model's weights fit any window length.
  int window = 1;
};

// Floats in one sample of the model's input: window x C x H x W.
inline size_t sample_size(const ModelSpec& s) {
  return size_t(s.window) * size_t(s.channels) * size_t(s.height) * size_t(s.width);
}
// Whether the registry model is temporal (takes a window of frames per sample).
inline bool is_temporal(const std::string& name) { return name == "crnn"; }

// One parameter tensor inside the flat vector, in registration order (LibTorch's names, e.g.
// "conv1.weight", "gru.weight_ih_l0").
struct ParamInfo {
  std::string name;
  std::vector<int64_t> shape;
  size_t offset = 0;  // into params()
  size_t numel() const {
    size_t n = 1;
    for (int64_t d : shape) n *= size_t(d);
    return n;
  }
};

struct BatchView {
  const float* images = nullptr;    // [size, window, channels, height, width] (window 1: [size, C, H, W]), normalised
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

  // Throws std::invalid_argument for an unknown name or an input shape the model cannot take, and
  // for a compute device that is not usable (see device_problem).
  //
  // `device` is LibTorch's device string: "cpu", "cuda" or "cuda:N". The weights always live in
  // params() on the host (the compressor, the hub and snapshots read them there); on a GPU the
  // model keeps a copy of them on the device, refreshed from params() before each gradient or
  // prediction, and copies each gradient back into grad().
  static std::unique_ptr<Model> create(const ModelSpec& spec, uint64_t seed,
                                       const std::string& device = "cpu");
  static std::vector<std::string> names();

  virtual const ModelSpec& spec() const = 0;
  virtual std::string device() const = 0;  // where forward and backward run, e.g. "cpu", "cuda:0"
  virtual size_t num_params() const = 0;
  // FNV-1a over the model name, input shape and each parameter's name and shape.
  virtual uint64_t layout_hash() const = 0;

  virtual float* params() = 0;              // [num_params], the live weights
  virtual const float* params() const = 0;
  virtual const float* grad() const = 0;    // [num_params], from the last compute_gradient
  virtual const std::vector<ParamInfo>& layout() const = 0;

  // Zeroes the gradient, runs forward + backward on the batch (train mode), fills grad().
  virtual StepStats compute_gradient(const BatchView& batch) = 0;
  // Inference (no grad) on `count` samples. labels_out [count]; probs_out [count, classes] if not null.
  virtual void predict(const float* images, size_t count, int64_t* labels_out,
                       float* probs_out = nullptr) = 0;

  std::vector<float> params_copy() const { return {params(), params() + num_params()}; }
  void set_params(const float* p);
};

// What a model's parameters look like, without keeping a model: for those that only check updates
// against it (a gateway). Computed once per spec in a process. Throws as Model::create.
struct ModelLayout {
  uint64_t hash = 0;      // Model::layout_hash()
  size_t num_params = 0;  // Model::num_params()
};
ModelLayout model_layout(const ModelSpec& spec);

// Why `device` cannot run models here, or "" if it can: an unknown device string, a LibTorch built
// without CUDA (Debian's is CPU-only; JetPack's LibTorch on a Jetson has CUDA), or no such GPU.
std::string device_problem(const std::string& device);

// Intra-op threads LibTorch uses (0 leaves its default).
void set_compute_threads(int threads);

}  // namespace swarmlens
