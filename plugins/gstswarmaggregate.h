#pragma once

#include <gst/base/gstaggregator.h>

G_BEGIN_DECLS
#define GST_TYPE_SWARM_AGGREGATE (gst_swarm_aggregate_get_type ())
G_DECLARE_FINAL_TYPE (GstSwarmAggregate, gst_swarm_aggregate, GST, SWARM_AGGREGATE, GstAggregator)
GST_ELEMENT_REGISTER_DECLARE (swarmaggregate);
G_END_DECLS
