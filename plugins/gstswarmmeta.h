/* Swarmlens buffer metas, the plugin's side: registration, add and get. Registered without tags, so
 * videoconvert/videoscale copy them; the transform function copies them through any transform. The
 * structs are public (swarmlens/swarmlens-meta.h, installed with a pkg-config file): applications read
 * them from there without linking the plugin. */
#pragma once

#include <gst/gst.h>

#include "swarmlens/swarmlens-meta.h"  /* the structs and API names, public */

G_BEGIN_DECLS

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
