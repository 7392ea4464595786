#pragma once

#include <gst/video/gstvideofilter.h>

G_BEGIN_DECLS
#define GST_TYPE_SWARM_OVERLAY (gst_swarm_overlay_get_type ())
G_DECLARE_FINAL_TYPE (GstSwarmOverlay, gst_swarm_overlay, GST, SWARM_OVERLAY, GstVideoFilter)
GST_ELEMENT_REGISTER_DECLARE (swarmoverlay);
G_END_DECLS
