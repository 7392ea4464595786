// The ways a node can federate, as the benchmarks compare them: dense synchronous SGD (every
// gradient entry, fp32, every step), DGC top-k (sparsify with memory, every step out), the two-step
// method (sparsify + trigger) and FedAvg (local SGD steps, then the model delta). A MethodNode is
// one node's side of one method: it turns gradients into the messages that node sends, through the
// real codec. Where the gradients come from and how messages travel is the caller's (a simulated
// fleet in one process, or a node on a real link).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "compressor.h"
#include "node_trainer.h"
#include "optim.h"

namespace swarmlens {

enum class Method { Dense, TopK, TwoStep, FedAvg };
std::optional<Method> parse_method(const std::string& name);  // dense, topk, twostep, fedavg
const char* method_name(Method m);

struct MethodConfig {
  Method method = Method::TwoStep;
  static constexpr uint32_t kDefaultFedAvgSteps = 8;
  double lr = NodeTrainerConfig::kDefaultLr;  // FedAvg: the local steps' rate
  double momentum = SparsifierConfig::kDefaultMomentum;  // FedAvg: the local steps' momentum (top-k, two-step: compression.sparsify)
  uint32_t fedavg_steps = kDefaultFedAvgSteps;  // FedAvg: local steps per round
  CompressorConfig compression;  // top-k and two-step; top-k ignores the trigger (every step goes out)
};

class MethodNode {
 public:
  MethodNode(const MethodConfig& cfg, uint32_t dim, NodeIdentity id);

  // The weights this node's next gradient is taken at: FedAvg's own weights (a copy of `global` at
  // the round's start), the global model for the others (two-step nodes add their pending update
  // with compressor()->apply_pending).
  const float* weights(const std::vector<float>& global);
  // One step's gradient, from `samples` samples, taken on model `base_version`. Dense: the gradient
  // as the message. Top-k: its selection. Two-step: its release, when the trigger fires. FedAvg: a
  // local step on its own weights, no message (end_round sends).
  std::optional<std::vector<uint8_t>> step(const float* grad, uint64_t samples, uint64_t base_version);
  // FedAvg at the round's end: the descent direction global - own weights as the message; the next
  // round starts from the next global model.
  std::vector<uint8_t> end_round(const std::vector<float>& global, uint64_t base_version, uint64_t samples);
  // Top-k and two-step: the compressor (its residual, pending update and counters); null otherwise.
  TwoStepCompressor* compressor() { return compressor_ ? &*compressor_ : nullptr; }

 private:
  // Every entry as fp32, through the same codec as the sparse methods.
  std::vector<uint8_t> encode_dense(const float* values, uint64_t samples, uint64_t base_version);

  MethodConfig cfg_;
  uint32_t dim_;
  NodeIdentity id_;
  uint64_t sequence_ = 0;
  std::optional<TwoStepCompressor> compressor_;
  FlatSgd local_opt_;
  std::vector<float> local_;  // FedAvg: this round's own weights (empty between rounds)
};

}  // namespace swarmlens
