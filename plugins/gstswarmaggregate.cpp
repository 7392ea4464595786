/**
 * SECTION:element-swarmaggregate
 *
 * The aggregator inside a pipeline, for a site gateway (one Jetson with several cameras). Its request
 * sink pads `sink_%u` take the update streams of local swarmtrain elements (their `update` pads,
 * application/x-swarmlens-update); each update is decoded and validated (layout, NaN/Inf, replayed
 * sequence) before it counts, and a rejected one is counted by reason and reported once per reason
 * as a bus warning. Two modes:
 *
 * - `serve`: this element is the aggregator (the same library as swarmlens-broker). Updates are
 *   merged into the shared model with staleness weighting; every `interval` ms a newer model goes
 *   back up to every trainer, and out of the src pad as application/x-swarmlens-model (an encoded
 *   snapshot). With `nats-url` it also takes the updates of remote nodes on
 *   `swarmlens.<model-id>.update` and serves the model on `swarmlens.<model-id>.model`, kept in
 *   JetStream (`retain`), exactly as swarmlens-broker does; `snapshot` keeps it in a file too.
 * - `forward`: hierarchical aggregation. Every `interval` ms the updates that came in are summed into
 *   one combined update under this gateway's `node-id` and sent on: on NATS to the upstream broker
 *   with `nats-url` (and a copy out of the src pad), else out of the src pad (to another
 *   swarmaggregate). On NATS, as swarmtrain's, one combined update is on the wire at a time, kept
 *   until the broker answers and sent again without an answer; a combined update that cannot be
 *   sent (link down, one in flight) is merged into the next. Models from
 *   upstream (NATS, or an upstream event from downstream) go back to the trainers, with the
 *   broker's record of the gateway's updates translated into the trainers' own.
 *
 * The element is live: it aggregates on the clock, so trainers that release updates at any time
 * never wait for each other. Statistics go out as `swarmaggregate-stats` element messages.
 *
 * |[
 * gst-launch-1.0 -e swarmsrc shard-index=0 shard-count=2 is-live=true ! swarmtrain name=a ! fakesink \
 *     swarmsrc shard-index=1 shard-count=2 is-live=true ! swarmtrain name=b ! fakesink \
 *     a.update ! swarmaggregate name=g learning-rate=0.025 ! fakesink  b.update ! g.
 * gst-launch-1.0 -e ... a.update ! swarmaggregate mode=forward node-id=100 nats-url=nats://broker:4222 ! fakesink  b.update ! g.
 * ]|
 */
#include "gstswarmaggregate.h"

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "aggregate_backend.h"
#include "camera_model.h"
#include "frame.h"
#include "ranges.h"
#include "modelprops.h"
#include "natsprops.h"
#include "properties.h"
#include "node_trainer.h"
#include "updatelink.h"

GST_DEBUG_CATEGORY_STATIC (swarm_aggregate_debug);
#define GST_CAT_DEFAULT swarm_aggregate_debug

enum { PROP_0, PROP_MODEL /* and the model properties after it (no device): modelprops.h */,
  PROP_MODE = PROP_MODEL + swarmlens::kModelProperties, PROP_SEED, PROP_NODE_ID, PROP_INTERVAL, PROP_LEARNING_RATE,
  PROP_BUFFER_SIZE, PROP_CLIP_NORM, PROP_STALENESS_GRACE, PROP_MAX_STALENESS, PROP_SNAPSHOT, PROP_RETAIN, PROP_STATS_INTERVAL,
  PROP_SIGNING_KEY,
  PROP_NATS_URL /* and the kNatsProperties - 1 after it: natsprops.h */ };

enum { MODE_SERVE = 0, MODE_FORWARD = 1 };

#define GST_TYPE_SWARM_AGGREGATE_MODE (swarm_aggregate_mode_get_type ())
static GType swarm_aggregate_mode_get_type () {
  static gsize type = 0;
  static const GEnumValue values[] = {
    {MODE_SERVE, "Be the aggregator: merge into the shared model and serve it back", "serve"},
    {MODE_FORWARD, "Merge the updates into one and send it on to the aggregator upstream", "forward"},
    {0, nullptr, nullptr}};
  if (g_once_init_enter (&type)) g_once_init_leave (&type, g_enum_register_static ("GstSwarmAggregateMode", values));
  return GType (type);
}

namespace {

struct Settings : swarmlens::ModelSettings {
  Settings ();  // the broker library's defaults
  gint mode = MODE_SERVE;
  std::string snapshot;
  std::string signing_key;
  guint64 seed, staleness_grace, max_staleness;
  gint64 node_id = -1;          // a random one at start
  guint interval = 500;         // ms
  guint buffer_size, stats_interval = 1000;
  gdouble lr, clip_norm;
  gboolean retain;
  swarmlens::NatsSettings nats;
};

Settings::Settings () {
  const swarmlens::BrokerConfig b;
  seed = b.seed;
  staleness_grace = b.aggregation.staleness_grace;
  max_staleness = b.aggregation.max_staleness;
  buffer_size = b.aggregation.buffer_size;
  clip_norm = b.aggregation.norm.clip_norm;
  retain = b.retain;
  lr = swarmlens::averaging_server_lr (swarmlens::NodeTrainerConfig::kDefaultLr, 1);  // one trainer: its own rate
}

}  // namespace

struct _GstSwarmAggregate {
  GstAggregator parent;
  struct Private {
    std::mutex lock;  // protects settings
    Settings settings;
    // Made in start(), dropped in stop(). `run` is read-only in between.
    Settings run;
    std::unique_ptr<swarmlens::AggregateBackend> backend;  // serving or forwarding
    uint32_t node_id = 0;
    std::mutex model_lock;  // protects model, model_version
    GstBuffer *model = nullptr;  // the newest model for the trainers, encoded (null: none yet)
    uint64_t model_version = 0;
    std::mutex warn_lock;  // protects warned
    std::set<std::string> warned;  // rejection reasons already reported on the bus
    GstClockTime last_stats = GST_CLOCK_TIME_NONE;  // aggregate thread
  } *priv;
};

G_DEFINE_TYPE (GstSwarmAggregate, gst_swarm_aggregate, GST_TYPE_AGGREGATOR);
GST_ELEMENT_REGISTER_DEFINE (swarmaggregate, "swarmaggregate", GST_RANK_NONE, GST_TYPE_SWARM_AGGREGATE);

static GstStaticPadTemplate sink_template = GST_STATIC_PAD_TEMPLATE ("sink_%u", GST_PAD_SINK, GST_PAD_REQUEST,
    GST_STATIC_CAPS ("application/x-swarmlens-update"));
static GstStaticPadTemplate src_template = GST_STATIC_PAD_TEMPLATE ("src", GST_PAD_SRC, GST_PAD_ALWAYS,
    GST_STATIC_CAPS ("application/x-swarmlens-update; application/x-swarmlens-model"));

static void set_property (GObject * object, guint id, const GValue * v, GParamSpec * pspec) {
  if (swarmlens::refuse_while_running (GST_ELEMENT (object), pspec, v)) return;
  auto *self = GST_SWARM_AGGREGATE (object);
  std::lock_guard<std::mutex> g (self->priv->lock);
  Settings & s = self->priv->settings;
  auto str = [&] { return std::string (g_value_get_string (v) ? g_value_get_string (v) : ""); };
  switch (id) {
    case PROP_MODE: s.mode = g_value_get_enum (v); break;
    case PROP_SEED: s.seed = g_value_get_uint64 (v); break;
    case PROP_NODE_ID: s.node_id = g_value_get_int64 (v); break;
    case PROP_INTERVAL: s.interval = g_value_get_uint (v); break;
    case PROP_LEARNING_RATE: s.lr = g_value_get_double (v); break;
    case PROP_BUFFER_SIZE: s.buffer_size = g_value_get_uint (v); break;
    case PROP_CLIP_NORM: s.clip_norm = g_value_get_double (v); break;
    case PROP_STALENESS_GRACE: s.staleness_grace = g_value_get_uint64 (v); break;
    case PROP_MAX_STALENESS: s.max_staleness = g_value_get_uint64 (v); break;
    case PROP_SNAPSHOT: s.snapshot = str (); break;
    case PROP_SIGNING_KEY: s.signing_key = str (); break;
    case PROP_RETAIN: s.retain = g_value_get_boolean (v); break;
    case PROP_STATS_INTERVAL: s.stats_interval = g_value_get_uint (v); break;
    default:
      if (!swarmlens::model_set_property (s, PROP_MODEL, id, v) && !swarmlens::nats_set_property (s.nats, PROP_NATS_URL, id, v))
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
  }
}

static void get_property (GObject * object, guint id, GValue * v, GParamSpec * pspec) {
  auto *self = GST_SWARM_AGGREGATE (object);
  std::lock_guard<std::mutex> g (self->priv->lock);
  const Settings & s = self->priv->settings;
  switch (id) {
    case PROP_MODE: g_value_set_enum (v, s.mode); break;
    case PROP_SEED: g_value_set_uint64 (v, s.seed); break;
    case PROP_NODE_ID: g_value_set_int64 (v, s.node_id); break;
    case PROP_INTERVAL: g_value_set_uint (v, s.interval); break;
    case PROP_LEARNING_RATE: g_value_set_double (v, s.lr); break;
    case PROP_BUFFER_SIZE: g_value_set_uint (v, s.buffer_size); break;
    case PROP_CLIP_NORM: g_value_set_double (v, s.clip_norm); break;
    case PROP_STALENESS_GRACE: g_value_set_uint64 (v, s.staleness_grace); break;
    case PROP_MAX_STALENESS: g_value_set_uint64 (v, s.max_staleness); break;
    case PROP_SNAPSHOT: g_value_set_string (v, s.snapshot.c_str ()); break;
    case PROP_SIGNING_KEY: g_value_set_string (v, s.signing_key.c_str ()); break;
    case PROP_RETAIN: g_value_set_boolean (v, s.retain); break;
    case PROP_STATS_INTERVAL: g_value_set_uint (v, s.stats_interval); break;
    default:
      if (!swarmlens::model_get_property (s, PROP_MODEL, id, v) && !swarmlens::nats_get_property (s.nats, PROP_NATS_URL, id, v))
        G_OBJECT_WARN_INVALID_PROPERTY_ID (object, id, pspec);
  }
}

// The sink pads now, each with a reference (the list may change while we use them).
static std::vector<GstPad *> sink_pads (GstSwarmAggregate * self) {
  std::vector<GstPad *> pads;
  GST_OBJECT_LOCK (self);
  for (GList *l = GST_ELEMENT (self)->sinkpads; l; l = l->next) pads.push_back (GST_PAD (gst_object_ref (l->data)));
  GST_OBJECT_UNLOCK (self);
  return pads;
}

// A newer model for the trainers: kept for their start-time query and sent up every sink pad.
// Thread: any (the aggregate thread, a NATS callback, a downstream event).
static void share_model (GstSwarmAggregate * self, const swarmlens::Snapshot & s) {
  auto & p = *self->priv;
  GstBuffer *buf;
  {
    std::lock_guard<std::mutex> g (p.model_lock);
    if (p.model && s.version <= p.model_version) return;
    buf = swarmlens::model_buffer_new (s);
    if (p.model) gst_buffer_unref (p.model);
    p.model = gst_buffer_ref (buf);
    p.model_version = s.version;
  }
  for (GstPad *pad : sink_pads (self)) {
    gst_pad_push_event (pad, swarmlens::model_event_new (buf));  // fails harmlessly on an unlinked pad
    gst_object_unref (pad);
  }
  gst_buffer_unref (buf);
}

// The first rejection for each reason goes on the bus; the counts are in swarmaggregate-stats.
static void warn_rejection (GstSwarmAggregate * self, GstPad * pad, const std::string & key, const std::string & reason) {
  bool first;
  {
    std::lock_guard<std::mutex> g (self->priv->warn_lock);
    first = self->priv->warned.insert (key).second;
  }
  if (first)
    GST_ELEMENT_WARNING (self, STREAM, DECODE, ("Rejected an update on %s: %s", GST_PAD_NAME (pad), reason.c_str ()),
        ("The model is unchanged; later updates rejected for the same reason are counted in swarmaggregate-stats only"));
}

// One update from a sink pad (the aggregate thread).
static void take_update (GstSwarmAggregate * self, GstPad * pad, GstBuffer * buf) {
  auto & p = *self->priv;
  if (GST_BUFFER_FLAG_IS_SET (buf, GST_BUFFER_FLAG_GAP) && gst_buffer_get_size (buf) == 0) return;  // a chained aggregator's idle interval
  GstMapInfo map;
  if (!gst_buffer_map (buf, &map, GST_MAP_READ)) return;
  const std::vector<uint8_t> bytes (map.data, map.data + map.size);
  gst_buffer_unmap (buf, &map);
  const std::string reason = p.backend->submit (bytes);  // counted by the backend
  if (!reason.empty ()) warn_rejection (self, pad, reason.substr (0, reason.find (':')), reason);
}

static GstFlowReturn push_out (GstSwarmAggregate * self, GstBuffer * buf) {
  GstAggregator *agg = GST_AGGREGATOR (self);
  GST_OBJECT_LOCK (agg);
  const GstClockTime pts = GST_AGGREGATOR_PAD (agg->srcpad)->segment.position;
  GST_OBJECT_UNLOCK (agg);
  buf = gst_buffer_make_writable (buf);
  GST_BUFFER_PTS (buf) = GST_BUFFER_DTS (buf) = GST_CLOCK_TIME_IS_VALID (pts) ? pts : 0;
  return gst_aggregator_finish_buffer (agg, buf);
}

// An interval with nothing to send: an empty GAP buffer, so that downstream prerolls and knows the
// stream is alive (a live pipeline does not reach PLAYING until every sink prerolled).
static GstFlowReturn push_gap (GstSwarmAggregate * self) {
  GstBuffer *gap = gst_buffer_new ();
  GST_BUFFER_FLAG_SET (gap, GST_BUFFER_FLAG_GAP);
  GST_BUFFER_FLAG_SET (gap, GST_BUFFER_FLAG_DROPPABLE);
  GST_BUFFER_DURATION (gap) = GstClockTime (self->priv->run.interval) * GST_MSECOND;
  const GstFlowReturn ret = push_out (self, gap);
  return ret == GST_FLOW_NOT_LINKED && self->priv->backend->src_is_optional () ? GST_FLOW_OK : ret;
}

// Every interval: send the newer model (serving) or the combined update (forwarding) out of the src
// pad; a gap when there is nothing. The aggregate thread.
static GstFlowReturn tick (GstSwarmAggregate * self) {
  auto & p = *self->priv;
  swarmlens::AggregateOutput out = p.backend->tick ();
  if (out.warning)
    GST_ELEMENT_WARNING (self, RESOURCE, WRITE, ("%s", out.warning->what.c_str ()), ("%s", out.warning->detail.c_str ()));
  if (out.model) {  // already shared with the trainers: its encoded buffer goes out too
    GstBuffer *buf;
    {
      std::lock_guard<std::mutex> g (p.model_lock);
      buf = gst_buffer_ref (p.model);
    }
    return push_out (self, buf);
  }
  if (!out.update) return push_gap (self);
  GstFlowReturn ret = push_out (self, gst_buffer_new_memdup (out.update->bytes.data (), out.update->bytes.size ()));
  p.backend->delivered (*out.update, ret == GST_FLOW_OK);
  if (p.backend->src_is_optional () && (ret == GST_FLOW_NOT_LINKED || ret == GST_FLOW_FLUSHING)) ret = GST_FLOW_OK;
  return ret;
}

static void post_stats (GstSwarmAggregate * self) {
  auto & p = *self->priv;
  const swarmlens::AggregateStats c = p.backend->stats ();
  uint64_t rejected = 0;
  std::string by;
  for (const auto & [reason, n] : c.rejected) {
    rejected += n;
    by += (by.empty () ? "" : ",") + reason + "=" + std::to_string (n);
  }
  GstStructure *s = gst_structure_new ("swarmaggregate-stats",
      "mode", G_TYPE_STRING, p.run.mode == MODE_SERVE ? "serve" : "forward",
      "model-version", G_TYPE_UINT64, c.version, "updates-in", G_TYPE_UINT64, c.updates_in,
      "bytes-in", G_TYPE_UINT64, c.bytes_in, "accepted", G_TYPE_UINT64, c.accepted,
      "rejected", G_TYPE_UINT64, rejected, "rejected-by", G_TYPE_STRING, by.c_str (),
      "updates-out", G_TYPE_UINT64, c.updates_out, "bytes-out", G_TYPE_UINT64, c.bytes_out,
      "models-out", G_TYPE_UINT64, c.models_out, "pending", G_TYPE_UINT64, c.pending,
      "node-id", G_TYPE_UINT, p.node_id, nullptr);
  gst_element_post_message (GST_ELEMENT (self), gst_message_new_element (GST_OBJECT (self), s));
}

static GstFlowReturn aggregate (GstAggregator * agg, gboolean timeout) {
  auto *self = GST_SWARM_AGGREGATE (agg);
  auto & p = *self->priv;
  const auto pads = sink_pads (self);
  bool all_eos = !pads.empty ();
  for (GstPad *pad : pads) {
    auto *apad = GST_AGGREGATOR_PAD (pad);
    while (GstBuffer *buf = gst_aggregator_pad_pop_buffer (apad)) {
      take_update (self, pad, buf);
      gst_buffer_unref (buf);
    }
    if (!gst_aggregator_pad_is_eos (apad)) all_eos = false;
    gst_object_unref (pad);
  }
  // The next tick is the src segment's position (get_next_time): the base class waits on the clock
  // for it, but updates arriving wake it earlier, so the clock is checked here too.
  GstClockTime now = GST_CLOCK_TIME_NONE;
  if (GstClock *clock = gst_element_get_clock (GST_ELEMENT (agg))) {
    const GstClockTime t = gst_clock_get_time (clock), base = gst_element_get_base_time (GST_ELEMENT (agg));
    if (t >= base) now = t - base;
    gst_object_unref (clock);
  }
  GST_OBJECT_LOCK (agg);
  GstSegment & seg = GST_AGGREGATOR_PAD (agg->srcpad)->segment;
  const GstClockTime next = GST_CLOCK_TIME_IS_VALID (seg.position) ? seg.position : seg.start;
  GST_OBJECT_UNLOCK (agg);
  GstFlowReturn ret = GST_FLOW_OK;
  if (timeout || all_eos || (GST_CLOCK_TIME_IS_VALID (now) && now >= next)) {
    ret = tick (self);
    const GstClockTime step = GstClockTime (p.run.interval) * GST_MSECOND;
    GST_OBJECT_LOCK (agg);
    seg.position = (GST_CLOCK_TIME_IS_VALID (now) && now > next ? now : next) + step;
    GST_OBJECT_UNLOCK (agg);
  }
  const GstClockTime wall = gst_util_get_timestamp ();
  if (all_eos || (p.run.stats_interval > 0 && (!GST_CLOCK_TIME_IS_VALID (p.last_stats) ||
                                                wall - p.last_stats >= p.run.stats_interval * GST_MSECOND))) {
    p.last_stats = wall;  // at EOS whatever the interval: the final figures
    post_stats (self);
  }
  if (ret != GST_FLOW_OK) return ret;
  return all_eos ? GST_FLOW_EOS : GST_FLOW_OK;
}

static gboolean start (GstAggregator * agg) {
  auto *self = GST_SWARM_AGGREGATE (agg);
  if (!swarmlens::check_ranges (GST_ELEMENT (self))) return FALSE;  // before the settings lock: it reads them
  auto & p = *self->priv;
  {
    std::lock_guard<std::mutex> g (p.lock);
    p.run = p.settings;
  }
  const Settings & s = p.run;
  const swarmlens::ModelSpec spec = swarmlens::camera_model_spec (s.model, s.input_width, s.input_height, 1, s.classes);
  p.node_id = s.node_id >= 0 ? guint32 (s.node_id) : guint32 (std::random_device {} () & 0x7fffffff);
  p.warned.clear ();
  p.last_stats = GST_CLOCK_TIME_NONE;
  auto to_trainers = [self] (const swarmlens::Snapshot & m) { share_model (self, m); };
  bool link_failed = false;  // nats_open_link posted the error
  try {
    if (s.mode == MODE_SERVE) {
      swarmlens::BrokerConfig cfg;
      cfg.model_id = s.model_id;
      cfg.model = spec;
      cfg.seed = s.seed;
      cfg.snapshot_path = s.snapshot;
      cfg.signing_key_path = s.signing_key;
      cfg.retain = s.retain;
      cfg.aggregation.server_lr = s.lr;
      cfg.aggregation.buffer_size = s.buffer_size;
      cfg.aggregation.norm.clip_norm = s.clip_norm;
      cfg.aggregation.staleness_grace = s.staleness_grace;
      cfg.aggregation.max_staleness = s.max_staleness;
      std::unique_ptr<swarmlens::NatsLink> link;
      if (!s.nats.url.empty ()) link = swarmlens::NatsLink::connect (swarmlens::nats_options (GST_ELEMENT (self), s.nats));
      p.backend = swarmlens::make_serving_backend (cfg, std::move (link), to_trainers);
      GST_INFO_OBJECT (self, "serving model '%s' from version %" G_GUINT64_FORMAT, s.model_id.c_str (), p.backend->stats ().version);
      if (!s.nats.url.empty () && s.signing_key.empty ())
        GST_ELEMENT_WARNING (self, RESOURCE, SETTINGS, ("Models are published unsigned"),
            ("no %s: nodes on NATS can only trust the models blindly", swarmlens::props::kSigningKey));
    } else {
      swarmlens::ForwardConfig cfg;
      cfg.model_id = s.model_id;
      cfg.model = spec;
      cfg.merger.node_id = p.node_id;
      cfg.merger.norm.clip_norm = s.clip_norm;
      // Sequences start at the wall clock in microseconds, so a restarted gateway with the same
      // node-id is never taken for a replay upstream.
      cfg.merger.first_sequence = uint64_t (std::chrono::duration_cast<std::chrono::microseconds> (
          std::chrono::system_clock::now ().time_since_epoch ()).count ());
      swarmlens::OpenUpstream open;
      if (!s.nats.url.empty ())
        open = [self, &s, &spec, &link_failed] (swarmlens::NodeLink::ModelHandler on_model) {
          auto link = swarmlens::nats_open_link (GST_ELEMENT (self), s.nats, s.model_id, spec, std::move (on_model));
          link_failed = !link;
          return link;
        };
      p.backend = swarmlens::make_forwarding_backend (cfg, open, to_trainers);
      GST_INFO_OBJECT (self, "forwarding model '%s' as node %u", s.model_id.c_str (), p.node_id);
    }
  } catch (const std::exception & e) {
    p.backend.reset ();
    if (!link_failed) GST_ELEMENT_ERROR (self, RESOURCE, SETTINGS, ("Cannot start the aggregator"), ("%s", e.what ()));
    return FALSE;
  }
  return TRUE;
}

static gboolean stop (GstAggregator * agg) {
  auto *self = GST_SWARM_AGGREGATE (agg);
  auto & p = *self->priv;
  if (p.backend) {
    for (const auto & w : p.backend->finish ())
      GST_ELEMENT_WARNING (self, RESOURCE, WRITE, ("%s", w.what.c_str ()), ("%s", w.detail.c_str ()));
    post_stats (self);  // the final figures, whatever the interval
    p.backend.reset ();  // no model callback after this
  }
  std::lock_guard<std::mutex> g (p.model_lock);
  if (p.model) gst_buffer_unref (p.model);
  p.model = nullptr;
  p.model_version = 0;
  return TRUE;
}

static GstFlowReturn update_src_caps (GstAggregator * agg, GstCaps * downstream, GstCaps ** ret) {
  auto *self = GST_SWARM_AGGREGATE (agg);
  GstCaps *mine = gst_caps_new_empty_simple (self->priv->run.mode == MODE_SERVE ? swarmlens::kModelCaps : swarmlens::kUpdateCaps);
  *ret = gst_caps_intersect (downstream, mine);
  gst_caps_unref (mine);
  return gst_caps_is_empty (*ret) ? GST_FLOW_NOT_NEGOTIATED : GST_FLOW_OK;
}

static gboolean sink_query (GstAggregator * agg, GstAggregatorPad * pad, GstQuery * query) {
  auto *self = GST_SWARM_AGGREGATE (agg);
  if (swarmlens::is_model_query (query)) {  // a trainer starting: our newest model, if there is one
    std::lock_guard<std::mutex> g (self->priv->model_lock);
    if (!self->priv->model) return FALSE;
    swarmlens::model_query_answer (query, self->priv->model);
    return TRUE;
  }
  return GST_AGGREGATOR_CLASS (gst_swarm_aggregate_parent_class)->sink_query (agg, pad, query);
}

static gboolean src_event (GstAggregator * agg, GstEvent * event) {
  auto *self = GST_SWARM_AGGREGATE (agg);
  std::shared_ptr<const swarmlens::Snapshot> model;
  try {
    model = swarmlens::model_from_event (event);
  } catch (const std::exception & e) {
    GST_ELEMENT_WARNING (self, STREAM, DECODE, ("Bad model from downstream"), ("%s", e.what ()));
    gst_event_unref (event);
    return FALSE;
  }
  if (!model) return GST_AGGREGATOR_CLASS (gst_swarm_aggregate_parent_class)->src_event (agg, event);
  gst_event_unref (event);
  // Forward mode chained into another swarmaggregate: its model comes up to us, and on to our trainers.
  if (self->priv->run.mode != MODE_FORWARD || !self->priv->backend) return TRUE;  // a server has its own model
  try {
    self->priv->backend->model_from_upstream (*model);
  } catch (const std::invalid_argument & e) {
    GST_ELEMENT_WARNING (self, STREAM, DECODE, ("Model from downstream is for another layout"), ("%s", e.what ()));
    return FALSE;
  }
  return TRUE;
}

static void finalize (GObject * object) {
  auto *self = GST_SWARM_AGGREGATE (object);
  if (self->priv->model) gst_buffer_unref (self->priv->model);
  delete self->priv;
  G_OBJECT_CLASS (gst_swarm_aggregate_parent_class)->finalize (object);
}

static void gst_swarm_aggregate_class_init (GstSwarmAggregateClass * klass) {
  auto *gobject = G_OBJECT_CLASS (klass);
  auto *element = GST_ELEMENT_CLASS (klass);
  auto *base = GST_AGGREGATOR_CLASS (klass);
  gobject->set_property = set_property;
  gobject->get_property = get_property;
  gobject->finalize = finalize;
  const auto ready = GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  const Settings d;  // the defaults
  g_object_class_install_property (gobject, PROP_MODE, g_param_spec_enum ("mode", "Mode",
      "serve: be the aggregator; forward: merge the updates and send them on to the aggregator upstream",
      GST_TYPE_SWARM_AGGREGATE_MODE, d.mode, ready));
  swarmlens::model_install_properties (gobject, PROP_MODEL, {
      "Model registry name, as the trainers' (cnn or mobilenet)",
      "The model's id, as the trainers' (updates for another are rejected; NATS subjects swarmlens.<model-id>.*)",
      "the trainers' (cnn: 28)", nullptr});
  g_object_class_install_property (gobject, PROP_SEED, g_param_spec_uint64 ("seed", "Seed",
      "Seed of the initial weights, as the trainers' (serve)", 0, G_MAXUINT64, d.seed, ready));
  g_object_class_install_property (gobject, PROP_NODE_ID, swarmlens::checked_int64 ("node-id", "Node id",
      "This gateway's node id upstream (forward; -1 = a random one at start)", -1, G_MAXUINT32, d.node_id, ready));
  g_object_class_install_property (gobject, PROP_INTERVAL, swarmlens::checked_uint ("interval", "Interval",
      "Milliseconds between combined updates sent on (forward) or models served (serve)", 1, 3600000, d.interval, ready));
  g_object_class_install_property (gobject, PROP_LEARNING_RATE, swarmlens::checked_double ("learning-rate",
      "Learning rate", "Server learning rate (serve): w -= learning-rate * update; the trainers' learning-rate "
      "divided by their number keeps their steps as they would be alone", 1e-6, 10.0, d.lr, ready));
  g_object_class_install_property (gobject, PROP_BUFFER_SIZE, swarmlens::checked_uint ("buffer-size", "Buffer size",
      "Updates merged per model version (serve; FedBuff K)", 1, 100000, d.buffer_size, ready));
  g_object_class_install_property (gobject, PROP_CLIP_NORM, swarmlens::checked_double ("clip-norm", "Clip norm",
      "fixed L2 bound per update, larger ones scaled down (0 = adaptive, as swarmlens-broker: clip to a multiple of the median norm of recent accepted updates, refuse above an absolute ceiling; docs/security.md)", 0.0, G_MAXDOUBLE, d.clip_norm, ready));
  g_object_class_install_property (gobject, PROP_STALENESS_GRACE, g_param_spec_uint64 ("staleness-grace",
      "Staleness grace", "Model versions an update may lag and still weigh 1 (serve)", 0, G_MAXUINT64, d.staleness_grace, ready));
  g_object_class_install_property (gobject, PROP_MAX_STALENESS, g_param_spec_uint64 ("max-staleness",
      "Max staleness", "Updates lagging more model versions are rejected (serve)", 0, G_MAXUINT64, d.max_staleness, ready));
  g_object_class_install_property (gobject, PROP_SIGNING_KEY, g_param_spec_string (swarmlens::props::kSigningKey, "Signing key",
      "serve: Ed25519 secret key file; every model and ack published on NATS is signed with it (made, with "
      "its .pub beside it, when the file does not exist); nodes verify with model-key = the .pub. Empty = "
      "unsigned: nodes can only trust models blindly", "", ready));
  g_object_class_install_property (gobject, PROP_SNAPSHOT, g_param_spec_string ("snapshot", "Snapshot",
      "Snapshot file: resumed from at start, rewritten on each model served (serve; empty = none)", d.snapshot.c_str (), ready));
  g_object_class_install_property (gobject, PROP_RETAIN, g_param_spec_boolean ("retain", "Retain",
      "Keep the served model in JetStream for late joiners and restarts (serve with nats-url; the server needs -js)",
      d.retain, ready));
  g_object_class_install_property (gobject, PROP_STATS_INTERVAL, swarmlens::checked_uint ("stats-interval",
      "Stats interval", "Milliseconds between swarmaggregate-stats bus messages (0 = none)", 0, 3600000, d.stats_interval, ready));
  swarmlens::nats_install_properties (gobject, PROP_NATS_URL);

  gst_element_class_add_static_pad_template_with_gtype (element, &sink_template, GST_TYPE_AGGREGATOR_PAD);
  gst_element_class_add_static_pad_template_with_gtype (element, &src_template, GST_TYPE_AGGREGATOR_PAD);
  gst_element_class_set_static_metadata (element, "Swarmlens aggregator", "Filter/Aggregator",
      "Merges the compressed updates of swarmtrain elements: serves the shared model back to them, or "
      "forwards one combined update upstream (hierarchical aggregation)", "Swarmlens developers");
  base->start = start;
  base->stop = stop;
  base->aggregate = aggregate;
  base->get_next_time = gst_aggregator_simple_get_next_time;
  base->update_src_caps = update_src_caps;
  base->sink_query = sink_query;
  base->src_event = src_event;
  GST_DEBUG_CATEGORY_INIT (swarm_aggregate_debug, "swarmaggregate", 0, "Swarmlens aggregator");
}

static void gst_swarm_aggregate_init (GstSwarmAggregate * self) {
  self->priv = new _GstSwarmAggregate::Private ();
  // Trainers release updates whenever their triggers fire: aggregate on the clock, never wait for all.
  gst_aggregator_set_force_live (GST_AGGREGATOR (self), TRUE);
}
