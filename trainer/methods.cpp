#include "methods.h"

#include <stdexcept>

#include "codec.h"

namespace swarmlens {

std::optional<Method> parse_method(const std::string& name) {
  for (Method m : {Method::Dense, Method::TopK, Method::TwoStep, Method::FedAvg})
    if (name == method_name(m)) return m;
  return std::nullopt;
}

const char* method_name(Method m) {
  switch (m) {
    case Method::Dense: return "dense";
    case Method::TopK: return "topk";
    case Method::TwoStep: return "twostep";
    case Method::FedAvg: return "fedavg";
  }
  return "?";
}

namespace {
CompressorConfig compression_of(const MethodConfig& c) {
  CompressorConfig cc = c.compression;
  if (c.method == Method::TopK) cc.trigger = TriggerConfig{0.0, 0, 1};  // no trigger: every step goes out
  return cc;
}
}  // namespace

MethodNode::MethodNode(const MethodConfig& cfg, uint32_t dim, NodeIdentity id)
    : cfg_(cfg), dim_(dim), id_(std::move(id)), local_opt_(cfg.method == Method::FedAvg ? dim : 0, cfg.lr, cfg.momentum) {
  if (cfg.method == Method::TopK || cfg.method == Method::TwoStep) compressor_.emplace(dim, compression_of(cfg), id_);
  if (cfg.method == Method::FedAvg && cfg.fedavg_steps == 0) throw std::invalid_argument("FedAvg needs at least one local step per round");
}

const float* MethodNode::weights(const std::vector<float>& global) {
  if (cfg_.method != Method::FedAvg) return global.data();
  if (local_.empty()) local_ = global;
  return local_.data();
}

std::optional<std::vector<uint8_t>> MethodNode::step(const float* grad, uint64_t samples, uint64_t base_version) {
  switch (cfg_.method) {
    case Method::Dense: return encode_dense(grad, samples, base_version);
    case Method::TopK:
    case Method::TwoStep: return compressor_->step(grad, samples, base_version);
    case Method::FedAvg:
      if (local_.empty()) throw std::logic_error("FedAvg step before weights()");
      local_opt_.step(local_.data(), grad);
      return std::nullopt;
  }
  return std::nullopt;
}

std::vector<uint8_t> MethodNode::end_round(const std::vector<float>& global, uint64_t base_version, uint64_t samples) {
  if (cfg_.method != Method::FedAvg || local_.empty()) throw std::logic_error("end_round: not a FedAvg node in a round");
  std::vector<float> delta(dim_);  // the descent direction
  for (uint32_t i = 0; i < dim_; ++i) delta[i] = global[i] - local_[i];
  local_.clear();
  return encode_dense(delta.data(), samples, base_version);
}

std::vector<uint8_t> MethodNode::encode_dense(const float* values, uint64_t samples, uint64_t base_version) {
  UpdateHeader h{id_.model_id, id_.layout_hash, base_version, id_.node_id, ++sequence_, samples};
  return encode_update(h, from_dense(values, dim_), {IndexCoding::Dense, ValueCoding::Fp32});
}

}  // namespace swarmlens
