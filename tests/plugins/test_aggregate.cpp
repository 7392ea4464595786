// swarmaggregate through real pipelines: trainers on their update pads, serve and forward modes,
// chained and over NATS, and bad updates pushed in by appsrc. The plugin comes from the build folder.
#include <catch2/catch.hpp>
#include <gst/gst.h>

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <chrono>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "broker_service.h"
#include "node_link.h"
#include "dataset.h"
#include "metrics.h"
#include "model.h"
#include "nats_server.h"
#include "served_broker.h"
#include "snapshot.h"

using namespace swarmlens;

namespace {

struct GstInit {
  GstInit() { gst_init(nullptr, nullptr); }
};
const GstInit gst_once;

guint64 u64(const GstStructure* s, const char* f) {
  guint64 v = 0;
  gst_structure_get_uint64(s, f, &v);
  return v;
}

// What a pipeline run leaves: the last stats message of each element, warnings, the end.
struct Run {
  std::map<std::string, GstStructure*> stats;  // element name -> its last *-stats structure
  std::vector<std::string> warnings;
  GstMessageType end = GST_MESSAGE_UNKNOWN;
  std::string error;
  std::shared_ptr<Snapshot> last_model;  // the last model out of a sink named "models", if any
  Run() = default;
  Run(const Run&) = delete;
  ~Run() {
    for (auto& [name, s] : stats) gst_structure_free(s);
  }
  const GstStructure* of(const std::string& name) const {
    auto it = stats.find(name);
    REQUIRE(it != stats.end());
    return it->second;
  }
};

void on_model(GstElement*, GstBuffer* b, GstPad*, gpointer data) {
  if (gst_buffer_get_size(b) == 0) return;  // an idle interval
  GstMapInfo map;
  gst_buffer_map(b, &map, GST_MAP_READ);
  static_cast<Run*>(data)->last_model = std::make_shared<Snapshot>(decode_snapshot(map.data, map.size, "model out"));
  gst_buffer_unmap(b, &map);
}

// Plays `desc` to EOS (or error), then to NULL, collecting what Run holds.
void play(const std::string& desc, Run& run, GstElement** keep = nullptr,
          const std::function<void(GstElement*)>& while_playing = {}) {
  GError* err = nullptr;
  GstElement* p = gst_parse_launch(desc.c_str(), &err);
  INFO(desc << (err ? err->message : ""));
  REQUIRE(p);
  if (GstElement* models = gst_bin_get_by_name(GST_BIN(p), "models")) {
    g_object_set(models, "signal-handoffs", TRUE, nullptr);
    g_signal_connect(models, "handoff", G_CALLBACK(on_model), &run);
    gst_object_unref(models);
  }
  REQUIRE(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  if (while_playing) while_playing(p);
  GstBus* bus = gst_element_get_bus(p);
  auto take = [&](GstMessage* m) {
    const GstStructure* s = gst_message_get_structure(m);
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT && s && g_str_has_suffix(gst_structure_get_name(s), "-stats")) {
      GstStructure*& slot = run.stats[GST_OBJECT_NAME(GST_MESSAGE_SRC(m))];
      if (slot) gst_structure_free(slot);
      slot = gst_structure_copy(s);
    } else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_WARNING) {
      GError* e = nullptr;
      gst_message_parse_warning(m, &e, nullptr);
      run.warnings.push_back(e->message);
      g_error_free(e);
    }
  };
  while (run.end == GST_MESSAGE_UNKNOWN) {
    GstMessage* m = gst_bus_timed_pop(bus, 180 * GST_SECOND);
    REQUIRE(m);
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS) run.end = GST_MESSAGE_EOS;
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
      GError* e = nullptr;
      gst_message_parse_error(m, &e, nullptr);
      run.error = e->message;
      g_error_free(e);
      run.end = GST_MESSAGE_ERROR;
    }
    take(m);
    gst_message_unref(m);
  }
  gst_element_set_state(p, GST_STATE_NULL);  // stop(): the final stats
  while (GstMessage* m = gst_bus_pop(bus)) {
    take(m);
    gst_message_unref(m);
  }
  gst_object_unref(bus);
  if (keep) *keep = p;
  else gst_object_unref(p);
}

// A node: every frame of its shard trained (drop-when-busy=false), updates out of its update pad.
std::string node(int index, int count, int frames, const std::string& extra = "") {
  return "swarmsrc num-buffers=" + std::to_string(frames) + " shard-index=" + std::to_string(index) +
         " shard-count=" + std::to_string(count) + " ! swarmtrain name=t" + std::to_string(index) + " node-id=" +
         std::to_string(index + 1) + " drop-when-busy=false momentum=0.6 trigger-age=1 warmup-steps=4 " +
         "learning-rate=0.05 " + extra + " ! fakesink ";
}

double accuracy_of(const Snapshot& s) {
  auto model = Model::create({}, 1);
  model->set_params(s.params.data());
  static const Dataset test = load_fashion_mnist(default_fashion_mnist_dir(), false);
  return evaluate_accuracy(*model, test, 2000);
}

}  // namespace

TEST_CASE("swarmaggregate serves two local trainers: their updates in, the model back to them", "[aggregate]") {
  set_compute_threads(1);
  // The aggregator's src is a sparse stream (a model per interval at most): its sink must not wait
  // for a preroll buffer, hence async=false.
  const std::string desc = node(0, 2, 1500) + node(1, 2, 1500) +
      "t0.update ! swarmaggregate name=agg learning-rate=0.025 interval=100 ! fakesink name=models async=false "
      "t1.update ! agg.";
  Run run;
  play(desc, run);
  REQUIRE(run.end == GST_MESSAGE_EOS);
  const GstStructure* agg = run.of("agg");
  const guint64 sent = u64(run.of("t0"), "messages") + u64(run.of("t1"), "messages");
  CHECK(u64(run.of("t0"), "steps") == 1500 / 32);
  CHECK(sent == 2 * (1500 / 32));           // trigger-age=1: one update per step
  CHECK(u64(agg, "updates-in") == sent);    // nothing lost on the way
  CHECK(u64(agg, "accepted") == sent);
  CHECK(u64(agg, "rejected") == 0);
  CHECK(u64(agg, "model-version") == sent);  // one version per update (buffer-size 1)
  CHECK(u64(agg, "bytes-in") == u64(run.of("t0"), "bytes-out") + u64(run.of("t1"), "bytes-out"));
  CHECK(u64(run.of("t0"), "model-version") > sent / 2);  // the trainers adopted the served model
  REQUIRE(run.last_model);
  CHECK(run.last_model->version == sent);
  CHECK(run.last_model->applied.at(1) > 0);
  CHECK(run.last_model->applied.at(2) > 0);
  for (float v : run.last_model->params) REQUIRE(std::isfinite(v));
  const double acc = accuracy_of(*run.last_model);
  INFO("test accuracy of the served model after 2 x 1500 frames: " << acc);
  // Chance is 0.1. The default norm bound (clip to the median norm) slows a clean federation a few
  // points (docs/benchmarks.md#attacks): 0.39 to 0.44 in runs here, against 0.4 as the bar before it.
  CHECK(acc > 0.33);
}

TEST_CASE("swarmaggregate forwards one combined update to the aggregator downstream", "[aggregate][forward]") {
  set_compute_threads(1);
  const std::string desc = node(0, 2, 1000) + node(1, 2, 1000) +
      "t0.update ! swarmaggregate name=gw mode=forward node-id=100 interval=200 ! "
      "swarmaggregate name=top learning-rate=0.025 interval=50 ! fakesink name=models async=false "
      "t1.update ! gw.";
  Run run;
  play(desc, run);
  REQUIRE(run.end == GST_MESSAGE_EOS);
  const GstStructure* gw = run.of("gw");
  const GstStructure* top = run.of("top");
  const guint64 sent = u64(run.of("t0"), "messages") + u64(run.of("t1"), "messages");
  CHECK(u64(gw, "accepted") == sent);
  CHECK(u64(gw, "pending") == 0);                     // everything merged went on
  CHECK(u64(gw, "updates-out") < sent);               // fewer, combined messages upstream
  CHECK(u64(gw, "updates-out") > 0);
  CHECK(u64(top, "accepted") == u64(gw, "updates-out"));
  CHECK(u64(top, "bytes-in") == u64(gw, "bytes-out"));
  CHECK(u64(top, "rejected") == 0);
  // The top model came back up through the gateway to the trainers.
  CHECK(u64(run.of("t0"), "model-version") > 0);
  CHECK(u64(gw, "model-version") > 0);
  REQUIRE(run.last_model);
  CHECK(run.last_model->applied.count(100) == 1);  // the top aggregator knows only the gateway
  CHECK(run.last_model->applied.count(1) == 0);
  const double acc = accuracy_of(*run.last_model);
  INFO("test accuracy through the gateway after 2 x 1000 frames: " << acc);
  CHECK(acc > 0.3);
}

TEST_CASE("swarmaggregate forwards over NATS to swarmlens-broker's service", "[aggregate][forward][nats]") {
  set_compute_threads(1);
  BrokerConfig bc;
  bc.model_id = "site";
  bc.aggregation.server_lr = 0.025;
  testing::ServedBroker served(bc);
  auto& [server, broker, publisher] = served;
  const std::string desc = node(0, 2, 800, "model-id=site") + node(1, 2, 800, "model-id=site") +
      "t0.update ! swarmaggregate name=gw mode=forward model-id=site node-id=7 interval=100 nats-url=" + server.url() +
      " ! fakesink async=false t1.update ! gw.";
  Run run;
  play(desc, run);
  REQUIRE(run.end == GST_MESSAGE_EOS);
  const GstStructure* gw = run.of("gw");
  const guint64 sent = u64(run.of("t0"), "messages") + u64(run.of("t1"), "messages");
  CHECK(u64(gw, "accepted") == sent);
  for (int i = 0; i < 100 && broker.stats().accepted < u64(gw, "updates-out"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const BrokerStats bs = broker.stats();
  CHECK(bs.accepted == u64(gw, "updates-out"));
  CHECK(bs.bytes_in == u64(gw, "bytes-out"));
  CHECK(bs.rejected.empty());
  CHECK(u64(run.of("t0"), "model-version") > 0);  // the broker's models reached the trainers
  publisher.stop();
  CHECK(broker.snapshot().applied.at(7) > 0);
}

TEST_CASE("swarmaggregate serving over NATS takes remote nodes' updates too and serves the model there", "[aggregate][nats]") {
  set_compute_threads(1);
  testing::NatsServer server;
  NatsOptions opts;
  opts.urls = {server.url()};
  // A remote node: one update on the update subject once the gateway listens, and the models it serves.
  std::atomic<uint64_t> remote_version{0};
  NodeLink remote(opts, "gwserve", [&](std::shared_ptr<const Snapshot> m) { remote_version = m->version; });
  const auto model = Model::create({}, 1);
  SparseVector sv;
  sv.dim = uint32_t(model->num_params());
  sv.index = {11};
  sv.value = {0.5f};
  const auto update = encode_update({"gwserve", model->layout_hash(), 0, 77, 1, 32}, sv, {});
  const std::string desc = node(0, 2, 600, "model-id=gwserve") +
      "t0.update ! swarmaggregate name=agg model-id=gwserve learning-rate=0.05 interval=100 nats-url=" + server.url() +
      " ! fakesink name=models async=false";
  Run run;
  play(desc, run, nullptr, [&](GstElement*) {
    // The element subscribed in start(), before PLAYING returned.
    REQUIRE(remote.send_update(update));
    remote.flush();
  });
  REQUIRE(run.end == GST_MESSAGE_EOS);
  const GstStructure* agg = run.of("agg");
  const guint64 local = u64(run.of("t0"), "messages");
  CHECK(u64(agg, "accepted") == local + 1);  // the trainer's and the remote node's
  CHECK(u64(agg, "rejected") == 0);
  REQUIRE(run.last_model);
  CHECK(run.last_model->applied.at(77) == 1);
  CHECK(run.last_model->applied.at(1) > 0);
  for (int i = 0; i < 100 && remote_version < run.last_model->version; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK(remote_version == run.last_model->version);  // served on NATS as well
  // ...and kept in JetStream for a node that starts now.
  const auto kept = fetch_retained_model(*NatsLink::connect(opts), "gwserve");
  REQUIRE(kept);
  CHECK(kept->version == run.last_model->version);
}

namespace {

std::vector<uint8_t> valid_update(uint32_t node, uint64_t seq, float value = 0.5f) {
  const auto model = Model::create({}, 1);
  SparseVector s;
  s.dim = uint32_t(model->num_params());
  s.index = {5, 17};
  s.value = {value, -0.25f};
  CodecConfig fp32;
  fp32.value = ValueCoding::Fp32;
  return encode_update({"default", model->layout_hash(), 0, node, seq, 32}, s, fp32);
}

void push(GstElement* src, const std::vector<uint8_t>& bytes) {
  GstBuffer* b = gst_buffer_new_memdup(bytes.data(), bytes.size());
  GstFlowReturn ret;
  g_signal_emit_by_name(src, "push-buffer", b, &ret);
  gst_buffer_unref(b);
  REQUIRE(ret == GST_FLOW_OK);
}

}  // namespace

TEST_CASE("swarmaggregate_rejects_malformed_nan_and_wrong_layout_updates, counts them, keeps the model finite",
          "[aggregate][reject]") {
  for (const char* mode : {"serve", "forward"}) {
    DYNAMIC_SECTION(mode) {
      const std::string desc = std::string("appsrc name=in format=time caps=application/x-swarmlens-update ! "
                                           "swarmaggregate name=agg interval=20 mode=") + mode +
                               " ! fakesink async=false" + (std::string(mode) == "serve" ? " name=models" : "");
      Run run;
      play(desc, run, nullptr, [](GstElement* p) {
        GstElement* in = gst_bin_get_by_name(GST_BIN(p), "in");
        push(in, {1, 2, 3});                                  // truncated
        auto nan = valid_update(9, 2);                        // NaN with a checksum that matches
        const float half = 0.5f, qnan = std::numeric_limits<float>::quiet_NaN();
        auto at = std::search(nan.begin(), nan.end(), reinterpret_cast<const uint8_t*>(&half),
                              reinterpret_cast<const uint8_t*>(&half) + 4);
        REQUIRE(at != nan.end());
        std::memcpy(&*at, &qnan, 4);
        const uint32_t crc = uint32_t(crc32(crc32(0L, Z_NULL, 0), nan.data(), uInt(nan.size() - 4)));
        std::memcpy(nan.data() + nan.size() - 4, &crc, 4);
        push(in, valid_update(9, 1));                         // fine
        push(in, valid_update(9, 1));                         // replayed
        push(in, nan);
        auto other = valid_update(9, 3);
        other[other.size() / 2] ^= 0xff;                      // corrupted: bad checksum
        push(in, other);
        push(in, std::vector<uint8_t>(3 << 20, 0x5a));        // 3 MB of garbage
        GstFlowReturn ret;
        g_signal_emit_by_name(in, "end-of-stream", &ret);
        gst_object_unref(in);
      });
      REQUIRE(run.end == GST_MESSAGE_EOS);
      const GstStructure* agg = run.of("agg");
      CHECK(u64(agg, "updates-in") == 6);
      CHECK(u64(agg, "accepted") == 1);
      CHECK(u64(agg, "rejected") == 5);
      const std::string by = gst_structure_get_string(agg, "rejected-by");
      CHECK_THAT(by, Catch::Contains("replayed=1"));
      CHECK_THAT(by, Catch::Contains("non_finite=1"));
      CHECK_THAT(by, Catch::Contains("truncated=1"));
      // One warning per reason on the bus, each naming it.
      CHECK(run.warnings.size() >= 4);
      CHECK(std::any_of(run.warnings.begin(), run.warnings.end(),
                        [](const std::string& w) { return w.find("non_finite") != std::string::npos; }));
      if (std::string(mode) == "serve") {
        REQUIRE(run.last_model);
        CHECK(run.last_model->version == 1);  // the one good update, and nothing else
        for (float v : run.last_model->params) REQUIRE(std::isfinite(v));
      } else {
        CHECK(u64(agg, "updates-out") == 1);
      }
    }
  }
}

TEST_CASE("swarmtrain hands out its update pad with the update caps, and takes it back", "[aggregate][swarmtrain]") {
  GstElement* t = gst_element_factory_make("swarmtrain", nullptr);
  REQUIRE(t);
  GstPad* pad = gst_element_request_pad_simple(t, "update");
  REQUIRE(pad);
  CHECK(std::string(GST_PAD_NAME(pad)) == "update");
  GstCaps* caps = gst_pad_query_caps(pad, nullptr);
  CHECK(gst_caps_is_equal(caps, gst_caps_from_string("application/x-swarmlens-update")));
  gst_caps_unref(caps);
  gst_element_release_request_pad(t, pad);
  gst_object_unref(pad);
  GstPad* again = gst_element_request_pad_simple(t, "update");  // released: can be had again
  CHECK(again);
  if (again) {
    gst_element_release_request_pad(t, again);
    gst_object_unref(again);
  }
  gst_object_unref(t);
}
