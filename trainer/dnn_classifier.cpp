#include "dnn_classifier.h"

#include <onnx/onnx_pb.h>

#include <nlohmann/json.hpp>
#include <opencv2/dnn.hpp>

#include <algorithm>
#include <fstream>
#include <iterator>
#include <stdexcept>

namespace swarmlens {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open");
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

OnnxModelInfo parse_onnx_info(const std::string& path, const std::string& bytes) {
  onnx::ModelProto mp;
  if (!mp.ParseFromString(bytes)) throw std::runtime_error(path + ": not an ONNX model");
  const auto& g = mp.graph();
  if (g.input_size() < 1 || g.output_size() < 1) throw std::runtime_error(path + ": the graph has no input or output");
  OnnxModelInfo info;
  std::vector<int64_t> in;
  for (const auto& d : g.input(0).type().tensor_type().shape().dim()) in.push_back(d.has_dim_value() ? d.dim_value() : -1);
  std::vector<int64_t> out;
  for (const auto& d : g.output(0).type().tensor_type().shape().dim()) out.push_back(d.has_dim_value() ? d.dim_value() : -1);
  if (in.size() != 4 || in[1] < 1 || in[2] < 1 || in[3] < 1)
    throw std::runtime_error(path + ": input is not [N, C, H, W] with known C, H, W");
  if (out.size() != 2 || out[1] < 2) throw std::runtime_error(path + ": output is not [N, classes]");
  info.spec = {"", int(in[1]), int(in[2]), int(in[3]), int(out[1])};
  try {
    for (const auto& p : mp.metadata_props()) {
      const std::string& k = p.key();
      const std::string& v = p.value();
      if (k == "swarmlens.model") info.spec.name = v;
      else if (k == "swarmlens.model_id") info.model_id = v;
      else if (k == "swarmlens.version") info.version = std::stoull(v);
      else if (k == "input_mean") info.input_mean = std::stof(v);
      else if (k == "input_std") info.input_std = std::stof(v);
      else if (k == "class_names") info.class_names = nlohmann::json::parse(v).get<std::vector<std::string>>();
    }
  } catch (const std::exception& e) {
    throw std::runtime_error(path + ": bad metadata: " + e.what());
  }
  if (!(info.input_std > 0.0f)) throw std::runtime_error(path + ": input_std must be > 0");
  return info;
}

}  // namespace

OnnxModelInfo read_onnx_info(const std::string& path) { return parse_onnx_info(path, read_file(path)); }

struct DnnClassifier::Net {
  cv::dnn::Net net;
};

DnnClassifier::DnnClassifier(const std::string& onnx_path) {
  // One read: the metadata and the network come from the same bytes, even if the file is replaced
  // (exported again) meanwhile.
  const std::string bytes = read_file(onnx_path);
  info_ = parse_onnx_info(onnx_path, bytes);
  net_ = std::make_unique<Net>();
  try {
    net_->net = cv::dnn::readNetFromONNX(bytes.data(), bytes.size());
  } catch (const cv::Exception& e) {
    throw std::runtime_error(onnx_path + ": OpenCV DNN cannot import it: " + e.what());
  }
  if (net_->net.empty()) throw std::runtime_error(onnx_path + ": OpenCV DNN imported an empty network");
  net_->net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
  net_->net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
  probs_.resize(size_t(info_.spec.classes));
}

DnnClassifier::~DnnClassifier() = default;

void DnnClassifier::predict(const float* images, size_t count, int64_t* labels, float* probs) {
  const ModelSpec& s = info_.spec;
  const int dims[4] = {int(count), s.channels, s.height, s.width};
  const cv::Mat blob(4, dims, CV_32F, const_cast<float*>(images));
  net_->net.setInput(blob, "input");
  const cv::Mat out = net_->net.forward("probabilities");
  if (out.total() != count * size_t(s.classes))
    throw std::runtime_error("OpenCV DNN returned " + std::to_string(out.total()) + " values, not " +
                             std::to_string(count * size_t(s.classes)));
  const float* p = out.ptr<float>();
  for (size_t i = 0; i < count; ++i) {
    const float* row = p + i * size_t(s.classes);
    labels[i] = int64_t(std::max_element(row, row + s.classes) - row);
    if (probs) std::copy(row, row + s.classes, probs + i * size_t(s.classes));
  }
}

Classification DnnClassifier::classify(const float* chw) {
  int64_t label = 0;
  predict(chw, 1, &label, probs_.data());
  return {int(label), probs_[size_t(label)]};
}

}  // namespace swarmlens
