#include "camera_model.h"

#include "motion.h"

namespace swarmlens {

ModelSpec camera_model_spec(const std::string& name, int width, int height, int window, int classes) {
  if (is_temporal(name)) return {name, 1, height, width, classes > 0 ? classes : int(motion_class_names().size()), window};
  return {name, name == "cnn" ? 1 : 3, height, width, classes > 0 ? classes : ModelSpec::kDefaultClasses};
}

}  // namespace swarmlens
