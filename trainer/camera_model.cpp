#include "camera_model.h"

#include <stdexcept>

#include "motion.h"

namespace swarmlens {

ModelSpec camera_model_spec(const std::string& name, int width, int height, int window, int classes) {
  if (is_temporal(name)) return {name, 1, height, width, classes > 0 ? classes : int(motion_class_names().size()), window};
  return {name, name == "cnn" ? 1 : 3, height, width, classes > 0 ? classes : ModelSpec::kDefaultClasses};
}

ModelDescription describe_model(const ModelSpec& spec, const std::vector<std::string>& class_names) {
  ModelDescription d;
  d.channels = spec.channels;
  d.height = spec.height;
  d.width = spec.width;
  d.classes = spec.classes;
  d.window = spec.window;
  d.class_names = class_names;
  return d;
}

ModelSpec described_spec(const Snapshot& s) {
  const ModelDescription& d = s.description;
  if (!d.described()) throw std::runtime_error("the snapshot of " + s.model + " does not describe its model (format 1)");
  ModelSpec spec{s.model, d.channels, d.height, d.width, d.classes, d.window};
  return spec;
}

std::string describe(const std::string& name, const ModelDescription& d) {
  if (!d.described()) return name + " (undescribed)";
  std::string text = name + " " + std::to_string(d.channels) + "x" + std::to_string(d.height) + "x" + std::to_string(d.width) +
                     ", " + std::to_string(d.classes) + " classes";
  if (d.window > 1) text += ", window " + std::to_string(d.window);
  if (!d.class_names.empty()) {
    text += " (";
    for (size_t i = 0; i < d.class_names.size() && i < 4; ++i) text += (i ? ", " : "") + d.class_names[i];
    text += d.class_names.size() > 4 ? ", ...)" : ")";
  }
  return text;
}

std::string model_mismatch(const Snapshot& served, uint64_t my_layout_hash, const std::string& mine) {
  if (served.layout_hash == my_layout_hash) return "";
  return "the model served is " + describe(served.model, served.description) + "; this side runs " + mine;
}

}  // namespace swarmlens
