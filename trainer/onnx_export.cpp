#include "onnx_export.h"

#include "model_plans.h"

#include <onnx/checker.h>
#include <onnx/onnx_pb.h>

#include <nlohmann/json.hpp>

#include <map>
#include <stdexcept>

namespace swarmlens {

namespace {

// Writes one graph: initializers from the model's layout, nodes added in order.
class GraphWriter {
 public:
  GraphWriter(const Model& m, onnx::GraphProto* g) : m_(m), g_(g) {
    for (const auto& p : m.layout()) params_[p.name] = &p;
  }

  // The parameter as an initializer named after it (its LibTorch name); its name.
  std::string param(const std::string& name) {
    const ParamInfo& p = info(name);
    add_initializer(name, p.shape, m_.params() + p.offset);
    return name;
  }
  const ParamInfo& info(const std::string& name) const {
    auto it = params_.find(name);
    if (it == params_.end()) throw std::invalid_argument("onnx export: the model has no parameter " + name);
    return *it->second;
  }
  void add_initializer(const std::string& name, const std::vector<int64_t>& shape, const float* values) {
    onnx::TensorProto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    size_t n = 1;
    for (int64_t d : shape) t->add_dims(d), n *= size_t(d);
    t->mutable_float_data()->Add(values, values + n);
  }

  onnx::NodeProto* node(const std::string& op, std::vector<std::string> inputs, const std::string& output) {
    onnx::NodeProto* n = g_->add_node();
    n->set_op_type(op);
    n->set_name(output);
    for (auto& i : inputs) n->add_input(i);
    n->add_output(output);
    return n;
  }
  std::string fresh(const std::string& stem) { return stem + "_" + std::to_string(counter_++); }

  static void ints(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void real(onnx::NodeProto* n, const std::string& name, float v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void integer(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }

  // Conv with the module's weight and bias; square kernel from the weight's shape.
  std::string conv(const std::string& x, const std::string& module, int64_t stride, int64_t pad, int64_t groups = 1) {
    const ParamInfo& w = info(module + ".weight");
    auto* n = node("Conv", {x, param(module + ".weight"), param(module + ".bias")}, fresh(module));
    ints(n, "kernel_shape", {w.shape[2], w.shape[3]});
    ints(n, "strides", {stride, stride});
    ints(n, "pads", {pad, pad, pad, pad});
    if (groups > 1) integer(n, "group", groups);
    return n->output(0);
  }
  // y = x W^T + b (LibTorch's Linear), as Gemm.
  std::string linear(const std::string& x, const std::string& module) {
    auto* n = node("Gemm", {x, param(module + ".weight"), param(module + ".bias")}, fresh(module));
    integer(n, "transB", 1);
    return n->output(0);
  }
  std::string unary(const std::string& op, const std::string& x) { return node(op, {x}, fresh(op))->output(0); }
  std::string max_pool2(const std::string& x) {
    auto* n = node("MaxPool", {x}, fresh("pool"));
    ints(n, "kernel_shape", {2, 2});
    ints(n, "strides", {2, 2});
    return n->output(0);
  }
  std::string relu6(const std::string& x) {
    // Clip with min/max attributes (opset < 11): OpenCV 4.6 reads that form only, as ReLU6.
    auto* n = node("Clip", {x}, fresh("relu6"));
    real(n, "min", 0.0f);
    real(n, "max", 6.0f);
    return n->output(0);
  }
  std::string flatten(const std::string& x) {
    auto* n = node("Flatten", {x}, fresh("flatten"));
    integer(n, "axis", 1);
    return n->output(0);
  }

 private:
  const Model& m_;
  onnx::GraphProto* g_;
  std::map<std::string, const ParamInfo*> params_;
  int counter_ = 0;
};

std::string small_cnn(GraphWriter& w, const std::string& x) {
  std::string y = w.max_pool2(w.unary("Relu", w.conv(x, "conv1", 1, 2)));
  y = w.max_pool2(w.unary("Relu", w.conv(y, "conv2", 1, 2)));
  y = w.unary("Relu", w.linear(w.flatten(y), "fc1"));
  return w.linear(y, "fc2");
}

std::string mobilenet(GraphWriter& w, const std::string& x) {
  std::string y = w.relu6(w.conv(x, "stem", 2, 1));
  int i = 0;
  for (const auto& p : kMobileNetPlan) {
    const std::string n = std::to_string(i++);
    y = w.relu6(w.conv(y, "dw" + n, p[2], 1, p[0]));
    y = w.relu6(w.conv(y, "pw" + n, 1, 0));
  }
  y = w.flatten(w.unary("GlobalAveragePool", y));
  return w.linear(y, "head");
}

}  // namespace

std::string export_onnx(const Model& model, const OnnxExportInfo& info) {
  const ModelSpec& spec = model.spec();
  if (is_temporal(spec.name))
    throw std::invalid_argument("onnx export: the recurrent model (" + spec.name +
                                ") is not exported; see docs/export.md");
  if (!info.class_names.empty() && info.class_names.size() != size_t(spec.classes))
    throw std::invalid_argument("onnx export: " + std::to_string(info.class_names.size()) +
                                " class names for a model of " + std::to_string(spec.classes) + " classes");
  onnx::ModelProto mp;
  mp.set_ir_version(onnx::IR_VERSION);
  mp.set_producer_name("swarmlens");
  mp.set_producer_version("1");
  mp.set_model_version(int64_t(info.version));
  mp.set_doc_string("Swarmlens shared classifier '" + info.model_id + "' (" + spec.name + "), version " +
                    std::to_string(info.version) + ". Input: frames normalised as (x/255 - input_mean)/input_std.");
  auto* opset = mp.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxOpset);
  auto meta = [&](const std::string& k, const std::string& v) {
    auto* p = mp.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  };
  meta("class_names", nlohmann::json(info.class_names).dump());
  meta("swarmlens.model", spec.name);
  meta("swarmlens.model_id", info.model_id);
  meta("swarmlens.version", std::to_string(info.version));
  meta("swarmlens.layout_hash", std::to_string(model.layout_hash()));
  meta("swarmlens.window", std::to_string(spec.window));
  meta("input_mean", std::to_string(info.input_mean));
  meta("input_std", std::to_string(info.input_std));

  onnx::GraphProto* g = mp.mutable_graph();
  g->set_name("swarmlens_" + spec.name);
  auto tensor_value = [](onnx::ValueInfoProto* v, const std::string& name, std::vector<int64_t> dims) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    auto* shape = tt->mutable_shape();
    for (int64_t d : dims) {
      auto* dim = shape->add_dim();
      if (d < 0) dim->set_dim_param("N");
      else dim->set_dim_value(d);
    }
  };
  tensor_value(g->add_input(), "input", {-1, spec.channels, spec.height, spec.width});
  GraphWriter w(model, g);
  std::string logits;
  if (spec.name == "cnn") logits = small_cnn(w, "input");
  else if (spec.name == "mobilenet") logits = mobilenet(w, "input");
  else throw std::invalid_argument("onnx export: no graph for model " + spec.name);

  w.node("Identity", {logits}, "logits");
  auto* softmax = w.node("Softmax", {"logits"}, "probabilities");
  GraphWriter::integer(softmax, "axis", 1);
  tensor_value(g->add_output(), "logits", {-1, spec.classes});
  tensor_value(g->add_output(), "probabilities", {-1, spec.classes});

  try {
    onnx::checker::check_model(mp);
  } catch (const std::exception& e) {
    throw std::runtime_error(std::string("onnx export: the ONNX checker rejects the graph: ") + e.what());
  }
  std::string out;
  if (!mp.SerializeToString(&out)) throw std::runtime_error("onnx export: cannot serialise the model");
  return out;
}

}  // namespace swarmlens
