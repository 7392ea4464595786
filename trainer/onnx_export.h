// The shared model as an ONNX file, so it runs outside Swarmlens (OpenCV DNN, DeepStream nvinfer,
// ONNX Runtime). The graph is written from the model's parameter layout with Debian's libonnx (the
// ONNX protobuf) and checked with ONNX's own checker before it is returned. LibTorch is not needed.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model.h"
#include "node_trainer.h"

namespace swarmlens {

struct OnnxExportInfo {
  static constexpr float kDefaultInputMean = 0.0f, kDefaultInputStd = 1.0f;
  std::string model_id = NodeTrainerConfig::kDefaultModelId;  // the federation's model id (metadata)
  uint64_t version = 0;                 // the model version exported (metadata)
  std::vector<std::string> class_names;  // one per class, in the model's metadata
  float input_mean = kDefaultInputMean;  // how frames are normalised: (x / 255 - mean) / std
  float input_std = kDefaultInputStd;
};

// The ONNX opset the graphs are written for: 10, the last whose Clip takes min/max as attributes,
// the only form OpenCV 4.6 (Debian 12) imports; TensorRT and ONNX Runtime read it too.
inline constexpr int64_t kOnnxOpset = 10;

// Serialised ONNX model for `model`'s current weights: input "input" [N, C, H, W] (temporal models:
// [N, window, C, H, W]), outputs "logits" [N, classes] and "probabilities" (softmax of the logits).
// Metadata: class_names (JSON array), swarmlens.* (model, model_id, version, layout_hash, window),
// input_mean, input_std. Throws std::invalid_argument if the model cannot be expressed, and
// std::runtime_error if ONNX's checker rejects the graph.
std::string export_onnx(const Model& model, const OnnxExportInfo& info);

}  // namespace swarmlens
