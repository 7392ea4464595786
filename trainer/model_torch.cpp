// The only LibTorch translation unit of the trainer: the model registry and the flat-parameter
// plumbing. Each parameter's storage is re-pointed into one flat tensor (and each gradient into
// another), so params()/grad() are plain contiguous float spans with zero copies.
#include <torch/torch.h>

#include <cstring>
#include <stdexcept>

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

template <typename Net>
class TorchModel final : public Model {
 public:
  TorchModel(const ModelSpec& spec, Net net) : spec_(spec), net_(std::move(net)) {
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
    torch::NoGradGuard no_grad;
    for (auto& p : params) {
      layout_.push_back({p.key(), p.value().sizes().vec(), size_t(off)});
      torch::Tensor t = p.value();
      const int64_t n = t.numel();
      auto view = flat_.narrow(0, off, n).view(t.sizes());
      view.copy_(t);
      t.set_data(view);  // the parameter now lives inside flat_
      t.mutable_grad() = flat_grad_.narrow(0, off, n).view(t.sizes());
      h = fnv1a(h, p.key().data(), p.key().size());
      for (int64_t d : t.sizes()) h = fnv1a(h, &d, sizeof d);
      off += n;
    }
    hash_ = h;
  }

  const ModelSpec& spec() const override { return spec_; }
  size_t num_params() const override { return size_t(flat_.numel()); }
  uint64_t layout_hash() const override { return hash_; }
  float* params() override { return flat_.data_ptr<float>(); }
  const float* params() const override { return flat_.data_ptr<float>(); }
  const float* grad() const override { return flat_grad_.data_ptr<float>(); }
  const std::vector<ParamInfo>& layout() const override { return layout_; }

  StepStats compute_gradient(const BatchView& b) override {
    net_->train();
    flat_grad_.zero_();  // grads accumulate in place into flat_grad_ (never set to None)
    torch::Tensor x = input(b.images, b.size);
    torch::Tensor y = torch::from_blob(const_cast<int64_t*>(b.labels), {int64_t(b.size)}, torch::kLong);
    torch::Tensor logits = net_->forward(x);
    torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
    loss.backward();
    StepStats s;
    s.loss = loss.item<double>();
    s.correct = size_t(logits.argmax(1).eq(y).sum().item<int64_t>());
    return s;
  }

  void predict(const float* images, size_t count, int64_t* labels_out, float* probs_out) override {
    torch::NoGradGuard no_grad;
    net_->eval();
    torch::Tensor logits = net_->forward(input(images, count));
    torch::Tensor am = logits.argmax(1).contiguous();
    std::memcpy(labels_out, am.data_ptr<int64_t>(), count * sizeof(int64_t));
    if (probs_out) {
      torch::Tensor p = torch::softmax(logits, 1).contiguous();
      std::memcpy(probs_out, p.data_ptr<float>(), count * spec_.classes * sizeof(float));
    }
  }

 private:
  torch::Tensor input(const float* images, size_t count) const {
    auto* data = const_cast<float*>(images);
    if (is_temporal(spec_.name))
      return torch::from_blob(data, {int64_t(count), spec_.window, spec_.channels, spec_.height, spec_.width});
    return torch::from_blob(data, {int64_t(count), spec_.channels, spec_.height, spec_.width});
  }

  ModelSpec spec_;
  Net net_;
  torch::Tensor flat_;       // [num_params]
  torch::Tensor flat_grad_;  // [num_params]
  uint64_t hash_ = 0;
  std::vector<ParamInfo> layout_;
};

}  // namespace

std::unique_ptr<Model> Model::create(const ModelSpec& spec, uint64_t seed) {
  if (spec.channels < 1 || spec.height < 1 || spec.width < 1 || spec.classes < 2 || spec.window < 1)
    throw std::invalid_argument("model: channels, height, width, window must be >= 1 and classes >= 2");
  if (spec.window != 1 && !is_temporal(spec.name))
    throw std::invalid_argument("model " + spec.name + " takes one frame per sample (window 1), not " +
                                std::to_string(spec.window));
  torch::manual_seed(seed);
  if (spec.name == "cnn") {
    if (spec.height != 28 || spec.width != 28)
      throw std::invalid_argument("model cnn takes 28x28 input, not " + std::to_string(spec.height) +
                                  "x" + std::to_string(spec.width));
    return std::make_unique<TorchModel<SmallCnn>>(spec, SmallCnn(spec.channels, spec.classes));
  }
  if (spec.name == "mobilenet") {
    if (spec.height < 8 || spec.width < 8)
      throw std::invalid_argument("model mobilenet needs input of at least 8x8");
    return std::make_unique<TorchModel<MobileNet>>(spec, MobileNet(spec.channels, spec.classes));
  }
  if (spec.name == "crnn") {
    if (spec.height < 4 || spec.width < 4 || spec.height % 4 || spec.width % 4)
      throw std::invalid_argument("model crnn needs height and width that are multiples of 4, not " +
                                  std::to_string(spec.height) + "x" + std::to_string(spec.width));
    return std::make_unique<TorchModel<Crnn>>(spec, Crnn(spec.channels, spec.height, spec.width, spec.classes));
  }
  throw std::invalid_argument("unknown model '" + spec.name + "' (known: cnn, mobilenet, crnn)");
}

std::vector<std::string> Model::names() { return {"cnn", "mobilenet", "crnn"}; }

void Model::set_params(const float* p) { std::memcpy(params(), p, num_params() * sizeof(float)); }

void set_compute_threads(int threads) {
  if (threads > 0) torch::set_num_threads(threads);
}

}  // namespace swarmlens
