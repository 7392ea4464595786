#include "enums.h"

#include "codec.h"
#include "idle_policy.h"
#include "sparsify.h"

namespace swarmlens {

GType model_enum_type () {
  // The registry's names (Model::names(), checked by the element tests), in registration order.
  static const GEnumValue values[] = {
      {0, "small CNN, grey 28x28", "cnn"},
      {1, "MobileNet-style, RGB, any input size", "mobilenet"},
      {2, "per-frame CNN and a GRU over a window of grey frames", "crnn"},
      {0, nullptr, nullptr}};
  static const GType type = g_enum_register_static ("SwarmlensModel", values);  // once, thread-safe
  return type;
}

GType criterion_enum_type () {
  static const GEnumValue values[] = {
      {gint (Criterion::TopK), "the largest magnitudes, exactly", criterion_name (Criterion::TopK)},
      {gint (Criterion::SampledTopK), "the largest magnitudes, threshold estimated on a sample",
       criterion_name (Criterion::SampledTopK)},
      {gint (Criterion::Threshold), "every entry above a fixed magnitude", criterion_name (Criterion::Threshold)},
      {gint (Criterion::RandomK), "a random share of the entries", criterion_name (Criterion::RandomK)},
      {0, nullptr, nullptr}};
  static const GType type = g_enum_register_static ("SwarmlensCriterion", values);
  return type;
}

GType value_coding_enum_type () {
  static const GEnumValue values[] = {
      {gint (ValueCoding::Fp32), "4 bytes a value", value_coding_name (ValueCoding::Fp32)},
      {gint (ValueCoding::Fp16), "2 bytes a value", value_coding_name (ValueCoding::Fp16)},
      {gint (ValueCoding::Int8), "1 byte a value and a scale per update", value_coding_name (ValueCoding::Int8)},
      {gint (ValueCoding::Sign), "a bit a value and a magnitude per block of 64", value_coding_name (ValueCoding::Sign)},
      {0, nullptr, nullptr}};
  static const GType type = g_enum_register_static ("SwarmlensValueCoding", values);
  return type;
}

GType idle_policy_enum_type () {
  static const GEnumValue values[] = {
      {gint (IdleMode::Always), "train whenever there are frames", idle_mode_name (IdleMode::Always)},
      {gint (IdleMode::Load), "only while other processes leave the CPUs idle enough", idle_mode_name (IdleMode::Load)},
      {gint (IdleMode::Schedule), "only within the daily schedule", idle_mode_name (IdleMode::Schedule)},
      {gint (IdleMode::LoadAndSchedule), "both", idle_mode_name (IdleMode::LoadAndSchedule)},
      {0, nullptr, nullptr}};
  static const GType type = g_enum_register_static ("SwarmlensIdlePolicy", values);
  return type;
}

GType data_split_enum_type () {
  static const GEnumValue values[] = {
      {0, "the training images", "train"},
      {1, "the held-out test images", "test"},
      {0, nullptr, nullptr}};
  static const GType type = g_enum_register_static ("SwarmlensDataSplit", values);
  return type;
}

std::string enum_nick (GType type, gint value) {
  GEnumClass *c = G_ENUM_CLASS (g_type_class_ref (type));
  const GEnumValue *v = g_enum_get_value (c, value);
  std::string nick = v ? v->value_nick : "";
  g_type_class_unref (c);
  return nick;
}

gint enum_value (GType type, const std::string & nick) {
  GEnumClass *c = G_ENUM_CLASS (g_type_class_ref (type));
  const GEnumValue *v = g_enum_get_value_by_nick (c, nick.c_str ());
  const gint value = v ? v->value : c->values[0].value;
  g_type_class_unref (c);
  return value;
}

}  // namespace swarmlens
