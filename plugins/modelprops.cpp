#include "modelprops.h"

#include "node_trainer.h"
#include "properties.h"

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

GType model_enum_type () {
  // The registry's names (Model::names(), checked by the element tests), values in registration order.
  static const GEnumValue values[] = {
      {0, "cnn: small CNN, grey 28x28", "cnn"},
      {1, "mobilenet: MobileNetV2-style, RGB, any input size", "mobilenet"},
      {2, "crnn: per-frame CNN and a GRU over a window of grey frames", "crnn"},
      {0, nullptr, nullptr}};
  static GType type = 0;
  if (g_once_init_enter (&type)) g_once_init_leave (&type, g_enum_register_static ("SwarmlensModel", values));
  return type;
}

namespace {

int model_enum_value (const std::string & name) {
  GEnumClass *c = G_ENUM_CLASS (g_type_class_ref (model_enum_type ()));
  const GEnumValue *v = g_enum_get_value_by_nick (c, name.c_str ());
  const int value = v ? v->value : 0;
  g_type_class_unref (c);
  return value;
}

std::string model_enum_nick (int value) {
  GEnumClass *c = G_ENUM_CLASS (g_type_class_ref (model_enum_type ()));
  const GEnumValue *v = g_enum_get_value (c, value);
  std::string nick = v ? v->value_nick : "";
  g_type_class_unref (c);
  return nick;
}

}  // namespace

void model_install_properties (GObjectClass * klass, guint first, const ModelBlurbs & blurbs) {
  const auto ready = GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const ModelSettings d;
  g_object_class_install_property (klass, first, g_param_spec_enum (props::kModel, "Model", blurbs.model,
      model_enum_type (), model_enum_value (d.model), ready));
  g_object_class_install_property (klass, first + 1, g_param_spec_string (props::kModelId, "Model id", blurbs.model_id,
      d.model_id.c_str (), ready));
  // Composed blurbs: GLib keeps its own copies (no G_PARAM_STATIC_BLURB).
  const auto composed = GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_NAME | G_PARAM_STATIC_NICK | GST_PARAM_MUTABLE_READY);
  const std::string width = std::string ("Model input width: ") + blurbs.input;
  const std::string height = std::string ("Model input height: ") + blurbs.input;
  g_object_class_install_property (klass, first + 2, g_param_spec_int (props::kInputWidth, "Input width",
      width.c_str (), 8, 1024, d.input_width, composed));
  g_object_class_install_property (klass, first + 3, g_param_spec_int (props::kInputHeight, "Input height",
      height.c_str (), 8, 1024, d.input_height, composed));
  g_object_class_install_property (klass, first + 4, g_param_spec_int (props::kClasses, "Classes",
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
    case 0: s.model = model_enum_nick (g_value_get_enum (v)); break;
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
    case 0: g_value_set_enum (v, model_enum_value (s.model)); break;
    case 1: g_value_set_string (v, s.model_id.c_str ()); break;
    case 2: g_value_set_int (v, s.input_width); break;
    case 3: g_value_set_int (v, s.input_height); break;
    case 4: g_value_set_int (v, s.classes); break;
    case 5: g_value_set_string (v, s.device.c_str ()); break;
  }
  return true;
}

}  // namespace swarmlens
