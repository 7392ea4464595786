// The link between a swarmtrain `update` pad and a swarmaggregate sink pad (docs/elements.md):
//   downstream  buffers of application/x-swarmlens-update, one encoded update (wire format v1) each;
//   upstream    a custom upstream event "swarmlens-model" whenever a newer global model exists, and
//               a custom query "swarmlens-model" that a trainer asks at start (a late joiner trains
//               on the latest model from its first step).
// Both carry the model as field "snapshot": a GstBuffer holding an encoded snapshot (SWLS). No LibTorch.
#pragma once

#include <gst/gst.h>

#include <memory>
#include <string>

#include "snapshot.h"

namespace swarmlens {

inline constexpr const char *kUpdateCaps = "application/x-swarmlens-update";
inline constexpr const char *kModelCaps = "application/x-swarmlens-model";
inline constexpr const char *kModelEventName = "swarmlens-model";

// An encoded snapshot in a buffer, to share between the events and queries of one model version.
GstBuffer *model_buffer_new (const Snapshot & s);
GstEvent *model_event_new (GstBuffer * snapshot);      // the buffer is referenced, not taken
GstQuery *model_query_new ();
void model_query_answer (GstQuery * query, GstBuffer * snapshot);
// The model an event or an answered query carries; null when it is not one of ours. Throws
// std::runtime_error for one of ours that does not decode.
std::shared_ptr<const Snapshot> model_from_event (GstEvent * event);
std::shared_ptr<const Snapshot> model_from_query (GstQuery * query);
bool is_model_query (GstQuery * query);
std::shared_ptr<Snapshot> model_from_buffer (GstBuffer * snapshot);  // throws on a bad one

}  // namespace swarmlens
