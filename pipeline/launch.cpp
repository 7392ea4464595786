#include "launch.h"

#include <fmt/core.h>
#include <gst/gst.h>
#include <signal.h>
#include <stdlib.h>

#include <atomic>
#include <stdexcept>

namespace swarmlens {

namespace {

using Clock = std::chrono::steady_clock;

std::atomic<bool> g_stop{false};
extern "C" void on_stop_signal(int) { g_stop = true; }

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

GstElement* parse(const std::string& desc) {
  GError* err = nullptr;
  GstElement* p = gst_parse_launch(desc.c_str(), &err);
  if (!p || err) {
    const std::string why = err ? err->message : "?";
    if (err) g_error_free(err);
    if (p) gst_object_unref(p);
    throw std::invalid_argument(why);
  }
  return p;
}

// Keeps the unsigned integer fields of an element's "*-stats" message.
void keep_stats(GstMessage* m, std::map<std::string, std::map<std::string, uint64_t>>& stats) {
  const GstStructure* s = gst_message_get_structure(m);
  if (GST_MESSAGE_TYPE(m) != GST_MESSAGE_ELEMENT || !s || !g_str_has_suffix(gst_structure_get_name(s), "-stats")) return;
  auto& fields = stats[GST_OBJECT_NAME(GST_MESSAGE_SRC(m))];
  fields.clear();
  gst_structure_foreach(s, +[](GQuark field, const GValue* v, gpointer data) -> gboolean {
    auto* f = static_cast<std::map<std::string, uint64_t>*>(data);
    if (G_VALUE_HOLDS_UINT64(v)) (*f)[g_quark_to_string(field)] = g_value_get_uint64(v);
    else if (G_VALUE_HOLDS_UINT(v)) (*f)[g_quark_to_string(field)] = g_value_get_uint(v);
    return TRUE;
  }, &fields);
}

StatsFields stats_fields(const GstStructure* s) {
  StatsFields f;
  gst_structure_foreach(s, +[](GQuark field, const GValue* v, gpointer data) -> gboolean {
    auto* out = static_cast<StatsFields*>(data);
    const char* name = g_quark_to_string(field);
    if (G_VALUE_HOLDS_UINT64(v)) out->numbers[name] = double(g_value_get_uint64(v));
    else if (G_VALUE_HOLDS_UINT(v)) out->numbers[name] = g_value_get_uint(v);
    else if (G_VALUE_HOLDS_DOUBLE(v)) out->numbers[name] = g_value_get_double(v);
    else if (G_VALUE_HOLDS_BOOLEAN(v)) out->numbers[name] = g_value_get_boolean(v) ? 1 : 0;
    else if (G_VALUE_HOLDS_STRING(v) && g_value_get_string(v)) out->strings[name] = g_value_get_string(v);
    return TRUE;
  }, &f);
  return f;
}

// A swarmtrain-stats message as one log line: what the person running the node looks for.
std::string stats_line(const GstStructure* s) {
  const auto u64 = [s](const char* f) {
    guint64 v = 0;
    gst_structure_get_uint64(s, f, &v);
    return v;
  };
  std::string line = fmt::format("frames {} steps {} model v{}", u64("samples") + u64("dropped"), u64("steps"),
                                 u64("model-version"));
  if (gst_structure_has_field(s, "connected")) {
    gboolean connected = FALSE;
    gst_structure_get_boolean(s, "connected", &connected);
    line += fmt::format(" | {} | updates sent {} delivered {} refused {}", connected ? "connected" : "DISCONNECTED",
                        u64("messages"), u64("updates-delivered"), u64("updates-refused"));
    if (const char* why = gst_structure_get_string(s, "last-refusal"); why && *why) line += fmt::format(" (last: {})", why);
    line += fmt::format(" | bytes up {} down {}", u64("bytes-sent"), u64("bytes-received"));
  } else {
    line += fmt::format(" | standalone | updates {} ({} bytes)", u64("messages"), u64("bytes-out"));
  }
  if (const char* state = gst_structure_get_string(s, "state")) line += fmt::format(" | {}", state);
  gboolean diverged = FALSE;
  if (gst_structure_get_boolean(s, "diverged", &diverged) && diverged) line += " | NOT LEARNING (non-finite gradients)";
  if (const auto n = u64("unknown-labels")) line += fmt::format(" | {} frames with unknown labels", n);
  gdouble held_out = -1.0;
  if (gst_structure_get_double(s, "holdout-accuracy", &held_out) && held_out >= 0)
    line += fmt::format(" | held-out accuracy {:.3f} (last {} frames)", held_out, u64("holdout-samples"));
  return line;
}

}  // namespace

void catch_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool stop_requested() { return g_stop; }

int run_launch(const std::string& desc, const std::string& who, double duration) {
  return run_launch(desc, who, duration, LaunchHooks{});
}

int run_launch(const std::string& desc, const std::string& who, double duration, const LaunchHooks& hooks) {
  catch_stop_signals();
  gst_init(nullptr, nullptr);
  GstElement* pipeline = nullptr;
  try {
    pipeline = parse(desc);
  } catch (const std::invalid_argument& e) {
    fmt::print(stderr, "{}: bad pipeline: {}\n  {}\n", who, e.what(), desc);
    return 2;
  }
  if (hooks.on_pipeline) hooks.on_pipeline(pipeline);
  GstBus* bus = gst_element_get_bus(pipeline);
  int rc = 0;
  // Prints an error or warning; true for an error.
  const auto report = [&who](GstMessage* m) {
    GError* e = nullptr;
    gchar* dbg = nullptr;
    const bool error = GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR;
    if (error) gst_message_parse_error(m, &e, &dbg);
    else gst_message_parse_warning(m, &e, &dbg);
    fmt::print(stderr, "{}: {} from {}: {}{}{}\n", who, error ? "error" : "warning",
               GST_OBJECT_NAME(GST_MESSAGE_SRC(m)), e->message, dbg ? "\n  " : "", dbg ? dbg : "");
    g_error_free(e);
    g_free(dbg);
    return error;
  };
  const auto& on_train_stats = hooks.on_train_stats;
  const auto print_stats = [&who, &on_train_stats](GstMessage* m) {
    const GstStructure* s = gst_message_get_structure(m);
    if (!s || !gst_structure_has_name(s, "swarmtrain-stats")) return;
    fmt::print(stderr, "{}: {}: {}\n", who, GST_OBJECT_NAME(GST_MESSAGE_SRC(m)), stats_line(s));
    if (on_train_stats) on_train_stats(stats_fields(s));
  };
  if (gst_element_set_state(pipeline, GST_STATE_PLAYING) == GST_STATE_CHANGE_FAILURE) {
    rc = 1;  // an element refused to start: say why (its error is already on the bus)
    while (GstMessage* m = gst_bus_pop_filtered(bus, GstMessageType(GST_MESSAGE_ERROR | GST_MESSAGE_WARNING))) {
      report(m);
      gst_message_unref(m);
    }
  }
  const auto t0 = Clock::now();
  bool eos_sent = false;
  Clock::time_point eos_at;
  while (rc == 0) {
    if (!eos_sent && (stop_requested() || (duration > 0 && seconds_since(t0) >= duration))) {
      gst_element_send_event(pipeline, gst_event_new_eos());  // the end of the stream, as a camera unplugged
      eos_sent = true;
      eos_at = Clock::now();
    }
    if (eos_sent && seconds_since(eos_at) > 10) break;  // EOS did not come through: stop anyway
    GstMessage* m = gst_bus_timed_pop_filtered(
        bus, 100 * GST_MSECOND, GstMessageType(GST_MESSAGE_ERROR | GST_MESSAGE_EOS | GST_MESSAGE_WARNING | GST_MESSAGE_ELEMENT));
    if (!m) continue;
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS) {
      gst_message_unref(m);
      break;
    }
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT) print_stats(m);
    else if (report(m)) rc = 1;
    gst_message_unref(m);
  }
  // READY first: the elements stop there (swarmtrain sends what is still pending and writes its
  // checkpoint), and what they say while stopping (a checkpoint that could not be written, an update
  // left unanswered, the final figures) reaches the console; going to NULL flushes the bus.
  gst_element_set_state(pipeline, GST_STATE_READY);
  while (GstMessage* m = gst_bus_pop_filtered(bus, GstMessageType(GST_MESSAGE_ERROR | GST_MESSAGE_WARNING | GST_MESSAGE_ELEMENT))) {
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT) print_stats(m);
    else if (report(m)) rc = 1;
    gst_message_unref(m);
  }
  gst_element_set_state(pipeline, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(pipeline);
  return rc;
}

uint64_t Measured::stat(const std::string& element, const std::string& field) const {
  const auto e = stats.find(element);
  if (e == stats.end()) throw std::runtime_error("no stats from " + element);
  const auto f = e->second.find(field);
  if (f == e->second.end()) throw std::runtime_error("no " + field + " in the stats of " + element);
  return f->second;
}

uint64_t Measured::stat_or_zero(const std::string& element, const std::string& field) const {
  return stats.count(element) ? stat(element, field) : 0;
}

Measured run_measured(const std::string& desc, const MeasureOptions& o) {
  gst_init(nullptr, nullptr);
  GstElement* p = nullptr;
  try {
    p = parse(desc);
  } catch (const std::invalid_argument& e) {
    throw std::runtime_error(std::string("pipeline: ") + e.what() + ": " + desc);
  }
  Measured r;
  struct Probe {
    Measured* r;
    const MeasureOptions* o;
  } probe{&r, &o};
  if (o.probe_sink || o.on_sink_buffer) {
    GstElement* sink = gst_bin_get_by_name(GST_BIN(p), "sink");
    if (!sink) {
      gst_object_unref(p);
      throw std::runtime_error("no element named sink to probe: " + desc);
    }
    GstPad* pad = gst_element_get_static_pad(sink, "sink");
    gst_pad_add_probe(pad, GST_PAD_PROBE_TYPE_BUFFER, +[](GstPad*, GstPadProbeInfo* info, gpointer data) {
      const auto* pr = static_cast<const Probe*>(data);
      if (pr->o->on_sink_buffer) pr->o->on_sink_buffer(GST_PAD_PROBE_INFO_BUFFER(info));
      if (pr->o->probe_sink) pr->r->sink_buffers.push_back(Clock::now());
      return GST_PAD_PROBE_OK;
    }, &probe, nullptr);
    gst_object_unref(pad);
    gst_object_unref(sink);
  }
  GstBus* bus = gst_element_get_bus(p);
  r.playing = Clock::now();
  gst_element_set_state(p, GST_STATE_PLAYING);
  std::string error;
  bool eos_sent = false;
  for (bool done = false; !done;) {
    if (o.stop_after > 0 && !eos_sent && seconds_since(r.playing) >= o.stop_after) {
      gst_element_send_event(p, gst_event_new_eos());
      eos_sent = true;
    }
    if (seconds_since(r.playing) > o.timeout + o.stop_after) {
      error = fmt::format("no end in {:.0f} s", o.timeout + o.stop_after);
      break;
    }
    GstMessage* m = gst_bus_timed_pop(bus, 100 * GST_MSECOND);
    if (!m) continue;
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS) done = true;
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
      GError* e = nullptr;
      gst_message_parse_error(m, &e, nullptr);
      error = e->message;
      g_error_free(e);
      done = true;
    }
    keep_stats(m, r.stats);
    gst_message_unref(m);
  }
  r.ended = Clock::now();
  gst_element_set_state(p, GST_STATE_READY);  // not NULL yet: that flushes the bus
  while (GstMessage* m = gst_bus_pop(bus)) {  // the stats elements post while stopping
    keep_stats(m, r.stats);
    gst_message_unref(m);
  }
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(p);
  if (!error.empty()) throw std::runtime_error("pipeline failed: " + error + ": " + desc);
  return r;
}

void use_build_plugin_dir() {
  if (!std::getenv("GST_PLUGIN_PATH")) setenv("GST_PLUGIN_PATH", SWARMLENS_BUILD_PLUGIN_DIR, 0);
}

}  // namespace swarmlens
