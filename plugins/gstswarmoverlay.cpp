/**
 * SECTION:element-swarmoverlay
 *
 * Draws a semi-transparent panel onto the video, scaled to the frame size. It shows the predicted
 * class and its confidence (green when right, red when wrong, where the true label is known), the
 * live accuracy over a rolling window of labelled frames, the model version, the uplink bytes,
 * compression ratio and training state (training, paused: device busy, paused: outside schedule) of
 * the swarmtrain with the same `model-id`, and the frame rate.
 *
 * |[
 * gst-launch-1.0 swarmsrc width=280 height=280 format=BGRx ! swarmtrain ! swarmclassify ! swarmoverlay ! videoconvert ! autovideosink
 * ]|
 */
#include "gstswarmoverlay.h"

#include <gst/video/video.h>

#include <deque>
#include <mutex>
#include <opencv2/imgproc.hpp>
#include <string>
#include <vector>

#include "dataset.h"
#include "frame.h"
#include "ranges.h"
#include "gstswarmmeta.h"
#include "model_hub.h"
#include "node_trainer.h"

GST_DEBUG_CATEGORY_STATIC (swarm_overlay_debug);
#define GST_CAT_DEFAULT swarm_overlay_debug

enum { PROP_0, PROP_MODEL_ID, PROP_WINDOW, PROP_LABELS_FILE };

namespace {

struct Settings {
  std::string model_id = swarmlens::NodeTrainerConfig::kDefaultModelId, labels_file;
  guint window = 200;
};

std::string human_bytes (double b) {
  const char *unit[] = {"B", "KB", "MB", "GB", "TB"};
  int u = 0;
  while (b >= 1000.0 && u < 4) b /= 1000.0, ++u;
  char s[32];
  g_snprintf (s, sizeof s, u ? "%.1f %s" : "%.0f %s", b, unit[u]);
  return s;
}

}  // namespace

struct _GstSwarmOverlay {
  GstVideoFilter parent;
  struct Private {
    std::mutex lock;  // protects settings
    Settings settings;
    // Streaming state.
    std::vector<std::string> names;  // from the labels file; empty: the model's own (class_names)
    std::deque<bool> hits;  // rolling window of (predicted == true label)
    size_t hit_count = 0;
    double fps = 0.0;
    GstClockTime last_frame = GST_CLOCK_TIME_NONE;
  } *priv;
};

G_DEFINE_TYPE (GstSwarmOverlay, gst_swarm_overlay, GST_TYPE_VIDEO_FILTER);
GST_ELEMENT_REGISTER_DEFINE (swarmoverlay, "swarmoverlay", GST_RANK_NONE, GST_TYPE_SWARM_OVERLAY);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (SWARMLENS_VIDEO_FORMATS)));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (SWARMLENS_VIDEO_FORMATS)));

static void set_property (GObject * object, guint id, const GValue * v, GParamSpec * pspec) {
  if (swarmlens::refuse_while_running (GST_ELEMENT (object), pspec, v)) return;
  auto *self = GST_SWARM_OVERLAY (object);
  std::lock_guard<std::mutex> g (self->priv->lock);
  Settings & s = self->priv->settings;
  switch (id) {
    case PROP_MODEL_ID: s.model_id = g_value_get_string (v) ? g_value_get_string (v) : ""; break;
    case PROP_WINDOW: s.window = g_value_get_uint (v); break;
    case PROP_LABELS_FILE: s.labels_file = g_value_get_string (v) ? g_value_get_string (v) : ""; break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
  }
}

static void get_property (GObject * object, guint id, GValue * v, GParamSpec * pspec) {
  auto *self = GST_SWARM_OVERLAY (object);
  std::lock_guard<std::mutex> g (self->priv->lock);
  const Settings & s = self->priv->settings;
  switch (id) {
    case PROP_MODEL_ID: g_value_set_string (v, s.model_id.c_str ()); break;
    case PROP_WINDOW: g_value_set_uint (v, s.window); break;
    case PROP_LABELS_FILE: g_value_set_string (v, s.labels_file.c_str ()); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
  }
}

static gboolean start (GstBaseTransform * trans) {
  auto *self = GST_SWARM_OVERLAY (trans);
  if (!swarmlens::check_ranges (GST_ELEMENT (self))) return FALSE;  // before the settings lock: it reads them
  auto & p = *self->priv;
  std::string file;
  {
    std::lock_guard<std::mutex> g (p.lock);
    file = p.settings.labels_file;
  }
  p.names.clear ();
  if (!file.empty ()) {
    try {
      p.names = swarmlens::read_class_names (file);
    } catch (const std::exception & e) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("Cannot read the labels file"), ("%s", e.what ()));
      return FALSE;
    }
  }
  p.hits.clear ();
  p.hit_count = 0;
  p.fps = 0.0;
  p.last_frame = GST_CLOCK_TIME_NONE;
  return TRUE;
}

// The names of the classes: the labels file's; else the model's own, as its description says (the
// broker's class names, through the trainer sharing the model id); else Fashion-MNIST's for a model
// of its 10 classes; else none (shown as "class N").
// `model` is the hub's latest model of the id (kept alive by the caller while the names are used).
static const std::vector<std::string> & class_names (const _GstSwarmOverlay::Private & p,
    const std::shared_ptr<const swarmlens::Snapshot> & model) {
  static const std::vector<std::string> none;
  if (!p.names.empty ()) return p.names;
  if (model && !model->description.class_names.empty ()) return model->description.class_names;
  if (model && model->description.described () && model->description.classes != swarmlens::ModelSpec::kDefaultClasses)
    return none;
  return swarmlens::fashion_mnist_class_names ();
}

static GstFlowReturn transform_frame_ip (GstVideoFilter * filter, GstVideoFrame * frame) {
  auto *self = GST_SWARM_OVERLAY (filter);
  auto & p = *self->priv;
  Settings s;
  {
    std::lock_guard<std::mutex> g (p.lock);
    s = p.settings;
  }
  const auto *truth = gst_buffer_get_swarm_label_meta (frame->buffer);
  const auto *cls = gst_buffer_get_swarm_classification_meta (frame->buffer);
  if (truth && cls) {
    p.hits.push_back (truth->label == cls->label);
    p.hit_count += p.hits.back ();
    while (p.hits.size () > std::max (1u, s.window)) p.hit_count -= p.hits.front (), p.hits.pop_front ();
  }
  const GstClockTime now = gst_util_get_timestamp ();
  if (GST_CLOCK_TIME_IS_VALID (p.last_frame) && now > p.last_frame) {
    const double inst = double (GST_SECOND) / double (now - p.last_frame);
    p.fps = p.fps == 0.0 ? inst : 0.9 * p.fps + 0.1 * inst;
  }
  p.last_frame = now;

  std::vector<std::string> lines;
  if (cls) {
    const auto model = p.names.empty () ? swarmlens::ModelHub::instance ().latest (s.model_id) : nullptr;
    const std::vector<std::string> & names = class_names (p, model);
    const std::string name = cls->label >= 0 && size_t (cls->label) < names.size ()
        ? names[size_t (cls->label)] : "class " + std::to_string (cls->label);
    lines.push_back (name + "  " + std::to_string (int (cls->confidence * 100.0f + 0.5f)) + "%");
  } else {
    lines.push_back ("no model yet");
  }
  if (!p.hits.empty ())
    lines.push_back ("accuracy " + std::to_string (int (1000.0 * p.hit_count / p.hits.size ()) / 10) + "." +
        std::to_string (int (1000.0 * p.hit_count / p.hits.size ()) % 10) + "% (" + std::to_string (p.hits.size ()) + ")");
  if (cls) lines.push_back ("model v" + std::to_string (cls->model_version));
  swarmlens::TrainStats st;
  if (swarmlens::ModelHub::instance ().stats (s.model_id, st)) {
    if (st.steps > 0) {
      char ratio[32];
      g_snprintf (ratio, sizeof ratio, "%.0fx", st.compression_ratio ());
      lines.push_back ("up " + human_bytes (double (st.bytes_out)) + "  " + ratio);
    }
    if (!st.last_refusal.empty ())
      lines.push_back ("updates refused: " + st.last_refusal + " (" + std::to_string (st.updates_refused) + ")");
    if (st.diverged) lines.push_back ("not learning: non-finite gradients (" + std::to_string (st.skipped_batches) + " batches skipped)");
    else if (st.state == swarmlens::TrainState::PausedLoad) lines.push_back ("paused: device busy");
    else if (st.state == swarmlens::TrainState::OutsideSchedule) lines.push_back ("paused: outside schedule");
    else lines.push_back ("training");
  }
  char fps[32];
  g_snprintf (fps, sizeof fps, "%.1f fps", p.fps);
  lines.push_back (fps);

  const int w = GST_VIDEO_FRAME_WIDTH (frame), h = GST_VIDEO_FRAME_HEIGHT (frame);
  const int type = swarmlens::cv_type_of (GST_VIDEO_FRAME_FORMAT (frame));
  cv::Mat img (h, w, type, GST_VIDEO_FRAME_PLANE_DATA (frame, 0), size_t (GST_VIDEO_FRAME_PLANE_STRIDE (frame, 0)));

  // Fonts scale with the frame: readable on a 280x280 upscaled digit and on 1080p.
  const double scale = std::clamp (std::min (w, h) / 700.0, 0.3, 2.0);
  const int thick = std::max (1, int (scale * 2.0 + 0.5));
  int baseline = 0;
  const cv::Size em = cv::getTextSize ("Mg", cv::FONT_HERSHEY_SIMPLEX, scale, thick, &baseline);
  const int line_h = em.height + baseline + std::max (2, em.height / 2), pad = std::max (2, em.height / 2);
  int panel_w = 0;
  for (const auto & l : lines)
    panel_w = std::max (panel_w, cv::getTextSize (l, cv::FONT_HERSHEY_SIMPLEX, scale, thick, &baseline).width);
  const cv::Rect panel = cv::Rect (0, 0, std::min (w, panel_w + 2 * pad), std::min (h, int (lines.size ()) * line_h + pad)) &
      cv::Rect (0, 0, w, h);
  if (panel.area () > 0) {
    cv::Mat roi = img (panel);
    roi.convertTo (roi, -1, 0.35, 0);  // darken: a semi-transparent black panel
  }
  auto colour = [&] (int r, int g, int b) {
    if (type == CV_8UC1) return cv::Scalar ((r * 77 + g * 150 + b * 29) >> 8);
    if (type == CV_8UC3) return cv::Scalar (r, g, b);
    return cv::Scalar (b, g, r, 255);  // BGRx
  };
  for (size_t i = 0; i < lines.size (); ++i) {
    cv::Scalar c = colour (255, 255, 255);
    if (i == 0 && cls && truth) c = truth->label == cls->label ? colour (80, 255, 80) : colour (255, 90, 90);
    cv::putText (img, lines[i], cv::Point (pad, int (i + 1) * line_h - baseline), cv::FONT_HERSHEY_SIMPLEX,
        scale, c, thick, cv::LINE_AA);
  }
  return GST_FLOW_OK;
}

static void finalize (GObject * object) {
  delete GST_SWARM_OVERLAY (object)->priv;
  G_OBJECT_CLASS (gst_swarm_overlay_parent_class)->finalize (object);
}

static void gst_swarm_overlay_class_init (GstSwarmOverlayClass * klass) {
  auto *gobject = G_OBJECT_CLASS (klass);
  auto *element = GST_ELEMENT_CLASS (klass);
  gobject->set_property = set_property;
  gobject->get_property = get_property;
  gobject->finalize = finalize;
  const auto ready = GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const auto playing = GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_property (gobject, PROP_MODEL_ID, g_param_spec_string ("model-id", "Model id",
      "Show uplink bytes and compression ratio of the swarmtrain with this id",
      swarmlens::NodeTrainerConfig::kDefaultModelId, playing));
  g_object_class_install_property (gobject, PROP_WINDOW, swarmlens::checked_uint ("window", "Window",
      "Labelled frames in the rolling accuracy", 1, 100000, 200, playing));
  g_object_class_install_property (gobject, PROP_LABELS_FILE, g_param_spec_string ("labels-file",
      "Labels file", "Class names, one per line (empty = the model's own, from the broker's description of it; "
      "Fashion-MNIST's for a 10-class model without names)", "", ready));
  gst_element_class_add_static_pad_template (element, &sink_template);
  gst_element_class_add_static_pad_template (element, &src_template);
  gst_element_class_set_static_metadata (element, "Swarmlens overlay", "Filter/Effect/Video",
      "Draws the predicted class, live accuracy, model version, uplink bytes, training state and fps onto the video",
      "Swarmlens developers");
  GST_BASE_TRANSFORM_CLASS (klass)->start = start;
  GST_VIDEO_FILTER_CLASS (klass)->transform_frame_ip = transform_frame_ip;
  GST_DEBUG_CATEGORY_INIT (swarm_overlay_debug, "swarmoverlay", 0, "Swarmlens overlay");
}

static void gst_swarm_overlay_init (GstSwarmOverlay * self) {
  self->priv = new _GstSwarmOverlay::Private ();
}
