// The only LibTorch translation unit of the trainer: the model registry and the flat-parameter
// plumbing. Each parameter's storage is re-pointed into one flat tensor (and each gradient into
// another), so params()/grad() are plain contiguous float spans with zero copies.
#include <torch/torch.h>

#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <tuple>

#include "model.h"
#include "model_plans.h"

namespace swarmlens {

namespace {

// 1x28x28 -> conv5x5(32) -> pool -> conv5x5(64) -> pool -> fc(116) -> fc(classes): ~0.42 M params.
struct SmallCnnImpl : torch::nn::Module {
  SmallCnnImpl(int channels, int classes)
      : conv1(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 32, 5).padding(2)))),
        conv2(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(32, 64, 5).padding(2)))),
        fc1(register_module("fc1", torch::nn::Linear(64 * 7 * 7, 116))),
        fc2(register_module("fc2", torch::nn::Linear(116, classes))) {}

  torch::Tensor forward(torch::Tensor x) {
    x = torch::max_pool2d(torch::relu(conv1(x)), 2);  // [B, 32, 14, 14]
    x = torch::max_pool2d(torch::relu(conv2(x)), 2);  // [B, 64, 7, 7]
    x = torch::relu(fc1(x.flatten(1)));               // [B, 116]
    return fc2(x);                                     // [B, classes]
  }

  torch::nn::Conv2d conv1, conv2;
  torch::nn::Linear fc1, fc2;
};
TORCH_MODULE(SmallCnn);

// MobileNet-style: a strided stem, then depthwise-separable blocks (depthwise 3x3 + pointwise 1x1,
// ReLU6), global average pooling and a linear head. No batch norm: running statistics are state
// outside the flat parameter vector, which federated averaging would not carry.
struct MobileNetImpl : torch::nn::Module {
  MobileNetImpl(int channels, int classes) {
    stem = register_module("stem", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, kMobileNetStem, 3).stride(2).padding(1)));
    for (const auto& p : kMobileNetPlan) {
      auto dw = torch::nn::Conv2d(torch::nn::Conv2dOptions(p[0], p[0], 3).stride(p[2]).padding(1).groups(p[0]));
      auto pw = torch::nn::Conv2d(torch::nn::Conv2dOptions(p[0], p[1], 1));
      const auto i = std::to_string(blocks.size());
      blocks.push_back({register_module("dw" + i, dw), register_module("pw" + i, pw)});
    }
    head = register_module("head", torch::nn::Linear(256, classes));
    // He initialisation over each filter's own inputs (fan-in: 9 for a depthwise filter): without
    // normalisation layers, LibTorch's default init shrinks the signal layer by layer, the gradient
    // reaching the stem is ~1e-6 and the net does not learn at all.
    for (auto& m : modules(false))
      if (auto* conv = m->as<torch::nn::Conv2d>()) {
        torch::nn::init::kaiming_normal_(conv->weight, 0.0, torch::kFanIn, torch::kReLU);
        torch::nn::init::zeros_(conv->bias);
      }
  }

  torch::Tensor forward(torch::Tensor x) {
    x = torch::relu6(stem(x));  // [B, 16, H/2, W/2]
    for (auto& [dw, pw] : blocks) x = torch::relu6(pw(torch::relu6(dw(x))));
    x = torch::adaptive_avg_pool2d(x, {1, 1}).flatten(1);  // [B, 256]
    return head(x);
  }

  torch::nn::Conv2d stem{nullptr};
  std::vector<std::pair<torch::nn::Conv2d, torch::nn::Conv2d>> blocks;
  torch::nn::Linear head{nullptr};
};
TORCH_MODULE(MobileNet);

// Recurrent video classifier: every frame of the window through a small CNN encoder
// (conv3x3(16) -> pool -> conv3x3(32) -> pool -> fc(64)), the 64-d frame codes through a one-layer
// GRU, its last hidden state through a linear head. Input [B, T, C, H, W], H and W multiples of 4.
struct CrnnImpl : torch::nn::Module {
  static constexpr int kCode = 64, kHidden = 64;
  CrnnImpl(int channels, int height, int width, int classes)
      : conv1(register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(channels, 16, 3).padding(1)))),
        conv2(register_module("conv2", torch::nn::Conv2d(torch::nn::Conv2dOptions(16, 32, 3).padding(1)))),
        fc(register_module("fc", torch::nn::Linear(32 * (height / 4) * (width / 4), kCode))),
        gru(register_module("gru", torch::nn::GRU(torch::nn::GRUOptions(kCode, kHidden).batch_first(true)))),
        head(register_module("head", torch::nn::Linear(kHidden, classes))) {}

  torch::Tensor forward(torch::Tensor x) {
    const int64_t b = x.size(0), t = x.size(1);
    x = x.flatten(0, 1);                                // [B*T, C, H, W]
    x = torch::max_pool2d(torch::relu(conv1(x)), 2);
    x = torch::max_pool2d(torch::relu(conv2(x)), 2);
    x = torch::relu(fc(x.flatten(1))).view({b, t, kCode});
    auto out = gru(x);                                  // h_n: [1, B, hidden]
    return head(std::get<1>(out).squeeze(0));
  }

  torch::nn::Conv2d conv1, conv2;
  torch::nn::Linear fc;
  torch::nn::GRU gru;
  torch::nn::Linear head;
};
TORCH_MODULE(Crnn);

uint64_t fnv1a(uint64_t h, const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}

// Re-points every parameter of `net` into `flat` and its gradient into `flat_grad` (both 1-D, on
// the net's device, numel = the parameter count), copying the current values in.
template <typename Net>
void bind_flat(Net& net, torch::Tensor flat, torch::Tensor flat_grad) {
  torch::NoGradGuard no_grad;
  int64_t off = 0;
  for (auto& p : net->named_parameters(/*recurse=*/true)) {
    torch::Tensor t = p.value();
    const int64_t n = t.numel();
    auto view = flat.narrow(0, off, n).view(t.sizes());
    view.copy_(t);
    t.set_data(view);  // the parameter now lives inside flat
    t.mutable_grad() = flat_grad.narrow(0, off, n).view(t.sizes());
    off += n;
  }
}

template <typename Net>
class TorchModel final : public Model {
 public:
  // `make` builds the net (twice when the device is a GPU: the host copy owns params()).
  TorchModel(const ModelSpec& spec, const std::function<Net()>& make, torch::Device device)
      : spec_(spec), net_(make()), device_(device) {
    auto params = net_->named_parameters(/*recurse=*/true);
    int64_t total = 0;
    for (const auto& p : params) total += p.value().numel();
    flat_ = torch::empty({total});
    flat_grad_ = torch::zeros({total});
    uint64_t h = 0xcbf29ce484222325ull;
    h = fnv1a(h, spec_.name.data(), spec_.name.size());
    const int shape[4] = {spec_.channels, spec_.height, spec_.width, spec_.classes};
    h = fnv1a(h, shape, sizeof shape);
    int64_t off = 0;
    for (auto& p : params) {
      layout_.push_back({p.key(), p.value().sizes().vec(), size_t(off)});
      h = fnv1a(h, p.key().data(), p.key().size());
      for (int64_t d : p.value().sizes()) h = fnv1a(h, &d, sizeof d);
      off += p.value().numel();
    }
    hash_ = h;
    bind_flat(net_, flat_, flat_grad_);
    if (!device_.is_cpu()) {
      dev_net_ = make();
      dev_net_->to(device_);
      dev_flat_ = torch::empty({total}, torch::TensorOptions().device(device_));
      dev_flat_grad_ = torch::zeros({total}, torch::TensorOptions().device(device_));
      bind_flat(dev_net_, dev_flat_, dev_flat_grad_);
    }
  }

  const ModelSpec& spec() const override { return spec_; }
  std::string device() const override { return device_.str(); }
  size_t num_params() const override { return size_t(flat_.numel()); }
  uint64_t layout_hash() const override { return hash_; }
  float* params() override { return flat_.data_ptr<float>(); }
  const float* params() const override { return flat_.data_ptr<float>(); }
  const float* grad() const override { return flat_grad_.data_ptr<float>(); }
  const std::vector<ParamInfo>& layout() const override { return layout_; }

  StepStats compute_gradient(const BatchView& b) override {
    Net& net = compute_net();
    net->train();
    // Grads accumulate in place into the flat gradient (never set to None): zero it first.
    (device_.is_cpu() ? flat_grad_ : dev_flat_grad_).zero_();
    torch::Tensor x = input(b.images, b.size);
    torch::Tensor y = torch::from_blob(const_cast<int64_t*>(b.labels), {int64_t(b.size)}, torch::kLong)
                          .to(device_);
    torch::Tensor logits = net->forward(x);
    torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
    loss.backward();
    if (!device_.is_cpu()) flat_grad_.copy_(dev_flat_grad_);
    StepStats s;
    s.loss = loss.item<double>();
    s.correct = size_t(logits.argmax(1).eq(y).sum().item<int64_t>());
    return s;
  }

  void predict(const float* images, size_t count, int64_t* labels_out, float* probs_out) override {
    torch::NoGradGuard no_grad;
    Net& net = compute_net();
    net->eval();
    torch::Tensor logits = net->forward(input(images, count));
    torch::Tensor am = logits.argmax(1).to(torch::kCPU).contiguous();
    std::memcpy(labels_out, am.data_ptr<int64_t>(), count * sizeof(int64_t));
    if (probs_out) {
      torch::Tensor p = torch::softmax(logits, 1).to(torch::kCPU).contiguous();
      std::memcpy(probs_out, p.data_ptr<float>(), count * spec_.classes * sizeof(float));
    }
  }

 private:
  // The net that runs forward (and backward). On a GPU its weights are refreshed from params()
  // first: params() may have been changed by the optimiser step or a model from the hub.
  Net& compute_net() {
    if (device_.is_cpu()) return net_;
    torch::NoGradGuard no_grad;
    dev_flat_.copy_(flat_);
    return dev_net_;
  }

  torch::Tensor input(const float* images, size_t count) const {
    auto* data = const_cast<float*>(images);
    torch::Tensor x = is_temporal(spec_.name)
        ? torch::from_blob(data, {int64_t(count), spec_.window, spec_.channels, spec_.height, spec_.width})
        : torch::from_blob(data, {int64_t(count), spec_.channels, spec_.height, spec_.width});
    return device_.is_cpu() ? x : x.to(device_);
  }

  ModelSpec spec_;
  Net net_;                  // host copy: its parameters are params()
  torch::Device device_;
  torch::Tensor flat_;       // [num_params], host
  torch::Tensor flat_grad_;  // [num_params], host
  Net dev_net_{nullptr};     // GPU only: the copy that computes
  torch::Tensor dev_flat_, dev_flat_grad_;
  uint64_t hash_ = 0;
  std::vector<ParamInfo> layout_;
};

// The device, or a reason it cannot be used.
torch::Device parse_device(const std::string& name, std::string* problem) {
  torch::Device cpu(torch::kCPU);
  std::optional<torch::Device> d;
  try {
    d.emplace(name);
  } catch (const std::exception&) {
    *problem = "unknown device \"" + name + "\" (use cpu, cuda or cuda:N)";
    return cpu;
  }
  if (d->is_cpu()) return *d;
  if (!d->is_cuda()) {
    *problem = "device \"" + name + "\" is not supported (use cpu, cuda or cuda:N)";
    return cpu;
  }
  if (!at::hasCUDA()) {
    *problem = "device \"" + name + "\": this LibTorch was built without CUDA (Debian's libtorch is "
               "CPU-only; on a Jetson use JetPack's LibTorch, see docs/deploy.md), use device=cpu";
    return cpu;
  }
  const auto count = torch::cuda::device_count();
  if (count == 0) {
    *problem = "device \"" + name + "\": LibTorch has CUDA but sees no GPU (driver, permissions on "
               "/dev/nvidia*, CUDA_VISIBLE_DEVICES?)";
    return cpu;
  }
  if (d->has_index() && size_t(d->index()) >= count) {
    *problem = "device \"" + name + "\": only " + std::to_string(count) + " GPU(s) visible";
    return cpu;
  }
  return *d;
}

}  // namespace

std::unique_ptr<Model> Model::create(const ModelSpec& spec, uint64_t seed, const std::string& device_name) {
  std::string problem;
  const torch::Device device = parse_device(device_name, &problem);
  if (!problem.empty()) throw std::invalid_argument(problem);
  if (spec.channels < 1 || spec.height < 1 || spec.width < 1 || spec.classes < 2 || spec.window < 1)
    throw std::invalid_argument("model: channels, height, width, window must be >= 1 and classes >= 2");
  if (spec.window != 1 && !is_temporal(spec.name))
    throw std::invalid_argument("model " + spec.name + " takes one frame per sample (window 1), not " +
                                std::to_string(spec.window));
  // Each call of `make` seeds first, so a GPU model's device copy starts as its host copy.
  auto build = [&](auto make) {
    using Net = decltype(make());
    return std::make_unique<TorchModel<Net>>(spec, [&] { torch::manual_seed(seed); return make(); }, device);
  };
  if (spec.name == "cnn") {
    if (spec.height != 28 || spec.width != 28)
      throw std::invalid_argument("model cnn takes 28x28 input, not " + std::to_string(spec.height) +
                                  "x" + std::to_string(spec.width));
    return build([&] { return SmallCnn(spec.channels, spec.classes); });
  }
  if (spec.name == "mobilenet") {
    if (spec.height < 8 || spec.width < 8)
      throw std::invalid_argument("model mobilenet needs input of at least 8x8");
    return build([&] { return MobileNet(spec.channels, spec.classes); });
  }
  if (spec.name == "crnn") {
    if (spec.height < 4 || spec.width < 4 || spec.height % 4 || spec.width % 4)
      throw std::invalid_argument("model crnn needs height and width that are multiples of 4, not " +
                                  std::to_string(spec.height) + "x" + std::to_string(spec.width));
    return build([&] { return Crnn(spec.channels, spec.height, spec.width, spec.classes); });
  }
  throw std::invalid_argument("unknown model '" + spec.name + "' (known: cnn, mobilenet, crnn)");
}

std::vector<std::string> Model::names() { return {"cnn", "mobilenet", "crnn"}; }

void Model::set_params(const float* p) { std::memcpy(params(), p, num_params() * sizeof(float)); }

std::string device_problem(const std::string& device) {
  std::string problem;
  parse_device(device, &problem);
  return problem;
}

ModelLayout model_layout(const ModelSpec& spec) {
  static std::mutex lock;
  static std::map<std::tuple<std::string, int, int, int, int>, ModelLayout> known;
  const auto key = std::make_tuple(spec.name, spec.channels, spec.height, spec.width, spec.classes);
  std::lock_guard<std::mutex> g(lock);
  auto it = known.find(key);
  if (it == known.end()) {
    const auto m = Model::create(spec, 0);  // the layout does not depend on the weights
    it = known.emplace(key, ModelLayout{m->layout_hash(), m->num_params()}).first;
  }
  return it->second;
}

void set_compute_threads(int threads) {
  if (threads > 0) torch::set_num_threads(threads);
}

}  // namespace swarmlens
