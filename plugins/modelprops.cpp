#include "modelprops.h"

#include "enums.h"

#include "node_trainer.h"
#include "properties.h"
#include "ranges.h"

namespace swarmlens {

ModelSettings::ModelSettings () {
  const NodeTrainerConfig d;
  model = d.model.name;
  model_id = d.model_id;
  device = d.device;
  input_width = d.model.width;
  input_height = d.model.height;
  classes = 0;
}


void model_install_properties (GObjectClass * klass, guint first, const ModelBlurbs & blurbs) {
  const auto ready = GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const ModelSettings d;
  g_object_class_install_property (klass, first, g_param_spec_enum (props::kModel, "Model", blurbs.model,
      model_enum_type (), enum_value (model_enum_type (), d.model), ready));
  g_object_class_install_property (klass, first + 1, g_param_spec_string (props::kModelId, "Model id", blurbs.model_id,
      d.model_id.c_str (), ready));
  // Composed blurbs: GLib keeps its own copies (no G_PARAM_STATIC_BLURB).
  const auto composed = GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_NAME | G_PARAM_STATIC_NICK | GST_PARAM_MUTABLE_READY);
  const std::string width = std::string ("Model input width: ") + blurbs.input;
  const std::string height = std::string ("Model input height: ") + blurbs.input;
  g_object_class_install_property (klass, first + 2, checked_int (props::kInputWidth, "Input width",
      width.c_str (), 8, 1024, d.input_width, composed));
  g_object_class_install_property (klass, first + 3, checked_int (props::kInputHeight, "Input height",
      height.c_str (), 8, 1024, d.input_height, composed));
  g_object_class_install_property (klass, first + 4, checked_int (props::kClasses, "Classes",
      "Classes the model tells apart; labels 0 .. classes-1 (0 = the model's own: 10, as Fashion-MNIST; crnn 4, "
      "the directions of motion). Federated, the broker's model says it, and a different count is refused",
      0, 1000, d.classes, ready));
  if (blurbs.device)
    g_object_class_install_property (klass, first + 5, g_param_spec_string (props::kDevice, "Device", blurbs.device,
        d.device.c_str (), ready));
}

bool model_set_property (ModelSettings & s, guint first, guint id, const GValue * v) {
  if (id < first || id >= first + kModelProperties) return false;
  const auto text = [v] { return std::string (g_value_get_string (v) ? g_value_get_string (v) : ""); };
  switch (id - first) {
    case 0: s.model = enum_nick (model_enum_type (), g_value_get_enum (v)); break;
    case 1: s.model_id = text (); break;
    case 2: s.input_width = g_value_get_int (v); break;
    case 3: s.input_height = g_value_get_int (v); break;
    case 4: s.classes = g_value_get_int (v); break;
    case 5: s.device = text (); break;
  }
  return true;
}

bool model_get_property (const ModelSettings & s, guint first, guint id, GValue * v) {
  if (id < first || id >= first + kModelProperties) return false;
  switch (id - first) {
    case 0: g_value_set_enum (v, enum_value (model_enum_type (), s.model)); break;
    case 1: g_value_set_string (v, s.model_id.c_str ()); break;
    case 2: g_value_set_int (v, s.input_width); break;
    case 3: g_value_set_int (v, s.input_height); break;
    case 4: g_value_set_int (v, s.classes); break;
    case 5: g_value_set_string (v, s.device.c_str ()); break;
  }
  return true;
}

}  // namespace swarmlens
