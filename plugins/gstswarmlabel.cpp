/**
 * SECTION:element-swarmlabel
 *
 * Attaches a GstSwarmLabelMeta to each frame of a decoded, labelled video from a sidecar file of
 * "pts_ns,label" lines (as `swarmsrc labels-out=` writes them). A frame takes the label whose
 * timestamp is nearest its own, within half a frame. Frames with no label nearby pass unlabelled.
 *
 * |[
 * gst-launch-1.0 filesrc location=shard.webm ! matroskademux ! vp8dec ! videoconvert ! swarmlabel location=shard.labels ! swarmtrain ! fakesink
 * ]|
 */
#include "gstswarmlabel.h"

#include <gst/video/video.h>

#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <string>

#include "frame.h"
#include "gstswarmmeta.h"

GST_DEBUG_CATEGORY_STATIC (swarm_label_debug);
#define GST_CAT_DEFAULT swarm_label_debug

enum { PROP_0, PROP_LOCATION };

struct _GstSwarmLabel {
  GstBaseTransform parent;
  struct Private {
    std::mutex lock;  // protects location
    std::string location;
    std::map<guint64, gint> labels;  // pts -> label; streaming thread after start()
    GstClockTime tolerance = 0;
  } *priv;
};

G_DEFINE_TYPE (GstSwarmLabel, gst_swarm_label, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (swarmlabel, "swarmlabel", GST_RANK_NONE, GST_TYPE_SWARM_LABEL);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (SWARMLENS_VIDEO_FORMATS)));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (SWARMLENS_VIDEO_FORMATS)));

static void set_property (GObject * object, guint id, const GValue * v, GParamSpec * pspec) {
  auto *self = GST_SWARM_LABEL (object);
  std::lock_guard<std::mutex> g (self->priv->lock);
  if (id == PROP_LOCATION) self->priv->location = g_value_get_string (v) ? g_value_get_string (v) : "";
  else G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static void get_property (GObject * object, guint id, GValue * v, GParamSpec * pspec) {
  auto *self = GST_SWARM_LABEL (object);
  std::lock_guard<std::mutex> g (self->priv->lock);
  if (id == PROP_LOCATION) g_value_set_string (v, self->priv->location.c_str ());
  else G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
}

static gboolean start (GstBaseTransform * trans) {
  auto *self = GST_SWARM_LABEL (trans);
  std::string path;
  {
    std::lock_guard<std::mutex> g (self->priv->lock);
    path = self->priv->location;
  }
  std::ifstream f (path);
  if (!f) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("Cannot read the labels file"), ("%s", path.c_str ()));
    return FALSE;
  }
  auto & labels = self->priv->labels;
  labels.clear ();
  int line_no = 0;
  for (std::string line; std::getline (f, line);) {
    ++line_no;
    if (line.empty () || line[0] == '#') continue;
    std::istringstream in (line);
    guint64 pts = 0;
    gint label = -1;
    char comma = 0;
    if (!(in >> pts >> comma >> label) || comma != ',' || label < 0) {
      GST_ELEMENT_ERROR (self, STREAM, DECODE, ("Malformed labels file"), ("%s:%d: expected pts_ns,label", path.c_str (), line_no));
      return FALSE;
    }
    labels[pts] = label;
  }
  return TRUE;
}

static gboolean set_caps (GstBaseTransform * trans, GstCaps * incaps, GstCaps *) {
  GstVideoInfo info;
  if (!gst_video_info_from_caps (&info, incaps)) return FALSE;
  GST_SWARM_LABEL (trans)->priv->tolerance = info.fps_n > 0
      ? gst_util_uint64_scale_int (GST_SECOND, info.fps_d, 2 * info.fps_n) : GST_MSECOND;
  return TRUE;
}

static GstFlowReturn transform_ip (GstBaseTransform * trans, GstBuffer * buf) {
  auto & p = *GST_SWARM_LABEL (trans)->priv;
  const GstClockTime pts = GST_BUFFER_PTS (buf);
  if (!GST_CLOCK_TIME_IS_VALID (pts) || p.labels.empty ()) return GST_FLOW_OK;
  auto it = p.labels.lower_bound (pts);
  auto best = it;
  if (it == p.labels.end () || (it != p.labels.begin () && pts - std::prev (it)->first < it->first - pts)) best = std::prev (it);
  const GstClockTime dist = best->first > pts ? best->first - pts : pts - best->first;
  if (dist <= p.tolerance) gst_buffer_add_swarm_label_meta (buf, best->second);
  return GST_FLOW_OK;
}

static void finalize (GObject * object) {
  delete GST_SWARM_LABEL (object)->priv;
  G_OBJECT_CLASS (gst_swarm_label_parent_class)->finalize (object);
}

static void gst_swarm_label_class_init (GstSwarmLabelClass * klass) {
  auto *gobject = G_OBJECT_CLASS (klass);
  auto *element = GST_ELEMENT_CLASS (klass);
  auto *base = GST_BASE_TRANSFORM_CLASS (klass);
  gobject->set_property = set_property;
  gobject->get_property = get_property;
  gobject->finalize = finalize;
  g_object_class_install_property (gobject, PROP_LOCATION, g_param_spec_string ("location", "Location",
      "Sidecar labels file: \"pts_ns,label\" lines, # comments", "",
      GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY)));
  gst_element_class_add_static_pad_template (element, &sink_template);
  gst_element_class_add_static_pad_template (element, &src_template);
  gst_element_class_set_static_metadata (element, "Swarmlens labeller", "Filter/Video",
      "Attaches true labels to decoded video frames from a sidecar file keyed by timestamp",
      "Swarmlens developers");
  base->start = start;
  base->set_caps = set_caps;
  base->transform_ip = transform_ip;
  GST_DEBUG_CATEGORY_INIT (swarm_label_debug, "swarmlabel", 0, "Swarmlens labeller");
}

static void gst_swarm_label_init (GstSwarmLabel * self) {
  self->priv = new _GstSwarmLabel::Private ();
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}
