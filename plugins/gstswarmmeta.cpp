#include "gstswarmmeta.h"

namespace {

const gchar *no_tags[] = {nullptr};

gboolean label_init (GstMeta * meta, gpointer, GstBuffer *) {
  reinterpret_cast<GstSwarmLabelMeta *>(meta)->label = -1;
  return TRUE;
}

/* A label belongs to the picture, not to its size or colours: copy it through every transform. */
gboolean label_transform (GstBuffer * dest, GstMeta * meta, GstBuffer *, GQuark, gpointer) {
  gst_buffer_add_swarm_label_meta (dest, reinterpret_cast<GstSwarmLabelMeta *>(meta)->label);
  return TRUE;
}

gboolean classification_init (GstMeta * meta, gpointer, GstBuffer *) {
  auto *m = reinterpret_cast<GstSwarmClassificationMeta *>(meta);
  m->label = -1;
  m->confidence = 0.0f;
  m->model_version = 0;
  return TRUE;
}

gboolean classification_transform (GstBuffer * dest, GstMeta * meta, GstBuffer *, GQuark, gpointer) {
  auto *m = reinterpret_cast<GstSwarmClassificationMeta *>(meta);
  gst_buffer_add_swarm_classification_meta (dest, m->label, m->confidence, m->model_version);
  return TRUE;
}

}  // namespace

const GstMetaInfo *gst_swarm_label_meta_get_info (void) {
  static const GstMetaInfo *info = nullptr;
  if (g_once_init_enter (&info)) {
    const GstMetaInfo *i = gst_meta_register (gst_swarm_label_meta_api_get_type (),
        "GstSwarmLabelMeta", sizeof (GstSwarmLabelMeta), label_init, nullptr, label_transform);
    g_once_init_leave (&info, i);
  }
  return info;
}

const GstMetaInfo *gst_swarm_classification_meta_get_info (void) {
  static const GstMetaInfo *info = nullptr;
  if (g_once_init_enter (&info)) {
    const GstMetaInfo *i = gst_meta_register (gst_swarm_classification_meta_api_get_type (),
        "GstSwarmClassificationMeta", sizeof (GstSwarmClassificationMeta), classification_init,
        nullptr, classification_transform);
    g_once_init_leave (&info, i);
  }
  return info;
}

GType gst_swarm_label_meta_api_get_type (void) {
  static GType type = 0;
  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register (GST_SWARM_LABEL_META_API_NAME, no_tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

GType gst_swarm_classification_meta_api_get_type (void) {
  static GType type = 0;
  if (g_once_init_enter (&type)) {
    GType t = gst_meta_api_type_register (GST_SWARM_CLASSIFICATION_META_API_NAME, no_tags);
    g_once_init_leave (&type, t);
  }
  return type;
}

GstSwarmLabelMeta *gst_buffer_add_swarm_label_meta (GstBuffer * buffer, gint label) {
  auto *m = reinterpret_cast<GstSwarmLabelMeta *>(gst_buffer_add_meta (buffer, gst_swarm_label_meta_get_info (), nullptr));
  if (m) m->label = label;
  return m;
}

GstSwarmLabelMeta *gst_buffer_get_swarm_label_meta (GstBuffer * buffer) {
  return reinterpret_cast<GstSwarmLabelMeta *>(
      gst_buffer_get_meta (buffer, gst_swarm_label_meta_api_get_type ()));
}

GstSwarmClassificationMeta *gst_buffer_add_swarm_classification_meta (GstBuffer * buffer,
    gint label, gfloat confidence, guint64 model_version) {
  auto *m = reinterpret_cast<GstSwarmClassificationMeta *>(
      gst_buffer_add_meta (buffer, gst_swarm_classification_meta_get_info (), nullptr));
  if (m) {
    m->label = label;
    m->confidence = confidence;
    m->model_version = model_version;
  }
  return m;
}

GstSwarmClassificationMeta *gst_buffer_get_swarm_classification_meta (GstBuffer * buffer) {
  return reinterpret_cast<GstSwarmClassificationMeta *>(
      gst_buffer_get_meta (buffer, gst_swarm_classification_meta_api_get_type ()));
}
