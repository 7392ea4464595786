#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS
#define GST_TYPE_SWARM_LABEL (gst_swarm_label_get_type ())
G_DECLARE_FINAL_TYPE (GstSwarmLabel, gst_swarm_label, GST, SWARM_LABEL, GstBaseTransform)
GST_ELEMENT_REGISTER_DECLARE (swarmlabel);
G_END_DECLS
