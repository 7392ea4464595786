/* Swarmlens buffer metas: the true label of a frame, and the classification of a frame.
 * Registered without tags, so videoconvert/videoscale copy them; the transform function copies
 * them through any transform. Read them by API type name from code that does not link the plugin:
 * gst_buffer_get_meta (buf, g_type_from_name ("GstSwarmLabelMetaAPI")). */
#pragma once

#include <gst/gst.h>

G_BEGIN_DECLS

typedef struct {
  GstMeta meta;
  gint label; /* class index, >= 0 */
} GstSwarmLabelMeta;

typedef struct {
  GstMeta meta;
  gint label;           /* predicted class index */
  gfloat confidence;    /* softmax probability of label, 0..1 */
  guint64 model_version;
} GstSwarmClassificationMeta;

#define GST_SWARM_LABEL_META_API_NAME "GstSwarmLabelMetaAPI"
#define GST_SWARM_CLASSIFICATION_META_API_NAME "GstSwarmClassificationMetaAPI"

GType gst_swarm_label_meta_api_get_type (void);
const GstMetaInfo *gst_swarm_label_meta_get_info (void);
const GstMetaInfo *gst_swarm_classification_meta_get_info (void);
GType gst_swarm_classification_meta_api_get_type (void);

GstSwarmLabelMeta *gst_buffer_add_swarm_label_meta (GstBuffer * buffer, gint label);
GstSwarmLabelMeta *gst_buffer_get_swarm_label_meta (GstBuffer * buffer);
GstSwarmClassificationMeta *gst_buffer_add_swarm_classification_meta (GstBuffer * buffer,
    gint label, gfloat confidence, guint64 model_version);
GstSwarmClassificationMeta *gst_buffer_get_swarm_classification_meta (GstBuffer * buffer);

G_END_DECLS
