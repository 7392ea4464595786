#include "camera_model.h"

#include "motion.h"

namespace swarmlens {

ModelSpec camera_model_spec(const std::string& name, int width, int height, int window) {
  if (is_temporal(name)) return {name, 1, height, width, int(motion_class_names().size()), window};
  return {name, name == "cnn" ? 1 : 3, height, width, ModelSpec::kDefaultClasses};
}

}  // namespace swarmlens
