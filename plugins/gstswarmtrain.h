#pragma once

#include <gst/base/gstbasetransform.h>

G_BEGIN_DECLS
#define GST_TYPE_SWARM_TRAIN (gst_swarm_train_get_type ())
G_DECLARE_FINAL_TYPE (GstSwarmTrain, gst_swarm_train, GST, SWARM_TRAIN, GstBaseTransform)
GST_ELEMENT_REGISTER_DECLARE (swarmtrain);
G_END_DECLS
