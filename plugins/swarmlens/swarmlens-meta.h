/* Swarmlens buffer metas, for applications: the true label of a frame (swarmsrc, swarmlabel) and the
 * classification swarmclassify attached to it. Header only: an application reads the metas without
 * linking the plugin, looking their API types up by name once the plugin is loaded.
 *
 *   cc app.c $(pkg-config --cflags --libs swarmlens-meta)      (pulls in gstreamer-1.0)
 *
 *   const GstSwarmClassificationMeta *c = swarmlens_buffer_get_classification_meta (buffer);
 *   if (c) printf ("class %d, confidence %.2f, model v%" G_GUINT64_FORMAT "\n", c->label, c->confidence,
 *                  c->model_version);
 *
 * samples/c/read-metas.c is a whole program (a pad probe on the sink); the tests build and run it. */
#ifndef SWARMLENS_META_H
#define SWARMLENS_META_H

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

/* The frame's true label, or NULL (no label, or the plugin is not loaded yet). */
static inline const GstSwarmLabelMeta *
swarmlens_buffer_get_label_meta (GstBuffer * buffer)
{
  GType api = g_type_from_name (GST_SWARM_LABEL_META_API_NAME);
  return api ? (const GstSwarmLabelMeta *) gst_buffer_get_meta (buffer, api) : NULL;
}

/* swarmclassify's prediction for the frame, or NULL (not classified yet: no model, or the plugin is
 * not loaded yet). */
static inline const GstSwarmClassificationMeta *
swarmlens_buffer_get_classification_meta (GstBuffer * buffer)
{
  GType api = g_type_from_name (GST_SWARM_CLASSIFICATION_META_API_NAME);
  return api ? (const GstSwarmClassificationMeta *) gst_buffer_get_meta (buffer, api) : NULL;
}

G_END_DECLS

#endif /* SWARMLENS_META_H */
