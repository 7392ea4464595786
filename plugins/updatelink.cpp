#include "updatelink.h"

#include <stdexcept>

namespace swarmlens {

GstBuffer *model_buffer_new (const Snapshot & s) {
  auto *bytes = new std::vector<uint8_t> (encode_snapshot (s));
  return gst_buffer_new_wrapped_full (GST_MEMORY_FLAG_READONLY, bytes->data (), bytes->size (), 0, bytes->size (),
      bytes, [] (gpointer p) { delete static_cast<std::vector<uint8_t> *> (p); });
}

GstEvent *model_event_new (GstBuffer * snapshot) {
  return gst_event_new_custom (GST_EVENT_CUSTOM_UPSTREAM,
      gst_structure_new (kModelEventName, "snapshot", GST_TYPE_BUFFER, snapshot, nullptr));
}

GstQuery *model_query_new () {
  return gst_query_new_custom (GST_QUERY_CUSTOM, gst_structure_new_empty (kModelEventName));
}

bool is_model_query (GstQuery * query) {
  const GstStructure *s = gst_query_get_structure (query);
  return GST_QUERY_TYPE (query) == GST_QUERY_CUSTOM && s && gst_structure_has_name (s, kModelEventName);
}

void model_query_answer (GstQuery * query, GstBuffer * snapshot) {
  gst_structure_set (gst_query_writable_structure (query), "snapshot", GST_TYPE_BUFFER, snapshot, nullptr);
}

std::shared_ptr<Snapshot> model_from_buffer (GstBuffer * snapshot) {
  GstMapInfo map;
  if (!gst_buffer_map (snapshot, &map, GST_MAP_READ)) throw std::runtime_error ("model buffer: cannot map");
  try {
    auto s = std::make_shared<Snapshot> (decode_snapshot (map.data, map.size, "model from the update link"));
    gst_buffer_unmap (snapshot, &map);
    return s;
  } catch (...) {
    gst_buffer_unmap (snapshot, &map);
    throw;
  }
}

static std::shared_ptr<const Snapshot> from_structure (const GstStructure * s) {
  if (!s || !gst_structure_has_name (s, kModelEventName)) return nullptr;
  const GValue *v = gst_structure_get_value (s, "snapshot");
  if (!v || !GST_VALUE_HOLDS_BUFFER (v)) return nullptr;  // an unanswered query
  return model_from_buffer (gst_value_get_buffer (v));
}

std::shared_ptr<const Snapshot> model_from_event (GstEvent * event) {
  if (GST_EVENT_TYPE (event) != GST_EVENT_CUSTOM_UPSTREAM) return nullptr;
  return from_structure (gst_event_get_structure (event));
}

std::shared_ptr<const Snapshot> model_from_query (GstQuery * query) {
  if (!is_model_query (query)) return nullptr;
  return from_structure (gst_query_get_structure (query));
}

}  // namespace swarmlens
