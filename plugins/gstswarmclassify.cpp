/**
 * SECTION:element-swarmclassify
 *
 * Classifies each frame (or every Nth) with the current shared model, and attaches a
 * GstSwarmClassificationMeta: label index, confidence and model version. The model comes from a
 * snapshot file (`location`), or live from a swarmtrain in the same process with the same
 * `model-id`, or with `nats-url` the global model from the aggregator (subject
 * `swarmlens.<model-id>.model`, starting from the one kept in JetStream). A newer model is swapped in between frames, without dropping any. Each swap emits the
 * `model-updated` signal and posts a `swarmclassify-model` element message. A model for another layout
 * is refused with a warning, and the old one is kept.
 *
 * `backend=opencv` classifies with a model exported by `swarmlens export --format onnx` through
 * OpenCV's DNN module instead of LibTorch (`location` names the .onnx file; its input size and
 * classes come from the file); that model is fixed, so export again for a newer one.
 * A temporal model (`model=crnn`) classifies the stream's last `window` frames; frames before the
 * first full window carry no classification.
 *
 * |[
 * gst-launch-1.0 swarmsrc set=test ! swarmclassify location=model.swm ! swarmoverlay ! autovideosink
 * gst-launch-1.0 v4l2src ! videoconvert ! swarmclassify nats-url=nats://gateway:4222 ! swarmoverlay ! autovideosink
 * gst-launch-1.0 swarmsrc set=test ! swarmclassify backend=opencv location=model.onnx ! swarmoverlay ! autovideosink
 * ]|
 */
#include "gstswarmclassify.h"

#include <gst/video/video.h>

#include <memory>
#include <mutex>
#include <string>

#include "classifier.h"
#include "dnn_classifier.h"
#include "camera_model.h"
#include "frame.h"
#include "ranges.h"
#include "frame_window.h"
#include "gstswarmmeta.h"
#include "model_hub.h"
#include "modelprops.h"
#include "natsprops.h"

GST_DEBUG_CATEGORY_STATIC (swarm_classify_debug);
#define GST_CAT_DEFAULT swarm_classify_debug

enum { PROP_0, PROP_MODEL /* and the model properties after it: modelprops.h */,
  PROP_LOCATION = PROP_MODEL + swarmlens::kModelProperties, PROP_EVERY, PROP_WINDOW, PROP_BACKEND, PROP_MESSAGE_INTERVAL,
  PROP_NATS_URL /* and the kNatsProperties - 1 after it: natsprops.h */ };

typedef enum { BACKEND_LIBTORCH, BACKEND_OPENCV } Backend;

#define GST_TYPE_SWARM_CLASSIFY_BACKEND (swarm_classify_backend_get_type ())
static GType swarm_classify_backend_get_type (void) {
  static GType t = 0;
  static const GEnumValue values[] = {
    {BACKEND_LIBTORCH, "LibTorch, with a snapshot file or the live model", "libtorch"},
    {BACKEND_OPENCV, "OpenCV DNN, with an exported ONNX file (swarmlens export)", "opencv"},
    {0, nullptr, nullptr}};
  if (g_once_init_enter (&t)) g_once_init_leave (&t, g_enum_register_static ("GstSwarmClassifyBackend", values));
  return t;
}
enum { SIGNAL_MODEL_UPDATED, N_SIGNALS };
static guint signals[N_SIGNALS];

namespace {

struct Settings : swarmlens::ModelSettings {
  std::string location;
  guint every = 1;
  guint window = guint (swarmlens::WindowConfig {}.window);
  Backend backend = BACKEND_LIBTORCH;
  guint message_interval = 0;  // ms between swarmclassify-prediction messages; 0 = none
  swarmlens::NatsSettings nats;
};

}  // namespace

struct _GstSwarmClassify {
  GstBaseTransform parent;
  struct Private {
    std::mutex lock;  // protects settings
    Settings settings;
    // Streaming state (start/stop and the streaming thread).
    std::unique_ptr<swarmlens::Classifier> classifier;  // backend=libtorch
    std::unique_ptr<swarmlens::DnnClassifier> dnn;     // backend=opencv
    swarmlens::ModelSpec spec;
    swarmlens::FrameWindow window;                      // temporal models: the stream's last frames
    std::string model_id;
    std::unique_ptr<swarmlens::NodeLink> link;  // with nats-url: the model from the aggregator
    guint every = 1;
    guint64 frames = 0;
    GstClockTime last_message = GST_CLOCK_TIME_NONE;  // when the last prediction message went out
    swarmlens::Classification last;
    bool have_last = false;
    bool warned_layout = false;
    GstVideoInfo info;
    std::vector<float> input;
  } *priv;
};

G_DEFINE_TYPE (GstSwarmClassify, gst_swarm_classify, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (swarmclassify, "swarmclassify", GST_RANK_NONE, GST_TYPE_SWARM_CLASSIFY);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (SWARMLENS_VIDEO_FORMATS)));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (SWARMLENS_VIDEO_FORMATS)));

static void set_property (GObject * object, guint id, const GValue * v, GParamSpec * pspec) {
  if (swarmlens::refuse_while_running (GST_ELEMENT (object), pspec, v)) return;
  auto *self = GST_SWARM_CLASSIFY (object);
  std::lock_guard<std::mutex> g (self->priv->lock);
  Settings & s = self->priv->settings;
  auto str = [&] { return std::string (g_value_get_string (v) ? g_value_get_string (v) : ""); };
  switch (id) {
    case PROP_LOCATION: s.location = str (); break;
    case PROP_EVERY: s.every = g_value_get_uint (v); break;
    case PROP_WINDOW: s.window = g_value_get_uint (v); break;
    case PROP_BACKEND: s.backend = Backend (g_value_get_enum (v)); break;
    case PROP_MESSAGE_INTERVAL: s.message_interval = g_value_get_uint (v); break;
    default:
      if (!swarmlens::model_set_property (s, PROP_MODEL, id, v) && !swarmlens::nats_set_property (s.nats, PROP_NATS_URL, id, v))
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
  }
}

static void get_property (GObject * object, guint id, GValue * v, GParamSpec * pspec) {
  auto *self = GST_SWARM_CLASSIFY (object);
  std::lock_guard<std::mutex> g (self->priv->lock);
  const Settings & s = self->priv->settings;
  switch (id) {
    case PROP_LOCATION: g_value_set_string (v, s.location.c_str ()); break;
    case PROP_EVERY: g_value_set_uint (v, s.every); break;
    case PROP_WINDOW: g_value_set_uint (v, s.window); break;
    case PROP_BACKEND: g_value_set_enum (v, s.backend); break;
    case PROP_MESSAGE_INTERVAL: g_value_set_uint (v, s.message_interval); break;
    default:
      if (!swarmlens::model_get_property (s, PROP_MODEL, id, v) && !swarmlens::nats_get_property (s.nats, PROP_NATS_URL, id, v))
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
  }
}

static gboolean start (GstBaseTransform * trans) {
  auto *self = GST_SWARM_CLASSIFY (trans);
  if (!swarmlens::check_ranges (GST_ELEMENT (self))) return FALSE;  // before the settings lock: it reads them
  auto & p = *self->priv;
  Settings s;
  {
    std::lock_guard<std::mutex> g (p.lock);
    s = p.settings;
  }
  if (s.backend == BACKEND_OPENCV && s.device != "cpu") {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Cannot classify on device \"%s\"", s.device.c_str ()),
        ("backend=opencv runs on the CPU; device=cuda is for backend=libtorch"));
    return FALSE;
  }
  if (const auto why = swarmlens::device_problem (s.device); !why.empty ()) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Cannot classify on device \"%s\"", s.device.c_str ()),
        ("%s", why.c_str ()));
    return FALSE;
  }
  if (s.backend == BACKEND_OPENCV) {
    // The exported file says what it takes; no live model (export again for a newer one).
    if (s.location.empty ()) {
      GST_ELEMENT_ERROR (self, RESOURCE, NOT_FOUND, ("backend=opencv needs an ONNX file in location"),
          ("write one with: swarmlens export --format onnx --snapshot MODEL.swm -o model.onnx"));
      return FALSE;
    }
    try {
      p.dnn = std::make_unique<swarmlens::DnnClassifier> (s.location);
    } catch (const std::exception & e) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("Cannot load the ONNX model"), ("%s", e.what ()));
      return FALSE;
    }
    p.spec = p.dnn->spec ();
    p.model_id.clear ();
    GST_INFO_OBJECT (self, "OpenCV DNN: %s %dx%dx%d, version %" G_GUINT64_FORMAT, p.spec.name.c_str (),
        p.spec.channels, p.spec.height, p.spec.width, p.dnn->info ().version);
  } else {
    try {
      p.classifier = std::make_unique<swarmlens::Classifier> (
          swarmlens::camera_model_spec (s.model, s.input_width, s.input_height, int (s.window), s.classes), 1, s.device);
      if (!s.location.empty ()) p.classifier->load_file (s.location);
    } catch (const std::exception & e) {
      p.classifier.reset ();
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("Cannot load the model"), ("%s", e.what ()));
      return FALSE;
    }
    p.spec = p.classifier->spec ();
    p.model_id = s.location.empty () ? s.model_id : std::string ();
  }
  p.window.reset (swarmlens::sample_size (p.spec) / size_t (p.spec.window), p.spec.window);
  if (!s.nats.url.empty () && s.location.empty ()) {
    p.link = swarmlens::nats_open_link (GST_ELEMENT (self), s.nats, s.model_id, p.spec, {});
    if (!p.link) {
      p.classifier.reset ();
      return FALSE;
    }
  }
  p.frames = 0;
  p.have_last = false;
  p.last_message = GST_CLOCK_TIME_NONE;
  p.warned_layout = false;
  return TRUE;
}

static gboolean stop (GstBaseTransform * trans) {
  GST_SWARM_CLASSIFY (trans)->priv->link.reset ();
  GST_SWARM_CLASSIFY (trans)->priv->classifier.reset ();
  GST_SWARM_CLASSIFY (trans)->priv->dnn.reset ();
  return TRUE;
}

static gboolean sink_event (GstBaseTransform * trans, GstEvent * event) {
  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP || GST_EVENT_TYPE (event) == GST_EVENT_STREAM_START) {
    GST_SWARM_CLASSIFY (trans)->priv->window.clear ();  // a window never spans a seek or another stream
    GST_SWARM_CLASSIFY (trans)->priv->have_last = false;
  }
  return GST_BASE_TRANSFORM_CLASS (gst_swarm_classify_parent_class)->sink_event (trans, event);
}

static gboolean set_caps (GstBaseTransform * trans, GstCaps * incaps, GstCaps *) {
  auto *self = GST_SWARM_CLASSIFY (trans);
  return swarmlens::video_info_from_caps (GST_ELEMENT (self), incaps, &self->priv->info);
}

// Swap in a newer live model if the link or the hub has one (a parameter copy between two frames).
static void maybe_swap (GstSwarmClassify * self) {
  auto & p = *self->priv;
  if (p.model_id.empty ()) return;
  auto snap = p.link ? p.link->latest () : swarmlens::ModelHub::instance ().latest (p.model_id);
  if (!snap || (p.classifier->loaded () && snap->version <= p.classifier->version ())) return;
  std::string why;
  if (p.classifier->update (*snap, &why)) {
    const guint64 version = p.classifier->version ();
    g_signal_emit (self, signals[SIGNAL_MODEL_UPDATED], 0, version);
    gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self),
        gst_structure_new ("swarmclassify-model", "model-version", G_TYPE_UINT64, version, nullptr)));
  } else if (!why.empty () && !p.warned_layout) {
    p.warned_layout = true;
    GST_ELEMENT_WARNING (self, STREAM, WRONG_TYPE, ("Refused a model for another layout"), ("%s", why.c_str ()));
  }
}

static GstFlowReturn transform_ip (GstBaseTransform * trans, GstBuffer * buf) {
  auto *self = GST_SWARM_CLASSIFY (trans);
  auto & p = *self->priv;
  guint interval;
  {
    std::lock_guard<std::mutex> g (p.lock);
    p.every = std::max (1u, p.settings.every);
    interval = p.settings.message_interval;
  }
  if (p.classifier) maybe_swap (self);
  if (p.classifier && !p.classifier->loaded ()) return GST_FLOW_OK;  // no model yet: pass the frame on unlabelled
  const bool temporal = swarmlens::is_temporal (p.spec.name);
  const bool due = p.frames++ % p.every == 0 || !p.have_last;
  if (temporal || due) {
    if (!swarmlens::buffer_to_input (GST_ELEMENT (self), &p.info, buf, p.spec, p.input)) return GST_FLOW_ERROR;
  }
  // A temporal model sees every frame (its window must be continuous) and answers once it is full.
  const bool ready = !temporal || p.window.push (p.input.data ());
  if (due && ready) {
    const float *sample = temporal ? p.window.sample ().data () : p.input.data ();
    try {
      p.last = p.dnn ? p.dnn->classify (sample) : p.classifier->classify (sample);
      p.have_last = true;
    } catch (const std::exception & e) {
      GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Classification failed"), ("%s", e.what ()));
      return GST_FLOW_ERROR;
    }
  }
  if (!p.have_last) return GST_FLOW_OK;  // the first window is not full yet
  const guint64 version = p.dnn ? p.dnn->info ().version : p.classifier->version ();
  gst_buffer_add_swarm_classification_meta (buf, p.last.label, p.last.confidence, version);
  const GstClockTime now = gst_util_get_timestamp ();
  if (interval > 0 && (!GST_CLOCK_TIME_IS_VALID (p.last_message) || now - p.last_message >= interval * GST_MSECOND)) {
    p.last_message = now;  // for scripts: the prediction without reading metas
    gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self),
        gst_structure_new ("swarmclassify-prediction", "label", G_TYPE_INT, p.last.label,
            "confidence", G_TYPE_DOUBLE, double (p.last.confidence), "model-version", G_TYPE_UINT64, version,
            "pts", G_TYPE_UINT64, guint64 (GST_BUFFER_PTS (buf)), nullptr)));
  }
  return GST_FLOW_OK;
}

static void finalize (GObject * object) {
  delete GST_SWARM_CLASSIFY (object)->priv;
  G_OBJECT_CLASS (gst_swarm_classify_parent_class)->finalize (object);
}

static void gst_swarm_classify_class_init (GstSwarmClassifyClass * klass) {
  auto *gobject = G_OBJECT_CLASS (klass);
  auto *element = GST_ELEMENT_CLASS (klass);
  auto *base = GST_BASE_TRANSFORM_CLASS (klass);
  gobject->set_property = set_property;
  gobject->get_property = get_property;
  gobject->finalize = finalize;
  const auto ready = GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const auto playing = GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING);
  const Settings d;  // the defaults
  swarmlens::model_install_properties (gobject, PROP_MODEL, {
      "Model registry name: cnn, mobilenet or crnn (recurrent, over a window of frames); backend=libtorch",
      "Take the live model of the swarmtrain sharing this id in this process, or with nats-url the global model "
      "of this id (when location is empty)",
      "frames are scaled to it (cnn: 28)",
      "Compute device for backend=libtorch: cpu, cuda or cuda:N (a LibTorch built with CUDA, as JetPack's "
      "on a Jetson; otherwise an error at start)"});
  g_object_class_install_property (gobject, PROP_LOCATION, g_param_spec_string ("location", "Location",
      "Model file: a snapshot (.swm) with backend=libtorch (empty = the live model by model-id), an exported "
      ".onnx file with backend=opencv", "", ready));
  g_object_class_install_property (gobject, PROP_WINDOW, swarmlens::checked_uint ("window", "Window",
      "Temporal models (crnn): frames per sample, the stream's last ones (as swarmtrain's window)", 1, 64, d.window, ready));
  g_object_class_install_property (gobject, PROP_BACKEND, g_param_spec_enum ("backend", "Backend",
      "Inference runtime: libtorch (snapshots, live models) or opencv (OpenCV DNN on an exported ONNX file; "
      "model, input size and classes come from the file)", GST_TYPE_SWARM_CLASSIFY_BACKEND, BACKEND_LIBTORCH, ready));
  swarmlens::nats_install_properties (gobject, PROP_NATS_URL);
  g_object_class_install_property (gobject, PROP_EVERY, swarmlens::checked_uint ("every", "Every",
      "Classify every Nth frame; the others carry the last result", 1, 1000, d.every, playing));
  g_object_class_install_property (gobject, PROP_MESSAGE_INTERVAL, swarmlens::checked_uint ("message-interval",
      "Message interval", "Milliseconds between swarmclassify-prediction element messages on the bus (label, "
      "confidence, model-version, pts: the prediction for scripts, e.g. gst-launch-1.0 -m); 0 = none",
      0, 3600000, d.message_interval, playing));
  /**
   * GstSwarmClassify::model-updated:
   * @version: the model version now in use
   */
  signals[SIGNAL_MODEL_UPDATED] = g_signal_new ("model-updated", G_TYPE_FROM_CLASS (klass),
      G_SIGNAL_RUN_LAST, 0, nullptr, nullptr, nullptr, G_TYPE_NONE, 1, G_TYPE_UINT64);

  gst_element_class_add_static_pad_template (element, &sink_template);
  gst_element_class_add_static_pad_template (element, &src_template);
  gst_element_class_set_static_metadata (element, "Swarmlens classifier", "Filter/Analyzer/Video",
      "Classifies frames with the shared model (hot-swapped when a newer one arrives) and attaches a "
      "GstSwarmClassificationMeta", "Swarmlens developers");
  base->start = start;
  base->stop = stop;
  base->set_caps = set_caps;
  base->transform_ip = transform_ip;
  base->sink_event = sink_event;
  gst_type_mark_as_plugin_api (GST_TYPE_SWARM_CLASSIFY_BACKEND, GstPluginAPIFlags (0));
  GST_DEBUG_CATEGORY_INIT (swarm_classify_debug, "swarmclassify", 0, "Swarmlens classifier");
}

static void gst_swarm_classify_init (GstSwarmClassify * self) {
  self->priv = new _GstSwarmClassify::Private ();
  gst_base_transform_set_in_place (GST_BASE_TRANSFORM (self), TRUE);
}
