#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS
#define GST_TYPE_SWARM_CLASSIFY (gst_swarm_classify_get_type ())
G_DECLARE_FINAL_TYPE (GstSwarmClassify, gst_swarm_classify, GST, SWARM_CLASSIFY, GstBaseTransform)
GST_ELEMENT_REGISTER_DECLARE (swarmclassify);
G_END_DECLS
