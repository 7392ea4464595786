// GEnums over the trainer library's named choices, so that gst-inspect lists their values and a
// name that is not one of them is an error when the pipeline is parsed, not a warning at start.
// Each is registered once, its nicks read from the library's own names. No LibTorch here.
#pragma once

#include <gst/gst.h>

#include <string>

namespace swarmlens {

GType model_enum_type ();        // SwarmlensModel: cnn, mobilenet, crnn (Model::names())
GType criterion_enum_type ();    // SwarmlensCriterion: topk, sampled-topk, threshold, randomk
GType value_coding_enum_type (); // SwarmlensValueCoding: fp32, fp16, int8, sign
GType idle_policy_enum_type ();  // SwarmlensIdlePolicy: always, load, schedule, load+schedule
GType data_split_enum_type ();   // SwarmlensDataSplit: train, test

// The nick of an enum's value ("" if none), and the value of a nick (the first value if none).
std::string enum_nick (GType type, gint value);
gint enum_value (GType type, const std::string & nick);

}  // namespace swarmlens
