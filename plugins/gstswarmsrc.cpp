/**
 * SECTION:element-swarmsrc
 *
 * Plays a labelled dataset as a video stream: the Fashion-MNIST IDX files, or a folder of images with
 * one sub-folder per class (class index = the sub-folder's place in sorted order). Each buffer
 * carries its true label in a GstSwarmLabelMeta. The shard properties split the data over camera nodes exactly as
 * `swarmlens bench compression` does (IID, or non-IID with Dirichlet alpha). With `motion=true` it plays
 * moving Fashion-MNIST, a temporal data set (class = direction of motion), for the recurrent model.
 *
 * |[
 * gst-launch-1.0 swarmsrc shard-index=0 shard-count=4 width=280 height=280 ! videoconvert ! autovideosink
 * gst-launch-1.0 swarmsrc motion=true clip-length=24 width=280 height=280 ! videoconvert ! autovideosink
 * ]|
 */
#include "gstswarmsrc.h"

#include <gst/video/video.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <mutex>
#include <opencv2/imgproc.hpp>
#include <string>

#include "dataset.h"
#include "enums.h"
#include "frame.h"
#include "ranges.h"
#include "gstswarmmeta.h"
#include "image_folder.h"
#include "motion.h"
#include "node_trainer.h"

GST_DEBUG_CATEGORY_STATIC (swarm_src_debug);
#define GST_CAT_DEFAULT swarm_src_debug

enum { PROP_0, PROP_LOCATION, PROP_SET, PROP_SHARD_INDEX, PROP_SHARD_COUNT, PROP_ALPHA, PROP_SEED,
  PROP_WIDTH, PROP_HEIGHT, PROP_FORMAT, PROP_FPS_N, PROP_FPS_D, PROP_IS_LIVE, PROP_LOOP, PROP_LABELS_OUT,
  PROP_MOTION, PROP_CLIP_LENGTH };

#define DEFAULT_SIZE 28
#define DEFAULT_FPS 30

namespace {

struct Settings {
  std::string location = swarmlens::default_fashion_mnist_dir ();
  bool train = true;
  guint shard_index = 0, shard_count = 1;
  gdouble alpha = 0.0;
  guint64 seed = swarmlens::NodeTrainerConfig::kDefaultSeed;  // as the trainers'
  gint width = DEFAULT_SIZE, height = DEFAULT_SIZE;
  GstVideoFormat format = GST_VIDEO_FORMAT_GRAY8;
  gint fps_n = DEFAULT_FPS, fps_d = 1;
  bool is_live = false;
  bool loop = false;
  std::string labels_out;
  bool motion = false;
  guint clip_length = 16;
};

struct State {
  swarmlens::Dataset data;
  std::vector<uint32_t> order;  // this shard's samples
  size_t next = 0;
  guint64 frames = 0;
  // motion=true: the clip playing, its frame count so far, and where it is drawn.
  bool motion = false;
  guint clip_length = 16;
  uint64_t seed = 0;
  swarmlens::MotionClip clip;
  guint64 clips = 0;
  cv::Mat canvas;
  GstVideoInfo info;
  std::unique_ptr<FILE, int (*)(FILE *)> labels_out {nullptr, fclose};  // sidecar, "pts_ns,label" lines
};

}  // namespace

struct _GstSwarmSrc {
  GstPushSrc parent;
  struct Private {
    std::mutex lock;  // protects settings; taken by property setters and once in start()
    Settings settings;
    State state;      // streaming thread only (start/create/stop)
  } *priv;
};

G_DEFINE_TYPE (GstSwarmSrc, gst_swarm_src, GST_TYPE_PUSH_SRC);
GST_ELEMENT_REGISTER_DEFINE (swarmsrc, "swarmsrc", GST_RANK_NONE, GST_TYPE_SWARM_SRC);

static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (SWARMLENS_VIDEO_FORMATS)));

#define GST_TYPE_SWARM_SRC_FORMAT (swarm_src_format_get_type ())
static GType swarm_src_format_get_type (void) {
  static GType t = 0;
  static const GEnumValue values[] = {
    {GST_VIDEO_FORMAT_GRAY8, "8-bit grey", "GRAY8"},
    {GST_VIDEO_FORMAT_RGB, "24-bit RGB", "RGB"},
    {GST_VIDEO_FORMAT_BGRx, "32-bit BGRx", "BGRx"},
    {0, nullptr, nullptr}};
  if (g_once_init_enter (&t)) g_once_init_leave (&t, g_enum_register_static ("GstSwarmSrcFormat", values));
  return t;
}

static void set_property (GObject * object, guint id, const GValue * v, GParamSpec * pspec) {
  if (swarmlens::refuse_while_running (GST_ELEMENT (object), pspec, v)) return;
  auto *self = GST_SWARM_SRC (object);
  std::lock_guard<std::mutex> g (self->priv->lock);
  Settings & s = self->priv->settings;
  switch (id) {
    case PROP_LOCATION: s.location = g_value_get_string (v) ? g_value_get_string (v) : ""; break;
    case PROP_SET: s.train = g_value_get_enum (v) == 0; break;
    case PROP_SHARD_INDEX: s.shard_index = g_value_get_uint (v); break;
    case PROP_SHARD_COUNT: s.shard_count = g_value_get_uint (v); break;
    case PROP_ALPHA: s.alpha = g_value_get_double (v); break;
    case PROP_SEED: s.seed = g_value_get_uint64 (v); break;
    case PROP_WIDTH: s.width = g_value_get_int (v); break;
    case PROP_HEIGHT: s.height = g_value_get_int (v); break;
    case PROP_FORMAT: s.format = GstVideoFormat (g_value_get_enum (v)); break;
    case PROP_FPS_N: s.fps_n = g_value_get_int (v); break;
    case PROP_FPS_D: s.fps_d = g_value_get_int (v); break;
    case PROP_IS_LIVE:
      s.is_live = g_value_get_boolean (v);
      gst_base_src_set_live (GST_BASE_SRC (object), s.is_live);
      break;
    case PROP_LOOP: s.loop = g_value_get_boolean (v); break;
    case PROP_LABELS_OUT: s.labels_out = g_value_get_string (v) ? g_value_get_string (v) : ""; break;
    case PROP_MOTION: s.motion = g_value_get_boolean (v); break;
    case PROP_CLIP_LENGTH: s.clip_length = g_value_get_uint (v); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
  }
}

static void get_property (GObject * object, guint id, GValue * v, GParamSpec * pspec) {
  auto *self = GST_SWARM_SRC (object);
  std::lock_guard<std::mutex> g (self->priv->lock);
  const Settings & s = self->priv->settings;
  switch (id) {
    case PROP_LOCATION: g_value_set_string (v, s.location.c_str ()); break;
    case PROP_SET: g_value_set_enum (v, s.train ? 0 : 1); break;
    case PROP_SHARD_INDEX: g_value_set_uint (v, s.shard_index); break;
    case PROP_SHARD_COUNT: g_value_set_uint (v, s.shard_count); break;
    case PROP_ALPHA: g_value_set_double (v, s.alpha); break;
    case PROP_SEED: g_value_set_uint64 (v, s.seed); break;
    case PROP_WIDTH: g_value_set_int (v, s.width); break;
    case PROP_HEIGHT: g_value_set_int (v, s.height); break;
    case PROP_FORMAT: g_value_set_enum (v, s.format); break;
    case PROP_FPS_N: g_value_set_int (v, s.fps_n); break;
    case PROP_FPS_D: g_value_set_int (v, s.fps_d); break;
    case PROP_IS_LIVE: g_value_set_boolean (v, s.is_live); break;
    case PROP_LOOP: g_value_set_boolean (v, s.loop); break;
    case PROP_LABELS_OUT: g_value_set_string (v, s.labels_out.c_str ()); break;
    case PROP_MOTION: g_value_set_boolean (v, s.motion); break;
    case PROP_CLIP_LENGTH: g_value_set_uint (v, s.clip_length); break;
    default: G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
  }
}

static gboolean start (GstBaseSrc * bsrc) {
  auto *self = GST_SWARM_SRC (bsrc);
  if (!swarmlens::check_ranges (GST_ELEMENT (self))) return FALSE;  // before the settings lock: it reads them
  Settings s;
  {
    std::lock_guard<std::mutex> g (self->priv->lock);
    s = self->priv->settings;
  }
  if (s.shard_index >= s.shard_count) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("shard-index %u is not below shard-count %u",
        s.shard_index, s.shard_count), (nullptr));
    return FALSE;
  }
  State & st = self->priv->state;
  try {
    // An image folder: one sub-folder per class, or train/ and test/ each holding those; kept in
    // colour unless GRAY8 (or moving).
    const bool has_splits = swarmlens::is_image_folder (s.location + "/train") && swarmlens::is_image_folder (s.location + "/test");
    const bool folder = has_splits || swarmlens::is_image_folder (s.location);
    if (folder && !has_splits && !s.train)
      throw std::runtime_error ("set=test: the image folder " + s.location + " has no test split (make " + s.location +
          "/train/<class>/ and " + s.location + "/test/<class>/, or play a held-out folder as it is)");
    if (folder)
      st.data = swarmlens::load_image_folder (has_splits ? s.location + (s.train ? "/train" : "/test") : s.location, s.width, s.height,
          (s.format == GST_VIDEO_FORMAT_GRAY8 || s.motion) ? 1 : 3);
    else
      st.data = swarmlens::load_fashion_mnist (s.location, s.train);
  } catch (const std::exception & e) {
    GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ, ("Cannot read the dataset"), ("%s", e.what ()));
    return FALSE;
  }
  const auto shards = s.alpha > 0.0
      ? swarmlens::shard_dirichlet (st.data.labels, uint32_t (std::max<size_t> (1, st.data.class_names.size ())),
          s.shard_count, s.alpha, s.seed)
      : swarmlens::shard_iid (st.data.size (), s.shard_count, s.seed);
  st.order = shards[s.shard_index];
  st.labels_out.reset ();
  if (!s.labels_out.empty ()) {
    st.labels_out.reset (fopen (s.labels_out.c_str (), "w"));
    if (!st.labels_out) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_WRITE, ("Cannot write the labels file"), ("%s", s.labels_out.c_str ()));
      return FALSE;
    }
    fputs ("# swarmlens labels: pts_ns,label\n", st.labels_out.get ());
  }
  st.next = 0;
  st.frames = 0;
  st.motion = s.motion;
  st.clip_length = std::max (1u, s.clip_length);
  st.seed = s.seed * 1000003ull + s.shard_index;  // each shard's clips differ
  st.clips = 0;
  st.canvas.create (swarmlens::MotionConfig {}.canvas, swarmlens::MotionConfig {}.canvas, CV_8UC1);
  gst_video_info_set_format (&st.info, s.format, guint (s.width), guint (s.height));
  GST_VIDEO_INFO_FPS_N (&st.info) = s.fps_n;
  GST_VIDEO_INFO_FPS_D (&st.info) = s.fps_d;
  gst_base_src_set_format (bsrc, GST_FORMAT_TIME);
  GST_INFO_OBJECT (self, "shard %u/%u: %zu frames", s.shard_index, s.shard_count, st.order.size ());
  return TRUE;
}

static GstCaps *get_caps (GstBaseSrc * bsrc, GstCaps * filter) {
  auto *self = GST_SWARM_SRC (bsrc);
  GstVideoInfo info;
  {
    std::lock_guard<std::mutex> g (self->priv->lock);
    const Settings & s = self->priv->settings;
    gst_video_info_set_format (&info, s.format, guint (s.width), guint (s.height));
    GST_VIDEO_INFO_FPS_N (&info) = s.fps_n;
    GST_VIDEO_INFO_FPS_D (&info) = s.fps_d;
  }
  GstCaps *caps = gst_video_info_to_caps (&info);
  if (filter) {
    GstCaps *i = gst_caps_intersect_full (filter, caps, GST_CAPS_INTERSECT_FIRST);
    gst_caps_unref (caps);
    caps = i;
  }
  return caps;
}

static void get_times (GstBaseSrc * bsrc, GstBuffer * buf, GstClockTime * start, GstClockTime * end) {
  if (gst_base_src_is_live (bsrc)) {  // basesrc then waits on the clock: real-time playback
    *start = GST_BUFFER_PTS (buf);
    *end = *start + GST_BUFFER_DURATION (buf);
  } else {
    *start = *end = GST_CLOCK_TIME_NONE;
  }
}

static GstFlowReturn create (GstPushSrc * psrc, GstBuffer ** out) {
  auto *self = GST_SWARM_SRC (psrc);
  State & st = self->priv->state;
  bool loop;
  {
    std::lock_guard<std::mutex> g (self->priv->lock);
    loop = self->priv->settings.loop;
  }
  if (st.order.empty ()) return GST_FLOW_EOS;
  const bool new_item = !st.motion || st.frames % st.clip_length == 0;
  if (new_item && st.next == st.order.size ()) {
    if (!loop) return GST_FLOW_EOS;
    st.next = 0;
  }
  uint32_t idx = 0;
  int label = 0;
  if (st.motion) {
    if (new_item) st.clip = swarmlens::motion_clip (st.order[st.next++], st.seed, st.clips++);
    const int t = int (st.frames % st.clip_length);
    swarmlens::render_motion_frame (st.data, st.clip, t, swarmlens::MotionConfig {}, st.canvas.data);
    label = int (swarmlens::motion_direction (st.clip, t, swarmlens::MotionConfig {}));
  } else {
    idx = st.order[st.next++];
    label = st.data.labels[idx];
  }
  const GstVideoInfo & info = st.info;
  GstBuffer *buf = gst_buffer_new_allocate (nullptr, GST_VIDEO_INFO_SIZE (&info), nullptr);
  GstVideoFrame frame;
  if (!gst_video_frame_map (&frame, &info, buf, GST_MAP_WRITE)) {
    gst_buffer_unref (buf);
    GST_ELEMENT_ERROR (self, RESOURCE, FAILED, ("Cannot map an output buffer"), (nullptr));
    return GST_FLOW_ERROR;
  }
  const bool rgb = !st.motion && st.data.channels == 3;
  const cv::Mat img = st.motion ? st.canvas : cv::Mat (int (st.data.rows), int (st.data.cols), rgb ? CV_8UC3 : CV_8UC1,
      const_cast<uint8_t *>(st.data.image (idx)));
  cv::Mat scaled;
  cv::resize (img, scaled, cv::Size (GST_VIDEO_INFO_WIDTH (&info), GST_VIDEO_INFO_HEIGHT (&info)), 0, 0,
      cv::INTER_LINEAR);
  const int type = swarmlens::cv_type_of (GST_VIDEO_INFO_FORMAT (&info));
  cv::Mat dst (scaled.rows, scaled.cols, type, GST_VIDEO_FRAME_PLANE_DATA (&frame, 0),
      size_t (GST_VIDEO_FRAME_PLANE_STRIDE (&frame, 0)));
  if (scaled.type () == type) scaled.copyTo (dst);
  else if (type == CV_8UC1) cv::cvtColor (scaled, dst, cv::COLOR_RGB2GRAY);
  else if (type == CV_8UC3) cv::cvtColor (scaled, dst, cv::COLOR_GRAY2RGB);
  else cv::cvtColor (scaled, dst, rgb ? cv::COLOR_RGB2BGRA : cv::COLOR_GRAY2BGRA);
  gst_video_frame_unmap (&frame);

  const GstClockTime dur = info.fps_n > 0
      ? gst_util_uint64_scale_int (GST_SECOND, info.fps_d, info.fps_n) : GST_CLOCK_TIME_NONE;
  GST_BUFFER_PTS (buf) = info.fps_n > 0 ? st.frames * dur : 0;
  GST_BUFFER_DURATION (buf) = dur;
  GST_BUFFER_OFFSET (buf) = st.frames++;
  gst_buffer_add_swarm_label_meta (buf, label);
  if (st.labels_out)
    fprintf (st.labels_out.get (), "%" G_GUINT64_FORMAT ",%d\n", guint64 (GST_BUFFER_PTS (buf)), label);
  *out = buf;
  return GST_FLOW_OK;
}

static gboolean stop (GstBaseSrc * bsrc) {
  GST_SWARM_SRC (bsrc)->priv->state.labels_out.reset ();  // flushes and closes the sidecar
  return TRUE;
}

static void finalize (GObject * object) {
  delete GST_SWARM_SRC (object)->priv;
  G_OBJECT_CLASS (gst_swarm_src_parent_class)->finalize (object);
}

static void gst_swarm_src_class_init (GstSwarmSrcClass * klass) {
  auto *gobject = G_OBJECT_CLASS (klass);
  auto *element = GST_ELEMENT_CLASS (klass);
  auto *base = GST_BASE_SRC_CLASS (klass);
  gobject->set_property = set_property;
  gobject->get_property = get_property;
  gobject->finalize = finalize;
  const auto ready = GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const auto playing = GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_PLAYING);
  g_object_class_install_property (gobject, PROP_LOCATION, g_param_spec_string ("location", "Location",
      "Fashion-MNIST IDX folder (train-*/t10k-*-ubyte.gz), or a folder of images with one sub-folder per class",
      swarmlens::default_fashion_mnist_dir ().c_str (), ready));
  g_object_class_install_property (gobject, PROP_SET, g_param_spec_enum ("set", "Set",
      "Which split to play: Fashion-MNIST's train or test files; an image folder's train/ or test/ sub-folder "
      "(a folder of class sub-folders alone has no test split: set=test on it is an error)",
      swarmlens::data_split_enum_type (), 0, ready));
  g_object_class_install_property (gobject, PROP_SHARD_INDEX, swarmlens::checked_uint ("shard-index",
      "Shard index", "This node's shard, below shard-count", 0, 4095, 0, ready));
  g_object_class_install_property (gobject, PROP_SHARD_COUNT, swarmlens::checked_uint ("shard-count",
      "Shard count", "Number of nodes the data is split over", 1, 4096, 1, ready));
  g_object_class_install_property (gobject, PROP_ALPHA, swarmlens::checked_double ("alpha", "Dirichlet alpha",
      "Non-IID split with Dirichlet(alpha) class proportions; 0 = IID", 0.0, 1000.0, 0.0, ready));
  g_object_class_install_property (gobject, PROP_SEED, g_param_spec_uint64 ("seed", "Seed",
      "Seed of the split", 0, G_MAXUINT64, 1, ready));
  g_object_class_install_property (gobject, PROP_WIDTH, swarmlens::checked_int ("width", "Width",
      "Output width in pixels (images are scaled)", 1, 8192, DEFAULT_SIZE, ready));
  g_object_class_install_property (gobject, PROP_HEIGHT, swarmlens::checked_int ("height", "Height",
      "Output height in pixels (images are scaled)", 1, 8192, DEFAULT_SIZE, ready));
  g_object_class_install_property (gobject, PROP_FORMAT, g_param_spec_enum ("format", "Format",
      "Output pixel format", GST_TYPE_SWARM_SRC_FORMAT, GST_VIDEO_FORMAT_GRAY8, ready));
  g_object_class_install_property (gobject, PROP_FPS_N, swarmlens::checked_int ("fps-n", "FPS numerator",
      "Frame rate numerator (0 = as fast as possible, no timing)", 0, G_MAXINT, DEFAULT_FPS, ready));
  g_object_class_install_property (gobject, PROP_FPS_D, swarmlens::checked_int ("fps-d", "FPS denominator",
      "Frame rate denominator", 1, G_MAXINT, 1, ready));
  g_object_class_install_property (gobject, PROP_IS_LIVE, g_param_spec_boolean ("is-live", "Is live",
      "Act as a live source: frames come in real time at the frame rate", FALSE, ready));
  g_object_class_install_property (gobject, PROP_LOOP, g_param_spec_boolean ("loop", "Loop",
      "Start over at the end of the shard instead of sending EOS", FALSE, playing));

  g_object_class_install_property (gobject, PROP_LABELS_OUT, g_param_spec_string ("labels-out",
      "Labels out", "Also write each frame's label to this sidecar file (\"pts_ns,label\" lines), for "
      "swarmlabel to restore after encoding", "", ready));

  g_object_class_install_property (gobject, PROP_MOTION, g_param_spec_boolean ("motion", "Motion",
      "Play moving Fashion-MNIST instead: each item, shrunk, moves across a black frame and bounces off its "
      "edges; a frame's label is the direction of the item's last step (0 left, 1 right, 2 up, 3 down). "
      "Deterministic in seed; for temporal models (crnn)", FALSE, ready));
  g_object_class_install_property (gobject, PROP_CLIP_LENGTH, swarmlens::checked_uint ("clip-length", "Clip length",
      "motion=true: frames per item", 1, 100000, 16, ready));

  gst_element_class_add_static_pad_template (element, &src_template);
  gst_element_class_set_static_metadata (element, "Swarmlens labelled dataset source",
      "Source/Video", "Plays a shard of a labelled dataset (Fashion-MNIST) as video, with each "
      "frame's label in a GstSwarmLabelMeta", "Swarmlens developers");
  gst_type_mark_as_plugin_api (GST_TYPE_SWARM_SRC_FORMAT, GstPluginAPIFlags (0));
  base->start = start;
  base->stop = stop;
  base->get_caps = get_caps;
  base->get_times = get_times;
  GST_PUSH_SRC_CLASS (klass)->create = create;
  GST_DEBUG_CATEGORY_INIT (swarm_src_debug, "swarmsrc", 0, "Swarmlens dataset source");
}

static void gst_swarm_src_init (GstSwarmSrc * self) {
  self->priv = new _GstSwarmSrc::Private ();
  gst_base_src_set_format (GST_BASE_SRC (self), GST_FORMAT_TIME);
}
