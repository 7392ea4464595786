/**
 * SECTION:element-swarmtrain
 *
 * Trains the shared classifier on the frames that pass through it, and compresses its gradients with
 * the two-step method: sparsify with memory (DGC), then a trigger. The video passes unchanged.
 * The label of a frame comes from its GstSwarmLabelMeta (swarmsrc, a labelled file) or, in teach
 * mode, from the `label` property; frames without a label are not trained on. Training runs on its
 * own thread: frames are copied into a bounded buffer and sampled when the trainer is busy, so a live
 * source never stalls. Without a network link the node's updates are applied to its own model, which
 * it publishes in-process under `model-id` for swarmclassify.
 *
 * With `nats-url` the node joins a federation: its compressed updates go to the aggregator
 * (swarmlens-broker) on `swarmlens.<model-id>.update`, and the global model comes
 * back on `swarmlens.<model-id>.model` and replaces the node's own before its next step. A node that
 * starts late first takes the model kept in JetStream. One update is on the wire at a time, kept
 * until the broker answers for it (on `swarmlens.<model-id>.ack.<node-id>`) and sent again when no
 * answer comes; meanwhile, and while the link is down, the next update keeps accumulating in the
 * trigger. After a reconnect the node first takes the current model, then delivers what it holds.
 * The stats messages count updates delivered, refused by the broker and resent. `node-id` must differ
 * between the nodes of one model (-1 picks a random one).
 *
 * Request the `update` pad (before the element starts) to send the updates down the pipeline instead,
 * to a swarmaggregate (a site gateway aggregating its cameras): each released update becomes one
 * application/x-swarmlens-update buffer, stamped with its running time, and the aggregator's newer
 * models come back up the same link (and, asked at start, its current model). The pad takes the
 * updates even with `nats-url` set; NATS then only brings models. An update the pad cannot take
 * (flushing, not linked) is merged into the next one. At EOS the pending update is sent, then EOS.
 *
 * A temporal model (`model=crnn`) trains on windows of frames: the element keeps the stream's last
 * `window` frames and pushes one sample every `window-stride` frames, labelled with its last
 * frame's label; a flush or a new stream starts a new window.
 *
 * Training never starves the live video: it runs on its own thread at a lower priority (`nice`), and
 * `idle-policy` trains only while the device is otherwise idle enough (`load-ceiling`), within a
 * daily `schedule`, or both; paused, it keeps its residual, pending update and frame sample, and
 * resumes where it stopped.
 *
 * Statistics go out as element messages named `swarmtrain-stats` every `stats-interval` ms: steps,
 * samples, dropped, loss, train-accuracy, bytes-out, messages, compression-ratio, model-version,
 * node-id, state (training, paused-load, outside-schedule), other-load, pauses, skipped-batches
 * (non-finite gradients: not trained on), models-refused (non-finite or exploding models offered),
 * unknown-labels (frames labelled outside the model's `classes`: not trained on; the first one is
 * also a bus warning), held-out, holdout-accuracy and holdout-samples (`holdout-every`: the frames held
 * out, and the node's accuracy on its last ones, -1 before the first), diverged (the last batch was
 * skipped: the node is not learning), and with NATS
 * bytes-sent, bytes-received, models-received, models-refused-by-link (forged, unsigned under
 * `model-key`, corrupt), acks-refused, connected, updates-delivered, updates-refused, updates-resent,
 * update-in-flight and last-refusal (the broker's reason for the last refused update, "" once one got
 * through; each refusal is also a bus warning with what it means, and a line on the overlay);
 * federated, the same figures also go out as JSON on `swarmlens.<model-id>.metrics` (state
 * "diverged" while the node is not learning).
 *
 * |[
 * gst-launch-1.0 swarmsrc ! swarmtrain ! swarmclassify ! swarmoverlay ! fakesink
 * gst-launch-1.0 swarmsrc shard-index=0 shard-count=4 is-live=true ! swarmtrain nats-url=nats://127.0.0.1:4222 node-id=0 ! fakesink
 * gst-launch-1.0 -e swarmsrc shard-index=0 shard-count=2 is-live=true ! swarmtrain name=a ! fakesink \
 *     swarmsrc shard-index=1 shard-count=2 is-live=true ! swarmtrain name=b ! fakesink \
 *     a.update ! swarmaggregate name=g learning-rate=0.025 ! fakesink  b.update ! g.
 * gst-launch-1.0 v4l2src ! videoconvert ! videoscale ! video/x-raw,format=BGRx,width=320,height=240 ! swarmtrain label=3 ! fakesink
 * gst-launch-1.0 swarmsrc motion=true ! swarmtrain model=crnn window=6 model-id=m ! swarmclassify model=crnn window=6 model-id=m ! fakesink
 * ]|
 */
#include "gstswarmtrain.h"

#include <gst/video/video.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <mutex>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "camera_model.h"
#include "enums.h"
#include "frame.h"
#include "ranges.h"
#include "frame_window.h"
#include "gstswarmmeta.h"
#include "modelprops.h"
#include "natsprops.h"
#include "node_trainer.h"
#include "properties.h"
#include "reliable_uplink.h"
#include "updatelink.h"

GST_DEBUG_CATEGORY_STATIC (swarm_train_debug);
#define GST_CAT_DEFAULT swarm_train_debug

enum { PROP_0, PROP_MODEL /* and the model properties after it: modelprops.h */,
  PROP_BATCH_SIZE = PROP_MODEL + swarmlens::kModelProperties,
  PROP_LEARNING_RATE, PROP_MOMENTUM, PROP_DENSITY, PROP_CRITERION, PROP_VALUE_CODING, PROP_WARMUP_STEPS, PROP_TRIGGER_AGE,
  PROP_TRIGGER_NORM, PROP_CHECKPOINT, PROP_LABEL, PROP_STATS_INTERVAL, PROP_SEED,
  PROP_DROP_WHEN_BUSY, PROP_NODE_ID, PROP_WINDOW, PROP_WINDOW_STRIDE, PROP_IDLE_POLICY, PROP_LOAD_CEILING,
  PROP_SCHEDULE, PROP_NICE, PROP_HOLDOUT_EVERY,
  PROP_NATS_URL /* and the kNatsProperties - 1 after it: natsprops.h */ };

namespace {

struct Settings : swarmlens::ModelSettings {
  Settings ();  // the trainer library's defaults
  std::string criterion, value_coding, checkpoint;
  guint batch_size;
  gdouble lr, momentum, density, trigger_norm;
  guint64 warmup_steps, trigger_age, seed;
  gint label = -1;               // the frames' label metas
  guint stats_interval = 1000;   // ms
  bool drop_when_busy = true;    // a live source
  gint64 node_id = -1;           // a random one at start
  guint window, window_stride;
  std::string idle_policy, schedule;
  gdouble load_ceiling;
  gint nice;
  guint holdout_every;
  swarmlens::NatsSettings nats;
};

Settings::Settings () {
  const swarmlens::NodeTrainerConfig node;
  const swarmlens::CompressorConfig c = swarmlens::node_compression_defaults ();
  const swarmlens::WindowConfig w;
  criterion = swarmlens::criterion_name (c.sparsify.criterion);
  value_coding = swarmlens::value_coding_name (c.codec.value);
  batch_size = node.batch_size;
  lr = node.lr;
  momentum = c.sparsify.momentum;
  density = c.sparsify.density;
  trigger_norm = c.trigger.norm_threshold;
  warmup_steps = c.sparsify.warmup_stage_steps;
  trigger_age = c.trigger.max_age_steps;
  seed = node.seed;
  window = guint (w.window);
  window_stride = guint (w.stride);
  idle_policy = swarmlens::idle_mode_name (node.idle.mode);
  load_ceiling = node.idle.load_ceiling;
  nice = node.idle.nice;
  holdout_every = node.holdout_every;
}

}  // namespace

struct _GstSwarmTrain {
  GstBaseTransform parent;
  struct Private {
    std::mutex lock;  // protects settings; never held while training or posting
    Settings settings;
    // Streaming state: made in start(), dropped in stop(); used from the streaming thread.
    std::unique_ptr<swarmlens::NodeTrainer> trainer;
    std::unique_ptr<swarmlens::NodeLink> link;  // with nats-url; closed before the trainer goes
    std::unique_ptr<swarmlens::ReliableUplink> uplink;  // over link: updates kept until the broker answers
    GstPad *update_pad = nullptr;       // the requested `update` pad (owned by the element); under lock
    GstPad *uplink_pad = nullptr;       // a ref on it while the trainer sends through it
    swarmlens::NodeTrainer *model_sink = nullptr;  // the trainer while models may come up the pad; under lock
    guint32 node_id = 0;
    swarmlens::ModelSpec spec;
    GstVideoInfo info;
    std::vector<float> input;
    swarmlens::FrameWindow window;  // temporal models: the stream's last frames
    guint window_stride = 1;
    GstClockTime last_stats = GST_CLOCK_TIME_NONE;
    bool warned_label = false;  // a label outside the classes was said on the bus
  } *priv;
};

G_DEFINE_TYPE (GstSwarmTrain, gst_swarm_train, GST_TYPE_BASE_TRANSFORM);
GST_ELEMENT_REGISTER_DEFINE (swarmtrain, "swarmtrain", GST_RANK_NONE, GST_TYPE_SWARM_TRAIN);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink", GST_PAD_SINK, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (SWARMLENS_VIDEO_FORMATS)));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS (GST_VIDEO_CAPS_MAKE (SWARMLENS_VIDEO_FORMATS)));
static GstStaticPadTemplate update_template = GST_STATIC_PAD_TEMPLATE ("update", GST_PAD_SRC, GST_PAD_REQUEST,
    GST_STATIC_CAPS ("application/x-swarmlens-update"));

static void set_property (GObject * object, guint id, const GValue * v, GParamSpec * pspec) {
  if (swarmlens::refuse_while_running (GST_ELEMENT (object), pspec, v)) return;
  auto *self = GST_SWARM_TRAIN (object);
  std::lock_guard<std::mutex> g (self->priv->lock);
  Settings & s = self->priv->settings;
  auto str = [&] { return std::string (g_value_get_string (v) ? g_value_get_string (v) : ""); };
  switch (id) {
    case PROP_BATCH_SIZE: s.batch_size = g_value_get_uint (v); break;
    case PROP_LEARNING_RATE: s.lr = g_value_get_double (v); break;
    case PROP_MOMENTUM: s.momentum = g_value_get_double (v); break;
    case PROP_DENSITY: s.density = g_value_get_double (v); break;
    case PROP_CRITERION: s.criterion = swarmlens::enum_nick (swarmlens::criterion_enum_type (), g_value_get_enum (v)); break;
    case PROP_VALUE_CODING: s.value_coding = swarmlens::enum_nick (swarmlens::value_coding_enum_type (), g_value_get_enum (v)); break;
    case PROP_WARMUP_STEPS: s.warmup_steps = g_value_get_uint64 (v); break;
    case PROP_TRIGGER_AGE: s.trigger_age = g_value_get_uint64 (v); break;
    case PROP_TRIGGER_NORM: s.trigger_norm = g_value_get_double (v); break;
    case PROP_CHECKPOINT: s.checkpoint = str (); break;
    case PROP_LABEL: s.label = g_value_get_int (v); break;
    case PROP_STATS_INTERVAL: s.stats_interval = g_value_get_uint (v); break;
    case PROP_SEED: s.seed = g_value_get_uint64 (v); break;
    case PROP_DROP_WHEN_BUSY: s.drop_when_busy = g_value_get_boolean (v); break;
    case PROP_NODE_ID: s.node_id = g_value_get_int64 (v); break;
    case PROP_WINDOW: s.window = g_value_get_uint (v); break;
    case PROP_WINDOW_STRIDE: s.window_stride = g_value_get_uint (v); break;
    case PROP_IDLE_POLICY: s.idle_policy = swarmlens::enum_nick (swarmlens::idle_policy_enum_type (), g_value_get_enum (v)); break;
    case PROP_LOAD_CEILING: s.load_ceiling = g_value_get_double (v); break;
    case PROP_SCHEDULE: s.schedule = str (); break;
    case PROP_NICE: s.nice = g_value_get_int (v); break;
    case PROP_HOLDOUT_EVERY: s.holdout_every = g_value_get_uint (v); break;
    default:
      if (!swarmlens::model_set_property (s, PROP_MODEL, id, v) && !swarmlens::nats_set_property (s.nats, PROP_NATS_URL, id, v))
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
  }
}

static void get_property (GObject * object, guint id, GValue * v, GParamSpec * pspec) {
  auto *self = GST_SWARM_TRAIN (object);
  std::lock_guard<std::mutex> g (self->priv->lock);
  const Settings & s = self->priv->settings;
  switch (id) {
    case PROP_BATCH_SIZE: g_value_set_uint (v, s.batch_size); break;
    case PROP_LEARNING_RATE: g_value_set_double (v, s.lr); break;
    case PROP_MOMENTUM: g_value_set_double (v, s.momentum); break;
    case PROP_DENSITY: g_value_set_double (v, s.density); break;
    case PROP_CRITERION: g_value_set_enum (v, swarmlens::enum_value (swarmlens::criterion_enum_type (), s.criterion)); break;
    case PROP_VALUE_CODING: g_value_set_enum (v, swarmlens::enum_value (swarmlens::value_coding_enum_type (), s.value_coding)); break;
    case PROP_WARMUP_STEPS: g_value_set_uint64 (v, s.warmup_steps); break;
    case PROP_TRIGGER_AGE: g_value_set_uint64 (v, s.trigger_age); break;
    case PROP_TRIGGER_NORM: g_value_set_double (v, s.trigger_norm); break;
    case PROP_CHECKPOINT: g_value_set_string (v, s.checkpoint.c_str ()); break;
    case PROP_LABEL: g_value_set_int (v, s.label); break;
    case PROP_STATS_INTERVAL: g_value_set_uint (v, s.stats_interval); break;
    case PROP_SEED: g_value_set_uint64 (v, s.seed); break;
    case PROP_DROP_WHEN_BUSY: g_value_set_boolean (v, s.drop_when_busy); break;
    case PROP_NODE_ID: g_value_set_int64 (v, s.node_id); break;
    case PROP_WINDOW: g_value_set_uint (v, s.window); break;
    case PROP_WINDOW_STRIDE: g_value_set_uint (v, s.window_stride); break;
    case PROP_IDLE_POLICY: g_value_set_enum (v, swarmlens::enum_value (swarmlens::idle_policy_enum_type (), s.idle_policy)); break;
    case PROP_LOAD_CEILING: g_value_set_double (v, s.load_ceiling); break;
    case PROP_SCHEDULE: g_value_set_string (v, s.schedule.c_str ()); break;
    case PROP_NICE: g_value_set_int (v, s.nice); break;
    case PROP_HOLDOUT_EVERY: g_value_set_uint (v, s.holdout_every); break;
    default:
      if (!swarmlens::model_get_property (s, PROP_MODEL, id, v) && !swarmlens::nats_get_property (s.nats, PROP_NATS_URL, id, v))
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
  }
}

// The update pad's stream: stream-start, caps and a time segment before its first buffer (and again
// after the pad was deactivated and lost them).
static void ensure_update_stream (GstSwarmTrain * self, GstPad * pad) {
  if (gst_pad_has_current_caps (pad)) return;
  gchar *id = gst_pad_create_stream_id (pad, GST_ELEMENT (self), "update");
  gst_pad_push_event (pad, gst_event_new_stream_start (id));
  g_free (id);
  GstCaps *caps = gst_caps_new_empty_simple (swarmlens::kUpdateCaps);
  gst_pad_push_event (pad, gst_event_new_caps (caps));
  gst_caps_unref (caps);
  GstSegment segment;
  gst_segment_init (&segment, GST_FORMAT_TIME);
  gst_pad_push_event (pad, gst_event_new_segment (&segment));
}

// The trainer's uplink through the update pad (the training thread). False: merged into the next.
static bool push_update (GstSwarmTrain * self, GstPad * pad, const std::vector<uint8_t> & msg) {
  ensure_update_stream (self, pad);
  GstBuffer *buf = gst_buffer_new_memdup (msg.data (), msg.size ());
  if (GstClock *clock = gst_element_get_clock (GST_ELEMENT (self))) {
    const GstClockTime now = gst_clock_get_time (clock);
    const GstClockTime base = gst_element_get_base_time (GST_ELEMENT (self));
    if (now >= base) GST_BUFFER_PTS (buf) = GST_BUFFER_DTS (buf) = now - base;
    gst_object_unref (clock);
  }
  const GstFlowReturn ret = gst_pad_push (pad, buf);
  if (ret == GST_FLOW_OK) return true;
  if (ret < GST_FLOW_EOS && ret != GST_FLOW_NOT_LINKED)
    GST_ELEMENT_WARNING (self, STREAM, FAILED, ("The update pad's peer refused an update"),
        ("flow %s; the update stays pending and goes with the next", gst_flow_get_name (ret)));
  return false;
}

static gboolean update_pad_event (GstPad *, GstObject * parent, GstEvent * event) {
  auto *self = GST_SWARM_TRAIN (parent);
  try {
    if (auto model = swarmlens::model_from_event (event)) {
      std::lock_guard<std::mutex> g (self->priv->lock);
      if (self->priv->model_sink) self->priv->model_sink->offer_model (std::move (model));
    }
  } catch (const std::exception & e) {
    GST_ELEMENT_WARNING (self, STREAM, DECODE, ("Bad model from the update pad's peer"), ("%s", e.what ()));
  }
  gst_event_unref (event);  // nothing else upstream of the update pad concerns the video path
  return TRUE;
}

static gboolean update_pad_query (GstPad * pad, GstObject *, GstQuery * query) {
  switch (GST_QUERY_TYPE (query)) {
    case GST_QUERY_LATENCY:  // updates come when training releases them: a live stream, no latency
      gst_query_set_latency (query, TRUE, 0, GST_CLOCK_TIME_NONE);
      return TRUE;
    case GST_QUERY_CAPS: {
      GstCaps *filter, *caps = gst_pad_get_pad_template_caps (pad);
      gst_query_parse_caps (query, &filter);
      if (filter) {
        GstCaps *both = gst_caps_intersect_full (filter, caps, GST_CAPS_INTERSECT_FIRST);
        gst_caps_unref (caps);
        caps = both;
      }
      gst_query_set_caps_result (query, caps);
      gst_caps_unref (caps);
      return TRUE;
    }
    case GST_QUERY_ACCEPT_CAPS: {
      GstCaps *caps, *templ = gst_pad_get_pad_template_caps (pad);
      gst_query_parse_accept_caps (query, &caps);
      gst_query_set_accept_caps_result (query, gst_caps_is_subset (caps, templ));
      gst_caps_unref (templ);
      return TRUE;
    }
    default:
      return FALSE;  // not forwarded to the video pads
  }
}

static GstPad *new_update_pad (GstSwarmTrain * self, GstElement * element, GstPadTemplate * templ) {
  std::lock_guard<std::mutex> g (self->priv->lock);
  if (self->priv->update_pad) {
    GST_WARNING_OBJECT (self, "there is one update pad, and it is taken");
    return nullptr;
  }
  if (GST_STATE (element) > GST_STATE_READY || GST_STATE_PENDING (element) > GST_STATE_READY) {
    GST_WARNING_OBJECT (self, "request the update pad before the element starts");
    return nullptr;
  }
  GstPad *pad = gst_pad_new_from_template (templ, "update");
  gst_pad_set_event_function (pad, update_pad_event);
  gst_pad_set_query_function (pad, update_pad_query);
  self->priv->update_pad = pad;
  return pad;
}

static GstPad *request_new_pad (GstElement * element, GstPadTemplate * templ, const gchar *, const GstCaps *) {
  GstPad *pad = new_update_pad (GST_SWARM_TRAIN (element), element, templ);
  if (pad) gst_element_add_pad (element, pad);  // outside the lock: pad-added handlers may set properties
  return pad;
}

static void release_pad (GstElement * element, GstPad * pad) {
  auto *self = GST_SWARM_TRAIN (element);
  {
    std::lock_guard<std::mutex> g (self->priv->lock);
    if (pad != self->priv->update_pad) return;
    self->priv->update_pad = nullptr;
  }
  gst_pad_set_active (pad, FALSE);
  gst_element_remove_pad (element, pad);
}

// The trainer's config from the element's settings; false (with an error on the bus) if they cannot
// train.
static bool trainer_config (GstSwarmTrain * self, const Settings & s, swarmlens::NodeTrainerConfig & cfg) {
  if (const auto why = swarmlens::device_problem (s.device); !why.empty ()) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Cannot train on device \"%s\"", s.device.c_str ()),
        ("%s", why.c_str ()));
    return false;
  }
  // GEnum nicks: always the library's names.
  const auto criterion = swarmlens::parse_criterion (s.criterion);
  const auto idle_mode = swarmlens::parse_idle_mode (s.idle_policy);
  const auto values = swarmlens::parse_value_coding (s.value_coding);
  cfg.model = swarmlens::camera_model_spec (s.model, s.input_width, s.input_height, int (s.window), s.classes);
  if (!criterion || !idle_mode || !values) {  // cannot happen through the GEnums; said all the same
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Unknown criterion, value-coding or idle-policy"), ("%s, %s, %s",
        s.criterion.c_str (), s.value_coding.c_str (), s.idle_policy.c_str ()));
    return false;
  }
  if (s.label >= cfg.model.classes) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("label %d is not one of the model's %d classes", s.label, cfg.model.classes),
        ("teach mode takes 0..%d; set classes for more", cfg.model.classes - 1));
    return false;
  }
  cfg.idle.mode = *idle_mode;
  cfg.idle.load_ceiling = s.load_ceiling;
  cfg.idle.schedule = s.schedule;
  cfg.idle.nice = s.nice;
  cfg.holdout_every = s.holdout_every;
  cfg.model_id = s.model_id;
  cfg.seed = s.seed;
  cfg.device = s.device;
  cfg.batch_size = s.batch_size;
  cfg.lr = s.lr;
  cfg.checkpoint = s.checkpoint;
  cfg.compression.sparsify.momentum = s.momentum;
  cfg.compression.sparsify.density = s.density;
  cfg.compression.sparsify.criterion = *criterion;
  cfg.compression.codec.value = *values;
  cfg.compression.sparsify.warmup_stage_steps = s.warmup_steps;
  cfg.compression.trigger.max_age_steps = s.trigger_age;
  cfg.compression.trigger.norm_threshold = s.trigger_norm;
  cfg.node_id = s.node_id >= 0 ? guint32 (s.node_id) : guint32 (std::random_device {} () & 0x7fffffff);
  return true;
}

// With nats-url: the link (models in) and, unless the update pad takes the updates, the
// acknowledged uplink, whose refusals are said on the bus at once. False (with an error on the
// bus, the link closed) if either cannot be opened.
static bool open_federation (GstSwarmTrain * self, const Settings & s, const swarmlens::NodeTrainerConfig & cfg, bool pad_uplink) {
  auto & p = *self->priv;
  swarmlens::NodeTrainer *trainer = p.trainer.get ();
  p.link = swarmlens::nats_open_link (GST_ELEMENT (self), s.nats, s.model_id, cfg.model,
      [trainer] (std::shared_ptr<const swarmlens::Snapshot> m) { trainer->offer_model (std::move (m)); });
  if (!p.link) return false;
  if (!pad_uplink) {
    try {
      swarmlens::UplinkOptions uo;
      uo.on_answer = [self, trainer] (const swarmlens::UpdateAck & a) {
        trainer->note_answer (a.delivered (), a.verdict);
        if (!a.delivered ()) GST_ELEMENT_WARNING (self, STREAM, FAILED, ("The broker refused update %" G_GUINT64_FORMAT ": %s", a.seq,
            a.verdict.c_str ()), ("%s", swarmlens::refusal_help (a.verdict).c_str ()));
      };
      p.uplink = std::make_unique<swarmlens::ReliableUplink> (*p.link, cfg.node_id, uo);
    } catch (const std::exception & e) {
      GST_ELEMENT_ERROR (self, RESOURCE, OPEN_READ_WRITE, ("Cannot subscribe to the broker's answers"), ("%s", e.what ()));
      p.link.reset ();
      return false;
    }
    swarmlens::ReliableUplink *uplink = p.uplink.get ();
    trainer->set_uplink ([uplink] (const std::vector<uint8_t> & m) { return uplink->offer (m); });
  }
  GST_INFO_OBJECT (self, "node %u of model '%s' on %s", cfg.node_id, s.model_id.c_str (), s.nats.url.c_str ());
  return true;
}

static gboolean start (GstBaseTransform * trans) {
  auto *self = GST_SWARM_TRAIN (trans);
  if (!swarmlens::check_ranges (GST_ELEMENT (self))) return FALSE;  // before the settings lock: it reads them
  Settings s;
  {
    std::lock_guard<std::mutex> g (self->priv->lock);
    s = self->priv->settings;
  }
  swarmlens::NodeTrainerConfig cfg;
  if (!trainer_config (self, s, cfg)) return FALSE;
  auto & p = *self->priv;
  try {
    p.trainer = std::make_unique<swarmlens::NodeTrainer> (cfg);
  } catch (const std::exception & e) {
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Cannot start training"), ("%s", e.what ()));
    return FALSE;
  }
  GstPad *update_pad = nullptr;
  {
    std::lock_guard<std::mutex> g (p.lock);
    if (p.update_pad) update_pad = GST_PAD (gst_object_ref (p.update_pad));
  }
  if (!s.nats.url.empty () && !open_federation (self, s, cfg, update_pad != nullptr)) {
    p.trainer.reset ();
    if (update_pad) gst_object_unref (update_pad);
    return FALSE;
  }
  if (update_pad) {
    // The aggregator downstream is started already (states change from the sinks up): its current
    // model is this node's first one, as a late joiner's under a broker.
    GstQuery *q = swarmlens::model_query_new ();
    if (gst_pad_peer_query (update_pad, q)) {
      try {
        p.trainer->offer_model (swarmlens::model_from_query (q));
      } catch (const std::exception & e) {
        GST_ELEMENT_WARNING (self, STREAM, DECODE, ("Bad model from the update pad's peer"), ("%s", e.what ()));
      }
    }
    gst_query_unref (q);
    p.uplink_pad = update_pad;
    p.trainer->set_uplink ([self, update_pad] (const std::vector<uint8_t> & m) { return push_update (self, update_pad, m); });
  }
  try {
    p.trainer->start ();
  } catch (const std::exception & e) {
    p.uplink.reset ();
    p.link.reset ();
    p.trainer.reset ();
    if (p.uplink_pad) gst_object_unref (p.uplink_pad);
    p.uplink_pad = nullptr;
    GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Cannot start training"), ("%s", e.what ()));
    return FALSE;
  }
  p.node_id = cfg.node_id;
  {
    std::lock_guard<std::mutex> g (p.lock);
    p.model_sink = p.trainer.get ();
  }
  p.spec = cfg.model;
  p.window.reset (swarmlens::sample_size (cfg.model) / size_t (cfg.model.window), cfg.model.window);
  p.window_stride = std::max (1u, s.window_stride);
  p.last_stats = GST_CLOCK_TIME_NONE;
  p.warned_label = false;
  return TRUE;
}

static void post_stats (GstSwarmTrain * self) {
  auto & p = *self->priv;
  const swarmlens::TrainStats st = p.trainer->stats ();
  GstStructure *s = gst_structure_new ("swarmtrain-stats",
      "steps", G_TYPE_UINT64, st.steps, "samples", G_TYPE_UINT64, st.samples,
      "dropped", G_TYPE_UINT64, st.dropped, "loss", G_TYPE_DOUBLE, st.loss,
      "train-accuracy", G_TYPE_DOUBLE, st.train_accuracy, "bytes-out", G_TYPE_UINT64, st.bytes_out,
      "messages", G_TYPE_UINT64, st.messages, "compression-ratio", G_TYPE_DOUBLE, st.compression_ratio (),
      "model-version", G_TYPE_UINT64, st.model_version, "node-id", G_TYPE_UINT, p.node_id,
      "state", G_TYPE_STRING, swarmlens::train_state_name (st.state), "other-load", G_TYPE_DOUBLE, st.other_load,
      "pauses", G_TYPE_UINT64, st.pauses, "skipped-batches", G_TYPE_UINT64, st.skipped_batches,
      "models-refused", G_TYPE_UINT64, st.models_refused, "unknown-labels", G_TYPE_UINT64, st.unknown_labels,
      "held-out", G_TYPE_UINT64, st.held_out, "holdout-accuracy", G_TYPE_DOUBLE, st.holdout_accuracy,
      "holdout-samples", G_TYPE_UINT64, st.holdout_samples,
      "diverged", G_TYPE_BOOLEAN, gboolean (st.diverged), nullptr);
  if (p.link) {
    const swarmlens::NodeLinkStats ls = p.link->stats ();
    gst_structure_set (s, "bytes-sent", G_TYPE_UINT64, ls.bytes_sent, "models-received", G_TYPE_UINT64, ls.models_in,
        "models-refused-by-link", G_TYPE_UINT64, ls.models_refused, "acks-refused", G_TYPE_UINT64, ls.acks_refused,
        "bytes-received", G_TYPE_UINT64, ls.bytes_in,
        "connected", G_TYPE_BOOLEAN, gboolean (ls.connected), nullptr);
    swarmlens::UplinkStats us;
    if (p.uplink) {
      us = p.uplink->stats ();
      gst_structure_set (s, "updates-delivered", G_TYPE_UINT64, us.delivered, "updates-refused", G_TYPE_UINT64, us.refused,
          "updates-resent", G_TYPE_UINT64, us.resent, "update-in-flight", G_TYPE_BOOLEAN, gboolean (us.in_flight),
          "last-refusal", G_TYPE_STRING, st.last_refusal.c_str (), nullptr);
    }
    nlohmann::json m = {{"source", "node"}, {"node", p.node_id}, {"steps", st.steps}, {"samples", st.samples},
        {"dropped", st.dropped}, {"loss", st.loss}, {"train_accuracy", st.train_accuracy},
        {"bytes_out", st.bytes_out}, {"bytes_sent", ls.bytes_sent}, {"messages", st.messages},
        {"dense_bytes", st.dense_bytes}, {"model_version", st.model_version}, {"models_in", ls.models_in},
        {"bytes_in", ls.bytes_in}, {"state", st.diverged ? "diverged" : swarmlens::train_state_name (st.state)},
        {"skipped_batches", st.skipped_batches}, {"unknown_labels", st.unknown_labels}, {"models_refused", st.models_refused + ls.models_refused},
        {"acks_refused", ls.acks_refused},
        {"updates_delivered", us.delivered}, {"updates_refused", us.refused}, {"updates_resent", us.resent},
        {"update_in_flight", us.in_flight}, {"held_out", st.held_out}, {"holdout_samples", st.holdout_samples}};
    if (st.holdout_accuracy >= 0) m["holdout_accuracy"] = st.holdout_accuracy;
    p.link->publish_metrics (m.dump ());
  }
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self), s));
}

static gboolean stop (GstBaseTransform * trans) {
  auto *self = GST_SWARM_TRAIN (trans);
  if (!self->priv->trainer) return TRUE;
  try {
    self->priv->trainer->stop ();  // federated: sends what is pending through the link
  } catch (const std::exception & e) {
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE, ("Cannot write the checkpoint"), ("%s", e.what ()));
  }
  // The update on the wire gets a moment to be answered; one that is not stays unaccounted for
  // here (the broker may still take it) and is said so. What the trainer could not hand over is in
  // its checkpoint's pending update.
  if (self->priv->uplink)
    if (auto why = self->priv->uplink->unanswered_after (std::chrono::milliseconds (3000)))
      GST_ELEMENT_WARNING (self, RESOURCE, WRITE, ("The last update was not acknowledged"), ("%s", why->c_str ()));
  post_stats (self);  // the final figures, the last update included (and on the metrics subject)
  {
    std::lock_guard<std::mutex> g (self->priv->lock);
    self->priv->model_sink = nullptr;  // no model from the update pad into the trainer after this
  }
  self->priv->uplink.reset ();
  self->priv->link.reset ();  // no model callback into the trainer after this
  self->priv->trainer.reset ();
  if (self->priv->uplink_pad) gst_object_unref (self->priv->uplink_pad);
  self->priv->uplink_pad = nullptr;
  return TRUE;
}

static gboolean set_caps (GstBaseTransform * trans, GstCaps * incaps, GstCaps *) {
  auto *self = GST_SWARM_TRAIN (trans);
  return swarmlens::video_info_from_caps (GST_ELEMENT (self), incaps, &self->priv->info);
}

static GstFlowReturn transform_ip (GstBaseTransform * trans, GstBuffer * buf) {
  auto *self = GST_SWARM_TRAIN (trans);
  auto & p = *self->priv;
  gint label;
  guint interval;
  bool drop;
  {
    std::lock_guard<std::mutex> g (p.lock);
    label = p.settings.label;
    interval = p.settings.stats_interval;
    drop = p.settings.drop_when_busy;
  }
  if (label < 0) {
    if (auto *m = gst_buffer_get_swarm_label_meta (buf)) label = m->label;
  }
  if (const std::string err = p.trainer->error (); !err.empty ()) {
    GST_ELEMENT_ERROR (self, STREAM, FAILED, ("Training failed"), ("%s", err.c_str ()));
    return GST_FLOW_ERROR;
  }
  // A frame without a label passes untouched and is not trained on, except that a temporal model's
  // window takes every frame (the motion must be continuous): every window-stride-th full window is
  // a sample, labelled with its last frame's label.
  const bool labelled = label >= 0;  // one outside the classes is counted and refused by the trainer
  if (label >= p.spec.classes && !p.warned_label) {
    p.warned_label = true;
    GST_ELEMENT_WARNING (self, STREAM, FORMAT, ("Label %d is not one of the model's %d classes", label, p.spec.classes),
        ("frames labelled outside 0..%d are not trained on (counted as unknown-labels); set classes (federated: "
         "the broker's --classes)", p.spec.classes - 1));
  }
  const bool temporal = swarmlens::is_temporal (p.spec.name);
  if (labelled || temporal) {
    if (!swarmlens::buffer_to_input (GST_ELEMENT (self), &p.info, buf, p.spec, p.input)) return GST_FLOW_ERROR;
    if (!temporal) p.trainer->push (p.input.data (), label, !drop);
    else if (p.window.push (p.input.data ()) && labelled && (p.window.pushed () - size_t (p.spec.window)) % p.window_stride == 0)
      p.trainer->push (p.window.sample ().data (), label, !drop);
  }
  const GstClockTime now = gst_util_get_timestamp ();
  if (interval > 0 && (!GST_CLOCK_TIME_IS_VALID (p.last_stats) || now - p.last_stats >= interval * GST_MSECOND)) {
    p.last_stats = now;
    post_stats (self);
  }
  return GST_FLOW_OK;
}

static gboolean sink_event (GstBaseTransform * trans, GstEvent * event) {
  auto *self = GST_SWARM_TRAIN (trans);
  if (GST_EVENT_TYPE (event) == GST_EVENT_FLUSH_STOP || GST_EVENT_TYPE (event) == GST_EVENT_STREAM_START)
    self->priv->window.clear ();  // a temporal window never spans a seek or another stream
  if (GST_EVENT_TYPE (event) == GST_EVENT_EOS && self->priv->trainer) {
    bool drop;
    {
      std::lock_guard<std::mutex> g (self->priv->lock);
      drop = self->priv->settings.drop_when_busy;
    }
    if (!drop) self->priv->trainer->drain ();  // an offline stream is trained to its last full batch
    if (GstPad *pad = self->priv->uplink_pad) {
      // The update stream ends with the video: the pending update goes out first, then EOS.
      try {
        self->priv->trainer->stop ();
      } catch (const std::exception & e) {
        GST_ELEMENT_WARNING (self, RESOURCE, WRITE, ("Cannot write the checkpoint"), ("%s", e.what ()));
      }
      ensure_update_stream (self, pad);
      gst_pad_push_event (pad, gst_event_new_eos ());
    }
    post_stats (self);  // the final figures, whatever the interval
  }
  return GST_BASE_TRANSFORM_CLASS (gst_swarm_train_parent_class)->sink_event (trans, event);
}

static void finalize (GObject * object) {
  delete GST_SWARM_TRAIN (object)->priv;
  G_OBJECT_CLASS (gst_swarm_train_parent_class)->finalize (object);
}

static void gst_swarm_train_class_init (GstSwarmTrainClass * klass) {
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
      "Model registry name: cnn (1x28x28 small CNN), mobilenet (RGB, input-width x input-height) or crnn "
      "(recurrent: grey frames, a window of them per sample, 4 classes: motion left, right, up, down)",
      "Name the model and its statistics are shared under in this process (swarmclassify, swarmoverlay) and, "
      "with nats-url, on the network (subjects swarmlens.<model-id>.*)",
      "frames are scaled to it (cnn: 28)",
      "Compute device for training: cpu, cuda or cuda:N (a LibTorch built with CUDA, as JetPack's on a "
      "Jetson; otherwise an error at start). Weights stay in host memory; the GPU computes the gradients"});
  g_object_class_install_property (gobject, PROP_BATCH_SIZE, g_param_spec_uint (swarmlens::props::kBatchSize, "Batch size",
      "Frames per training step (>= 1; 0 is an error at start)", 0, G_MAXUINT, d.batch_size, ready));
  g_object_class_install_property (gobject, PROP_LEARNING_RATE, g_param_spec_double (swarmlens::props::kLearningRate,
      "Learning rate", "SGD rate of this node's own steps; the aggregator applies each update at its own rate "
      "(swarmlens-broker --server-lr: this rate / the number of nodes, so their progress is averaged); > 0, "
      "anything else is an error at start", -G_MAXDOUBLE, G_MAXDOUBLE, d.lr, ready));
  g_object_class_install_property (gobject, PROP_MOMENTUM, g_param_spec_double (swarmlens::props::kMomentum, "Momentum",
      "Momentum, corrected locally (DGC); in [0, 1), anything else is an error at start", -G_MAXDOUBLE, G_MAXDOUBLE,
      d.momentum, ready));
  g_object_class_install_property (gobject, PROP_DENSITY, g_param_spec_double (swarmlens::props::kDensity, "Density",
      "Share of gradient entries sent per step after warm-up (0.001 = 99.9% sparsity); in (0, 1], anything else "
      "is an error at start", -G_MAXDOUBLE, G_MAXDOUBLE, d.density, ready));
  g_object_class_install_property (gobject, PROP_CRITERION, g_param_spec_enum ("criterion", "Criterion",
      "How the sent entries are selected", swarmlens::criterion_enum_type (),
      swarmlens::enum_value (swarmlens::criterion_enum_type (), d.criterion), ready));
  g_object_class_install_property (gobject, PROP_VALUE_CODING, g_param_spec_enum (swarmlens::props::kValueCoding, "Value coding",
      "How an update's values go on the wire (what it leaves goes back into the residual)",
      swarmlens::value_coding_enum_type (), swarmlens::enum_value (swarmlens::value_coding_enum_type (), d.value_coding), ready));
  g_object_class_install_property (gobject, PROP_WARMUP_STEPS, g_param_spec_uint64 (swarmlens::props::kWarmupSteps,
      "Warm-up steps", "Steps per sparsity warm-up stage (75%, 93.75%, 98.4%, 99.6%); 0 = none", 0,
      G_MAXUINT64, d.warmup_steps, ready));
  g_object_class_install_property (gobject, PROP_TRIGGER_AGE, g_param_spec_uint64 (swarmlens::props::kTriggerAge,
      "Trigger age", "Release the pending update after this many steps (0 = off)", 0, G_MAXUINT64, d.trigger_age, ready));
  g_object_class_install_property (gobject, PROP_TRIGGER_NORM, swarmlens::checked_double ("trigger-norm",
      "Trigger norm", "Release the pending update when its L2 norm reaches this (0 = off)", 0.0, G_MAXDOUBLE, d.trigger_norm, ready));
  g_object_class_install_property (gobject, PROP_CHECKPOINT, g_param_spec_string (swarmlens::props::kCheckpoint, "Checkpoint",
      "Snapshot file: resumed from at start, written at stop (empty = none)", "", ready));
  g_object_class_install_property (gobject, PROP_LABEL, swarmlens::checked_int (swarmlens::props::kLabel, "Label",
      "Teach mode: train every frame as this class, 0 .. classes-1 (-1 = use the frames' label metas)", -1, 999, d.label, playing));
  g_object_class_install_property (gobject, PROP_STATS_INTERVAL, swarmlens::checked_uint (swarmlens::props::kStatsInterval,
      "Stats interval", "Milliseconds between swarmtrain-stats bus messages (0 = none)", 0, 3600000, d.stats_interval, playing));
  g_object_class_install_property (gobject, PROP_SEED, g_param_spec_uint64 ("seed", "Seed",
      "Seed of the initial weights and sampling", 0, G_MAXUINT64, d.seed, ready));

  g_object_class_install_property (gobject, PROP_DROP_WHEN_BUSY, g_param_spec_boolean ("drop-when-busy",
      "Drop when busy", "Sample frames when the trainer is busy so the stream never waits (live sources); "
      "false = hold the stream until there is room, training on every labelled frame (files)", d.drop_when_busy, playing));

  g_object_class_install_property (gobject, PROP_NODE_ID, swarmlens::checked_int64 (swarmlens::props::kNodeId, "Node id",
      "This node's id in the federation, unique per model (-1 = a random one at start)", -1, G_MAXUINT32, d.node_id, ready));
  g_object_class_install_property (gobject, PROP_WINDOW, swarmlens::checked_uint ("window", "Window",
      "Temporal models (crnn): frames per sample, the stream's last ones; a window's label is its last frame's",
      1, 64, d.window, ready));
  g_object_class_install_property (gobject, PROP_WINDOW_STRIDE, swarmlens::checked_uint ("window-stride",
      "Window stride", "Temporal models: a sample every this many frames once the window is full", 1, 64, d.window_stride, ready));
  g_object_class_install_property (gobject, PROP_IDLE_POLICY, g_param_spec_enum (swarmlens::props::kIdlePolicy, "Idle policy",
      "When to train: always; load (only while other processes use at most load-ceiling of the CPUs); "
      "schedule (only within the schedule); load+schedule (both). Paused, frames are sampled as when busy, "
      "and the residual and pending update are kept", swarmlens::idle_policy_enum_type (),
      swarmlens::enum_value (swarmlens::idle_policy_enum_type (), d.idle_policy), ready));
  g_object_class_install_property (gobject, PROP_LOAD_CEILING, swarmlens::checked_double (swarmlens::props::kLoadCeiling, "Load ceiling",
      "idle-policy=load: pause when other processes use more than this share of all CPUs (resume below 80% of it)",
      0.01, 1.0, d.load_ceiling, ready));
  g_object_class_install_property (gobject, PROP_SCHEDULE, g_param_spec_string (swarmlens::props::kSchedule, "Schedule",
      "idle-policy=schedule: daily windows in local time, e.g. \"22:00-06:00\" or \"01:00-05:00,12:00-13:00\"", "", ready));
  g_object_class_install_property (gobject, PROP_NICE, swarmlens::checked_int ("nice", "Nice",
      "Nice value of the training thread (the video path keeps its own); 0 = unchanged", 0, 19, d.nice, ready));
  g_object_class_install_property (gobject, PROP_HOLDOUT_EVERY, g_param_spec_uint (swarmlens::props::kHoldoutEvery,
      "Hold out every", "Hold out every Nth labelled frame: not trained on, classified by the node's current model "
      "(holdout-accuracy in the stats; a broker without test data publishes the nodes' figures). 0 = off; 1 is an error "
      "at start (nothing would be trained on)", 0, G_MAXUINT, d.holdout_every, ready));
  swarmlens::nats_install_properties (gobject, PROP_NATS_URL);

  gst_element_class_add_static_pad_template (element, &sink_template);
  gst_element_class_add_static_pad_template (element, &src_template);
  gst_element_class_add_static_pad_template (element, &update_template);
  element->request_new_pad = request_new_pad;
  element->release_pad = release_pad;
  gst_element_class_set_static_metadata (element, "Swarmlens trainer", "Filter/Analyzer/Video",
      "Trains the shared classifier on labelled frames and compresses its gradients (sparsify + trigger); "
      "the video passes unchanged", "Swarmlens developers");
  base->start = start;
  base->stop = stop;
  base->set_caps = set_caps;
  base->transform_ip = transform_ip;
  base->sink_event = sink_event;
  base->passthrough_on_same_caps = TRUE;
  base->transform_ip_on_passthrough = TRUE;
  GST_DEBUG_CATEGORY_INIT (swarm_train_debug, "swarmtrain", 0, "Swarmlens trainer");
}

static void gst_swarm_train_init (GstSwarmTrain * self) {
  self->priv = new _GstSwarmTrain::Private ();
  gst_base_transform_set_passthrough (GST_BASE_TRANSFORM (self), TRUE);
}
