// Inference on an exported ONNX model (onnx_export.h) with OpenCV's DNN module: a runtime no one
// here wrote, and one that needs no LibTorch, for inference-only cameras.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "classifier.h"
#include "model.h"
#include "onnx_export.h"

namespace swarmlens {

// What an exported file says of itself: its input shape and the swarmlens.* metadata, read with
// libonnx. Throws std::runtime_error for a file that is not an ONNX model or lacks an input.
struct OnnxModelInfo {
  ModelSpec spec;                        // name from swarmlens.model ("" if absent), input shape, classes
  std::string model_id;
  uint64_t version = 0;
  std::vector<std::string> class_names;
  // without metadata: as exported
  float input_mean = OnnxExportInfo::kDefaultInputMean, input_std = OnnxExportInfo::kDefaultInputStd;
};
OnnxModelInfo read_onnx_info(const std::string& path);

class DnnClassifier {
 public:
  // Throws std::runtime_error (unreadable file, OpenCV cannot import the graph).
  explicit DnnClassifier(const std::string& onnx_path);
  ~DnnClassifier();
  DnnClassifier(const DnnClassifier&) = delete;
  DnnClassifier& operator=(const DnnClassifier&) = delete;

  const OnnxModelInfo& info() const { return info_; }
  const ModelSpec& spec() const { return info_.spec; }
  // count samples [count, C, H, W], normalised as info().input_mean/std say. labels [count];
  // probs [count, classes] if not null.
  void predict(const float* images, size_t count, int64_t* labels, float* probs = nullptr);
  Classification classify(const float* chw);

 private:
  struct Net;
  std::unique_ptr<Net> net_;
  OnnxModelInfo info_;
  std::vector<float> probs_;
};

}  // namespace swarmlens
