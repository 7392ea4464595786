#pragma once

#include <gst/base/gstpushsrc.h>

G_BEGIN_DECLS
#define GST_TYPE_SWARM_SRC (gst_swarm_src_get_type ())
G_DECLARE_FINAL_TYPE (GstSwarmSrc, gst_swarm_src, GST, SWARM_SRC, GstPushSrc)
GST_ELEMENT_REGISTER_DECLARE (swarmsrc);
G_END_DECLS
