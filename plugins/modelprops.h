// The model properties swarmtrain, swarmclassify and swarmaggregate share: model (a GEnum of the
// registry's names), model-id, input-width, input-height, classes and (where the element computes)
// device; declared once, with their
// defaults read from the trainer library's configs. Each element says in its blurbs what the model
// and the model id are to it. No LibTorch here.
#pragma once

#include <gst/gst.h>

#include <string>

namespace swarmlens {

struct ModelSettings {
  ModelSettings ();  // the trainer library's defaults
  std::string model, model_id, device;
  gint input_width, input_height;
  gint classes;  // 0 = the registry model's own (camera_model_spec)
};

struct ModelBlurbs {
  const char *model;     // what the registry name selects here
  const char *model_id;  // what the id names here
  const char *input;     // what the input size is to this element (after "Model input width: ")
  const char *device;    // nullptr: the element has no device property
};

// The ids first .. first + kModelProperties - 1 are the model properties' (device the last).
constexpr guint kModelProperties = 6;
// Installs the properties (mutable in READY).
void model_install_properties (GObjectClass * klass, guint first, const ModelBlurbs & blurbs);
// Set/get for those ids; false if the id is not one of them.
bool model_set_property (ModelSettings & s, guint first, guint id, const GValue * v);
bool model_get_property (const ModelSettings & s, guint first, guint id, GValue * v);

}  // namespace swarmlens
