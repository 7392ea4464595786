// Element tests through GstHarness and real pipelines, driven from Catch2. The plugin is loaded from
// the build folder (GST_PLUGIN_PATH) with a registry of this test's own (GST_REGISTRY).
#include <catch2/catch.hpp>
#include <gst/check/gstharness.h>
#include <gst/gst.h>
#include <gst/video/video.h>

#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <ctime>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <chrono>
#include <string>
#include <fstream>
#include <thread>
#include <vector>

#include "broker_service.h"
#include "dataset.h"
#include "gstswarmmeta.h"  // struct layouts only; the API types are looked up by name
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

const GstSwarmLabelMeta* label_meta(GstBuffer* b) {
  return reinterpret_cast<const GstSwarmLabelMeta*>(
      gst_buffer_get_meta(b, g_type_from_name(GST_SWARM_LABEL_META_API_NAME)));
}
const GstSwarmClassificationMeta* class_meta(GstBuffer* b) {
  return reinterpret_cast<const GstSwarmClassificationMeta*>(
      gst_buffer_get_meta(b, g_type_from_name(GST_SWARM_CLASSIFICATION_META_API_NAME)));
}

GstBuffer* gray_frame(int w, int h, uint8_t value) {
  GstBuffer* b = gst_buffer_new_allocate(nullptr, size_t(GST_ROUND_UP_4(w)) * h, nullptr);
  gst_buffer_memset(b, 0, value, gst_buffer_get_size(b));
  return b;
}

// Runs a pipeline that must fail; returns the error message and its debug text.
std::pair<std::string, std::string> bus_error_of(const char* desc) {
  GError* err = nullptr;
  GstElement* p = gst_parse_launch(desc, &err);
  REQUIRE(p);
  gst_element_set_state(p, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(p);
  GstMessage* m = gst_bus_timed_pop_filtered(bus, 10 * GST_SECOND, GstMessageType(GST_MESSAGE_ERROR | GST_MESSAGE_EOS));
  REQUIRE(m);
  REQUIRE(GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR);
  GError* e = nullptr;
  gchar* debug = nullptr;
  gst_message_parse_error(m, &e, &debug);
  std::pair<std::string, std::string> out{e->message, debug ? debug : ""};
  g_error_free(e);
  g_free(debug);
  gst_message_unref(m);
  gst_object_unref(bus);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
  return out;
}

guint64 field_u64(const GstStructure* s, const char* f) {
  guint64 v = 0;
  gst_structure_get_uint64(s, f, &v);
  return v;
}

}  // namespace

TEST_CASE("the plugin registers its elements with documented properties", "[elements]") {
  for (const char* name : {"swarmsrc", "swarmtrain", "swarmclassify", "swarmoverlay", "swarmlabel", "swarmaggregate"}) {
    GstElement* e = gst_element_factory_make(name, nullptr);
    INFO(name);
    REQUIRE(e);
    guint n = 0;
    GParamSpec** props = g_object_class_list_properties(G_OBJECT_GET_CLASS(e), &n);
    for (guint i = 0; i < n; ++i) {
      if (props[i]->owner_type != G_OBJECT_TYPE(e)) continue;  // ours, not the base classes'
      INFO(g_param_spec_get_name(props[i]));
      CHECK(g_param_spec_get_blurb(props[i]) != nullptr);
      CHECK(std::string(g_param_spec_get_blurb(props[i])).size() > 10);
    }
    g_free(props);
    gst_object_unref(e);
  }
}

TEST_CASE("swarmtrain property ranges, defaults and mutability", "[elements][swarmtrain]") {
  GstElement* e = gst_element_factory_make("swarmtrain", nullptr);
  REQUIRE(e);
  auto* cls = G_OBJECT_GET_CLASS(e);
  auto* density = G_PARAM_SPEC_DOUBLE(g_object_class_find_property(cls, "density"));
  CHECK(density->default_value == Approx(0.001));
  auto* label = G_PARAM_SPEC_INT(g_object_class_find_property(cls, "label"));
  // A checked range (plugins/ranges.h): the spec takes any int, the blurb says the range.
  CHECK(std::string(g_param_spec_get_blurb(G_PARAM_SPEC(label))).find("[-1 .. 999; outside it, an error at start]") !=
        std::string::npos);
  CHECK(label->default_value == -1);
  CHECK((G_PARAM_SPEC(label)->flags & GST_PARAM_MUTABLE_PLAYING));
  CHECK((g_object_class_find_property(cls, "model")->flags & GST_PARAM_MUTABLE_READY));
  g_object_set(e, "batch-size", 8u, "learning-rate", 0.01, nullptr);
  guint batch = 0;
  gdouble lr = 0;
  g_object_get(e, "batch-size", &batch, "learning-rate", &lr, nullptr);
  CHECK(batch == 8);
  CHECK(lr == 0.01);
  gst_object_unref(e);
}

TEST_CASE("swarmsrc negotiates its caps and labels survive videoconvert and videoscale", "[elements][swarmsrc]") {
  GstHarness* h = gst_harness_new_parse(
      "swarmsrc fps-n=0 num-buffers=3 width=56 height=56 format=RGB ! videoconvert ! videoscale ! "
      "capsfilter caps=video/x-raw,format=BGRx,width=100,height=60");
  gst_harness_play(h);
  // The dataset order for shard 0 of 1 is the seeded IID shuffle: the labels are known.
  auto train = load_fashion_mnist(default_fashion_mnist_dir(), true);
  const auto order = shard_iid(train.size(), 1, 1)[0];
  for (int i = 0; i < 3; ++i) {
    GstBuffer* b = gst_harness_pull(h);
    REQUIRE(b);
    const auto* m = label_meta(b);
    REQUIRE(m);
    CHECK(m->label == train.labels[order[size_t(i)]]);
    CHECK(gst_buffer_get_size(b) == 100u * 60 * 4);
    gst_buffer_unref(b);
  }
  GstCaps* caps = gst_pad_get_current_caps(h->sinkpad);
  GstVideoInfo info;
  REQUIRE(gst_video_info_from_caps(&info, caps));
  CHECK(GST_VIDEO_INFO_WIDTH(&info) == 100);
  CHECK(GST_VIDEO_INFO_FORMAT(&info) == GST_VIDEO_FORMAT_BGRx);
  gst_caps_unref(caps);
  gst_harness_teardown(h);
}

TEST_CASE("swarmsrc plays a folder of images, one sub-folder per class, in colour", "[elements][swarmsrc]") {
  namespace fs = std::filesystem;
  const fs::path dir = "folder_dataset";
  fs::remove_all(dir);
  // Class 0 "apple" images are red, class 1 "pear" images green (sorted sub-folder order).
  for (auto [name, bgr] : {std::pair<const char*, cv::Scalar>{"apple", {0, 0, 255}}, {"pear", {0, 255, 0}}}) {
    fs::create_directories(dir / name);
    for (int i = 0; i < 3; ++i)
      cv::imwrite((dir / name / ("img" + std::to_string(i) + ".png")).string(), cv::Mat(40, 50, CV_8UC3, bgr));
  }
  std::ofstream(dir / "pear" / "notes.txt") << "not an image";
  GstHarness* h = gst_harness_new_parse("swarmsrc location=folder_dataset fps-n=0 width=16 height=16 format=RGB");
  gst_harness_play(h);
  int per_class[2] = {0, 0};
  for (int i = 0; i < 6; ++i) {
    GstBuffer* b = gst_harness_pull(h);
    REQUIRE(b);
    const auto* m = label_meta(b);
    REQUIRE(m);
    REQUIRE((m->label == 0 || m->label == 1));
    per_class[m->label]++;
    GstMapInfo map;
    REQUIRE(gst_buffer_map(b, &map, GST_MAP_READ));
    const int r = map.data[0], g = map.data[1];
    CHECK((m->label == 0 ? r > 200 && g < 50 : g > 200 && r < 50));  // RGB order, colours kept
    gst_buffer_unmap(b, &map);
    gst_buffer_unref(b);
  }
  CHECK(per_class[0] == 3);
  CHECK(per_class[1] == 3);
  GstEvent* e = gst_harness_pull_event(h);  // stream-start, caps, segment ... then EOS
  while (e && GST_EVENT_TYPE(e) != GST_EVENT_EOS) {
    gst_event_unref(e);
    e = gst_harness_pull_event(h);
  }
  CHECK(e != nullptr);
  if (e) gst_event_unref(e);
  gst_harness_teardown(h);
}

TEST_CASE("swarmsrc set= picks an image folder's train/ or test/ split, and refuses test on a folder without one", "[elements][swarmsrc]") {
  namespace fs = std::filesystem;
  const fs::path dir = "split_dataset";
  fs::remove_all(dir);
  // train/ holds dark images, test/ bright ones, two classes each.
  for (auto [split, value] : {std::pair<const char*, int>{"train", 20}, {"test", 230}})
    for (const char* name : {"a", "b"}) {
      fs::create_directories(dir / split / name);
      cv::imwrite((dir / split / name / "0.png").string(), cv::Mat(8, 8, CV_8UC1, cv::Scalar(value)));
    }
  for (auto [set, bright] : {std::pair<const char*, bool>{"train", false}, {"test", true}}) {
    GstHarness* h = gst_harness_new_parse((std::string("swarmsrc location=split_dataset fps-n=0 width=8 height=8 format=GRAY8 set=") + set).c_str());
    gst_harness_play(h);
    GstBuffer* b = gst_harness_pull(h);
    REQUIRE(b);
    GstMapInfo map;
    REQUIRE(gst_buffer_map(b, &map, GST_MAP_READ));
    CHECK((map.data[0] > 128) == bright);
    gst_buffer_unmap(b, &map);
    gst_buffer_unref(b);
    gst_harness_teardown(h);
  }
  CHECK(bus_error_of("swarmsrc location=split_dataset/train set=test ! fakesink").second.find("has no test split") != std::string::npos);
}

TEST_CASE("swarmsrc_rejects_a_shard_index_out_of_range with a bus error", "[elements][swarmsrc][reject]") {
  CHECK(bus_error_of("swarmsrc shard-index=4 shard-count=4 ! fakesink").first.find("shard-index") != std::string::npos);
}

TEST_CASE("swarmtrain_rejects_caps_it_cannot_read", "[elements][swarmtrain][reject]") {
  GstHarness* h = gst_harness_new("swarmtrain");
  gst_harness_set_src_caps_str(h, "audio/x-raw,format=S16LE,rate=8000,channels=1,layout=interleaved");
  CHECK(gst_harness_push(h, gst_buffer_new_allocate(nullptr, 64, nullptr)) == GST_FLOW_NOT_NEGOTIATED);
  gst_harness_teardown(h);
  h = gst_harness_new("swarmtrain");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=I420,width=28,height=28,framerate=0/1");
  CHECK(gst_harness_push(h, gst_buffer_new_allocate(nullptr, 28 * 28 * 3 / 2, nullptr)) == GST_FLOW_NOT_NEGOTIATED);
  gst_harness_teardown(h);
}

namespace {

struct Trained {
  guint64 samples = 9999999, unknown_labels = 0, held_out = 0, holdout_samples = 0;
  double holdout_accuracy = -2.0;
  std::vector<std::string> warnings;  // the bus warnings' messages
};

// Pushes `frames` grey 28x28 frames through a swarmtrain configured by `props` (labelled i % classes
// in a meta when with_meta), waits for the trainer, sends EOS and returns the final stats.
Trained train_frames(const char* props, int frames, bool with_meta, int classes = 10) {
  GstHarness* h = gst_harness_new_parse((std::string("swarmtrain batch-size=4 stats-interval=0 ") + props).c_str());
  GstBus* bus = gst_bus_new();
  gst_element_set_bus(h->element, bus);
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=28,height=28,framerate=30/1");
  for (int i = 0; i < frames; ++i) {
    GstBuffer* b = gray_frame(28, 28, uint8_t(i * 7));
    if (with_meta) {
      const GstMetaInfo* info = gst_meta_get_info("GstSwarmLabelMeta");
      REQUIRE(info);
      auto* m = reinterpret_cast<GstSwarmLabelMeta*>(gst_buffer_add_meta(b, info, nullptr));
      m->label = i % classes;
    }
    REQUIRE(gst_harness_push(h, b) == GST_FLOW_OK);
    gst_buffer_unref(gst_harness_pull(h));  // passes through
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // let the training thread catch up
  gst_harness_push_event(h, gst_event_new_eos());
  Trained t;
  while (GstMessage* m = gst_bus_pop(bus)) {
    const GstStructure* s = gst_message_get_structure(m);
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_WARNING) {
      GError* e = nullptr;
      gst_message_parse_warning(m, &e, nullptr);
      t.warnings.push_back(e->message);
      g_error_free(e);
    } else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT && s && gst_structure_has_name(s, "swarmtrain-stats")) {
      t.samples = field_u64(s, "samples");
      t.unknown_labels = field_u64(s, "unknown-labels");
      t.held_out = field_u64(s, "held-out");
      t.holdout_samples = field_u64(s, "holdout-samples");
      gst_structure_get_double(s, "holdout-accuracy", &t.holdout_accuracy);
    }
    gst_message_unref(m);
  }
  gst_harness_teardown(h);
  gst_object_unref(bus);
  return t;
}

guint64 trained_samples(const char* props, int frames, bool with_meta) { return train_frames(props, frames, with_meta).samples; }

}  // namespace

TEST_CASE("swarmtrain trains on labelled frames, in teach mode, and never on unlabelled ones", "[elements][swarmtrain]") {
  gst_object_unref(gst_element_factory_make("swarmtrain", nullptr));  // loads the plugin and its metas
  CHECK(trained_samples("", 40, false) == 0);            // no label anywhere: passes untouched
  CHECK(trained_samples("label=3", 40, false) >= 8);     // teach mode
  CHECK(trained_samples("", 40, true) >= 8);             // labels from the meta
}

TEST_CASE("swarmtrain counts and says labels outside the model's classes; classes= takes more", "[elements][swarmtrain]") {
  gst_object_unref(gst_element_factory_make("swarmtrain", nullptr));
  // Twelve labels, ten classes: labels 10 and 11 are counted and said once on the bus, not trained.
  const Trained ten = train_frames("drop-when-busy=false", 48, true, 12);
  CHECK(ten.unknown_labels == 8);
  REQUIRE(ten.warnings.size() == 1);
  CHECK(ten.warnings[0].find("not one of the model's 10 classes") != std::string::npos);
  const Trained twelve = train_frames("drop-when-busy=false classes=12", 48, true, 12);
  CHECK(twelve.unknown_labels == 0);
  CHECK(twelve.warnings.empty());
  CHECK(twelve.samples == 48);
  // Teach mode outside the classes is an error at start.
  CHECK(bus_error_of("videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8,width=28,height=28 ! swarmtrain label=12 ! "
                     "fakesink").first.find("not one of the model's 10 classes") != std::string::npos);
}

TEST_CASE("swarmtrain holds out every Nth labelled frame and reports its accuracy on them", "[elements][swarmtrain]") {
  gst_object_unref(gst_element_factory_make("swarmtrain", nullptr));
  const Trained none = train_frames("drop-when-busy=false", 48, true);
  CHECK(none.held_out == 0);
  CHECK(none.holdout_accuracy == -1.0);  // the default holds nothing out
  const Trained t = train_frames("drop-when-busy=false holdout-every=4", 48, true);
  CHECK(t.held_out == 12);
  CHECK(t.samples == 36);  // the held-out frames are not trained on
  CHECK(t.holdout_samples > 0);
  CHECK(t.holdout_samples <= 12);
  CHECK(t.holdout_accuracy >= 0.0);
  CHECK(t.holdout_accuracy <= 1.0);
  CHECK(bus_error_of("videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8,width=28,height=28 ! swarmtrain holdout-every=1 ! "
                     "fakesink").second.find("train on none") != std::string::npos);
}

TEST_CASE("swarmtrain_rejects_a_checkpoint_it_could_not_write at start, naming the path", "[elements][swarmtrain][reject]") {
  const auto [message, debug] = bus_error_of(
      "videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8,width=28,height=28 ! "
      "swarmtrain checkpoint=/nonexistent-swarmlens-dir/node.swm ! fakesink");
  CHECK(debug.find("cannot write checkpoint /nonexistent-swarmlens-dir/node.swm") != std::string::npos);
}

TEST_CASE("model is a GEnum of the registry's names", "[elements]") {
  for (const char* name : {"swarmtrain", "swarmclassify", "swarmaggregate"}) {
    GstElement* e = gst_element_factory_make(name, nullptr);
    REQUIRE(e);
    GParamSpec* p = g_object_class_find_property(G_OBJECT_GET_CLASS(e), "model");
    REQUIRE(G_IS_PARAM_SPEC_ENUM(p));
    GEnumClass* values = G_PARAM_SPEC_ENUM(p)->enum_class;
    std::vector<std::string> nicks;
    for (guint i = 0; i < values->n_values; ++i) nicks.push_back(values->values[i].value_nick);
    auto names = Model::names();
    std::sort(names.begin(), names.end());
    std::sort(nicks.begin(), nicks.end());
    CHECK(nicks == names);
    gst_util_set_object_arg(G_OBJECT(e), "model", "mobilenet");
    gint v = -1;
    g_object_get(e, "model", &v, nullptr);
    CHECK(std::string(g_enum_get_value(values, v)->value_nick) == "mobilenet");
    gst_object_unref(e);
  }
}

TEST_CASE("swarmclassify classifies with a snapshot file and attaches its meta", "[elements][swarmclassify]") {
  auto model = Model::create({}, 1);
  save_snapshot("classify_test.swm", {"cnn", model->layout_hash(), 7, model->params_copy()});
  GstHarness* h = gst_harness_new_parse("swarmclassify location=classify_test.swm");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=56,height=56,framerate=30/1");
  GstBuffer* out = gst_harness_push_and_pull(h, gray_frame(56, 56, 128));
  REQUIRE(out);
  const auto* m = class_meta(out);
  REQUIRE(m);
  CHECK(m->label >= 0);
  CHECK(m->label < 10);
  CHECK(m->confidence > 0.0f);
  CHECK(m->confidence <= 1.0f);
  CHECK(m->model_version == 7);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST_CASE("swarmclassify posts its predictions on the bus at most once per message-interval", "[elements][swarmclassify]") {
  auto model = Model::create({}, 1);
  save_snapshot("predict_test.swm", {"cnn", model->layout_hash(), 9, model->params_copy()});
  for (const auto& [interval, at_most] : {std::pair<int, int>{0, 0}, {1, 100}, {60000, 1}}) {
    GstHarness* h = gst_harness_new_parse(("swarmclassify location=predict_test.swm message-interval=" + std::to_string(interval)).c_str());
    GstBus* bus = gst_bus_new();
    gst_element_set_bus(h->element, bus);
    gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=28,height=28,framerate=30/1");
    for (int i = 0; i < 100; ++i) {
      GstBuffer* in = gray_frame(28, 28, uint8_t(i));
      GST_BUFFER_PTS(in) = guint64(i) * GST_MSECOND;
      gst_buffer_unref(gst_harness_push_and_pull(h, in));
      if (interval == 1) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    int messages = 0;
    while (GstMessage* m = gst_bus_pop_filtered(bus, GST_MESSAGE_ELEMENT)) {
      const GstStructure* st = gst_message_get_structure(m);
      if (gst_structure_has_name(st, "swarmclassify-prediction")) {
        ++messages;
        gint label = -1;
        guint64 version = 0, pts = 0;
        CHECK(gst_structure_get_int(st, "label", &label));
        CHECK((label >= 0 && label < 10));
        CHECK((gst_structure_get_uint64(st, "model-version", &version) && version == 9));
        CHECK(gst_structure_get_uint64(st, "pts", &pts));
      }
      gst_message_unref(m);
    }
    INFO("message-interval " << interval);
    CHECK(messages <= at_most);
    CHECK(messages >= (interval == 0 ? 0 : interval == 1 ? 50 : 1));
    gst_harness_teardown(h);
    gst_object_unref(bus);
  }
}

TEST_CASE("swarmclassify_rejects_a_missing_snapshot with a bus error", "[elements][swarmclassify][reject]") {
  const auto [message, debug] = bus_error_of(
      "videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8 ! swarmclassify location=/nonexistent/model.swm ! fakesink");
  CHECK(debug.find("cannot open") != std::string::npos);
}

TEST_CASE("swarmclassify_rejects_a_corrupt_snapshot with a bus error", "[elements][swarmclassify][reject]") {
  std::ofstream("corrupt.swm") << "SWLM this is not a snapshot";
  CHECK(bus_error_of("videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8 ! swarmclassify location=corrupt.swm ! "
                     "fakesink").second.find("corrupt.swm") != std::string::npos);
}

TEST_CASE("swarmoverlay draws its panel top-left and leaves the rest of the frame", "[elements][swarmoverlay]") {
  GstHarness* h = gst_harness_new("swarmoverlay");
  gst_harness_set_src_caps_str(h, "video/x-raw,format=BGRx,width=280,height=280,framerate=30/1");
  GstBuffer* in = gst_buffer_new_allocate(nullptr, 280 * 280 * 4, nullptr);
  gst_buffer_memset(in, 0, 200, 280 * 280 * 4);
  GstBuffer* out = gst_harness_push_and_pull(h, in);
  REQUIRE(out);
  GstMapInfo map;
  REQUIRE(gst_buffer_map(out, &map, GST_MAP_READ));
  auto px = [&](int x, int y) { return map.data[(size_t(y) * 280 + size_t(x)) * 4]; };
  int changed_panel = 0, changed_rest = 0;
  for (int y = 0; y < 280; ++y)
    for (int x = 0; x < 280; ++x) {
      const bool panel = x < 40 && y < 20;
      const bool far = x > 200 && y > 200;
      if (panel) changed_panel += px(x, y) != 200;
      if (far) changed_rest += px(x, y) != 200;
    }
  gst_buffer_unmap(out, &map);
  CHECK(changed_panel > 40 * 20 / 2);  // darkened panel with text
  CHECK(changed_rest == 0);
  gst_buffer_unref(out);
  gst_harness_teardown(h);
}

TEST_CASE("swarmtrain survives its label property changing from another thread while buffers flow", "[elements][swarmtrain][stress]") {
  GstHarness* h = gst_harness_new("swarmtrain");
  g_object_set(h->element, "batch-size", 8u, "stats-interval", 1u, nullptr);
  gst_harness_set_src_caps_str(h, "video/x-raw,format=GRAY8,width=28,height=28,framerate=30/1");
  std::atomic<bool> done{false};
  std::atomic<int> flips{0};
  std::thread flipper([&] {
    for (int i = 0; !done; ++i, ++flips) g_object_set(h->element, "label", (i % 11) - 1, nullptr);
  });
  while (flips == 0) std::this_thread::yield();  // the buffers must flow while it flips
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(gst_harness_push(h, gray_frame(28, 28, uint8_t(i))) == GST_FLOW_OK);
    gst_buffer_unref(gst_harness_pull(h));
  }
  done = true;
  flipper.join();
  CHECK(flips > 1);
  gint label = -2;
  g_object_get(h->element, "label", &label, nullptr);
  CHECK(label >= -1);
  CHECK(label <= 9);
  gst_harness_teardown(h);
}

TEST_CASE("end to end: swarmsrc ! swarmtrain ! swarmclassify ! swarmoverlay ! fakesink learns", "[pipeline]") {
  GError* err = nullptr;
  GstElement* p = gst_parse_launch(
      "swarmsrc is-live=true fps-n=500 num-buffers=5000 ! swarmtrain model-id=e2e ! "
      "swarmclassify name=classify model-id=e2e ! swarmoverlay model-id=e2e ! fakesink name=sink signal-handoffs=true sync=false",
      &err);
  REQUIRE(p);
  struct Tally {
    int frames = 0, scored = 0, correct = 0, swaps = 0;
  } tally;
  GstElement* classify = gst_bin_get_by_name(GST_BIN(p), "classify");
  g_signal_connect(classify, "model-updated", G_CALLBACK(+[](GstElement*, guint64, gpointer data) {
    static_cast<Tally*>(data)->swaps++;
  }), &tally);
  gst_object_unref(classify);
  GstElement* sink = gst_bin_get_by_name(GST_BIN(p), "sink");
  g_signal_connect(sink, "handoff", G_CALLBACK(+[](GstElement*, GstBuffer* b, GstPad*, gpointer data) {
    auto* t = static_cast<Tally*>(data);
    const auto* truth = label_meta(b);
    const auto* cls = class_meta(b);
    if (++t->frames > 4000 && truth && cls) {  // the last 1000 frames
      ++t->scored;
      t->correct += truth->label == cls->label;
    }
  }), &tally);
  gst_element_set_state(p, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(p);
  GstMessage* m = gst_bus_timed_pop_filtered(bus, 60 * GST_SECOND, GstMessageType(GST_MESSAGE_ERROR | GST_MESSAGE_EOS));
  REQUIRE(m);
  CHECK(GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS);
  gst_message_unref(m);
  gst_element_set_state(p, GST_STATE_NULL);
  const double acc = tally.scored ? double(tally.correct) / tally.scored : 0.0;
  INFO("accuracy of the classify meta over the last " << tally.scored << " frames: " << acc);
  CHECK(tally.frames == 5000);
  CHECK(tally.scored == 1000);
  CHECK(acc > 0.5);  // chance is 0.1
  CHECK(tally.swaps > 5);  // the live model was hot-swapped in as it trained
  gst_object_unref(sink);
  gst_object_unref(bus);
  gst_object_unref(p);
}

TEST_CASE("swarmtrain and swarmclassify federate over NATS with a broker", "[elements][nats]") {
  set_compute_threads(1);
  BrokerConfig bc;
  bc.model_id = "gst";
  bc.aggregation.server_lr = 0.05;
  testing::ServedBroker served(bc);
  auto& [server, broker, publisher] = served;

  // Every frame is trained (drop-when-busy=false): 1500 frames, 46 steps of 32.
  const std::string desc = "swarmsrc num-buffers=1500 shard-index=0 shard-count=2 ! swarmtrain name=train model-id=gst node-id=3 "
                           "drop-when-busy=false trigger-age=1 nats-url=" + server.url() + " ! fakesink";
  GError* err = nullptr;
  GstElement* p = gst_parse_launch(desc.c_str(), &err);
  REQUIRE(p);
  gst_element_set_state(p, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(p);
  // Collect the stats messages on the way (a filtered pop would discard them).
  GstStructure* st = nullptr;
  GstMessageType end = GST_MESSAGE_UNKNOWN;
  while (end == GST_MESSAGE_UNKNOWN) {
    GstMessage* m = gst_bus_timed_pop(bus, 120 * GST_SECOND);
    REQUIRE(m);
    const GstStructure* ms = gst_message_get_structure(m);
    if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_ELEMENT && gst_structure_has_name(ms, "swarmtrain-stats")) {
      if (st) gst_structure_free(st);
      st = gst_structure_copy(ms);
    } else if (GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS || GST_MESSAGE_TYPE(m) == GST_MESSAGE_ERROR) {
      end = GST_MESSAGE_TYPE(m);
    }
    gst_message_unref(m);
  }
  CHECK(end == GST_MESSAGE_EOS);
  REQUIRE(st);
  gst_element_set_state(p, GST_STATE_NULL);  // stop(): the last pending update goes out too
  CHECK(field_u64(st, "steps") == 1500 / 32);
  CHECK(field_u64(st, "bytes-sent") > 0);
  CHECK(field_u64(st, "models-received") > 0);  // the global model came back while it trained
  gst_structure_free(st);
  gst_object_unref(bus);
  gst_object_unref(p);

  for (int i = 0; i < 100 && broker.stats().version == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const BrokerStats bs = broker.stats();
  CHECK(bs.accepted > 0);
  CHECK(bs.rejected.empty());

  // A classifier elsewhere takes the global model over NATS (the one kept in JetStream first).
  for (int i = 0; i < 100 && broker.stats().models_out == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const std::string cdesc = "swarmsrc num-buffers=20 set=test ! swarmclassify name=classify model-id=gst nats-url=" +
                            server.url() + " ! fakesink name=sink signal-handoffs=true";
  GstElement* c = gst_parse_launch(cdesc.c_str(), &err);
  REQUIRE(c);
  guint64 version_seen = 0;
  GstElement* sink = gst_bin_get_by_name(GST_BIN(c), "sink");
  g_signal_connect(sink, "handoff", G_CALLBACK(+[](GstElement*, GstBuffer* b, GstPad*, gpointer data) {
    if (const auto* cls = class_meta(b)) *static_cast<guint64*>(data) = cls->model_version;
  }), &version_seen);
  gst_object_unref(sink);
  gst_element_set_state(c, GST_STATE_PLAYING);
  bus = gst_element_get_bus(c);
  GstMessage* m = gst_bus_timed_pop_filtered(bus, 30 * GST_SECOND, GstMessageType(GST_MESSAGE_ERROR | GST_MESSAGE_EOS));
  REQUIRE(m);
  CHECK(GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS);
  gst_message_unref(m);
  gst_element_set_state(c, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(c);
  publisher.stop();
  CHECK(version_seen > 0);
  CHECK(version_seen <= broker.stats().version);
}

TEST_CASE("swarmtrain_rejects_an_unreachable_nats_server with a bus error", "[elements][nats][reject]") {
  const int port = testing::free_loopback_port();  // nothing listens there
  const std::string desc = "swarmsrc num-buffers=10 ! swarmtrain nats-url=nats://127.0.0.1:" + std::to_string(port) + " ! fakesink";
  const auto [message, debug] = bus_error_of(desc.c_str());
  CHECK_THAT(message, Catch::Contains("Cannot connect to NATS"));
  CHECK_THAT(debug, Catch::Contains(std::to_string(port)));
}

namespace {

// Plays a pipeline to EOS; tallies the classification metas against the true labels on the last
// `scored_tail` frames of `total`.
struct Scored {
  int frames = 0, scored = 0, correct = 0, classified = 0;
  double accuracy() const { return scored ? double(correct) / scored : 0.0; }
};
Scored play_and_score(const std::string& desc, int total, int scored_tail, int timeout_s) {
  GError* err = nullptr;
  GstElement* p = gst_parse_launch(desc.c_str(), &err);
  REQUIRE(p);
  struct Ctx {
    Scored s;
    int from;
  } ctx{{}, total - scored_tail};
  GstElement* sink = gst_bin_get_by_name(GST_BIN(p), "sink");
  g_signal_connect(sink, "handoff", G_CALLBACK(+[](GstElement*, GstBuffer* b, GstPad*, gpointer data) {
    auto* c = static_cast<Ctx*>(data);
    const auto* truth = label_meta(b);
    const auto* cls = class_meta(b);
    c->s.classified += cls != nullptr;
    if (++c->s.frames > c->from && truth && cls) {
      ++c->s.scored;
      c->s.correct += truth->label == cls->label;
    }
  }), &ctx);
  gst_element_set_state(p, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(p);
  GstMessage* m = gst_bus_timed_pop_filtered(bus, timeout_s * GST_SECOND, GstMessageType(GST_MESSAGE_ERROR | GST_MESSAGE_EOS));
  REQUIRE(m);
  CHECK(GST_MESSAGE_TYPE(m) == GST_MESSAGE_EOS);
  gst_message_unref(m);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(sink);
  gst_object_unref(bus);
  gst_object_unref(p);
  return ctx.s;
}

}  // namespace

TEST_CASE("a recurrent model trains and classifies on windows of moving frames", "[pipeline][temporal]") {
  // swarmsrc plays moving Fashion-MNIST (class = direction); swarmtrain trains crnn on windows of 6
  // frames, swarmclassify classifies each window with the live model.
  const int total = 14000;
  const Scored s = play_and_score(
      "swarmsrc motion=true fps-n=0 num-buffers=" + std::to_string(total) + " ! "
      "swarmtrain model=crnn window=6 window-stride=2 batch-size=16 density=0.01 drop-when-busy=false model-id=motion ! "
      "swarmclassify model=crnn window=6 model-id=motion ! fakesink name=sink signal-handoffs=true sync=false",
      total, 2000, 240);
  INFO("window accuracy over the last " << s.scored << " frames: " << s.accuracy());
  CHECK(s.frames == total);
  CHECK(s.scored == 2000);
  CHECK(s.accuracy() > 0.5);  // chance is 0.25, one frame alone ~0.3 (0.70 in the last run)
}

TEST_CASE("swarmclassify backend=opencv classifies with an exported ONNX file as LibTorch does", "[elements][swarmclassify][onnx]") {
  // A model trained a little in a pipeline, its checkpoint exported with swarmlens export's library
  // path (the CLI is tested in export-smoke): both backends must label the test frames alike.
  REQUIRE(play_and_score("swarmsrc fps-n=0 num-buffers=1600 ! swarmtrain checkpoint=onnx_backend.swm "
                         "drop-when-busy=false ! fakesink name=sink signal-handoffs=true", 1600, 0, 120).frames == 1600);
  const std::string exe = std::getenv("SWARMLENS_EXE") ? std::getenv("SWARMLENS_EXE") : "";
  REQUIRE(!exe.empty());
  REQUIRE(std::system((exe + " export --snapshot onnx_backend.swm -o onnx_backend.onnx").c_str()) == 0);
  const std::string tail = " ! fakesink name=sink signal-handoffs=true sync=false";
  const Scored torch = play_and_score("swarmsrc set=test num-buffers=500 fps-n=0 ! swarmclassify location=onnx_backend.swm" + tail, 500, 500, 60);
  const Scored cv = play_and_score("swarmsrc set=test num-buffers=500 fps-n=0 ! swarmclassify backend=opencv location=onnx_backend.onnx" + tail, 500, 500, 60);
  INFO("libtorch " << torch.accuracy() << ", opencv " << cv.accuracy());
  CHECK(cv.classified == 500);
  CHECK(torch.accuracy() > 0.5);
  CHECK(std::abs(cv.accuracy() - torch.accuracy()) <= 0.004);  // at most 2 frames of 500 differ (near-ties)
}

TEST_CASE("swarmclassify_backend_opencv_rejects_a_missing_or_bad_file with a bus error", "[elements][swarmclassify][reject]") {
  CHECK(bus_error_of("videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8 ! swarmclassify backend=opencv ! fakesink")
            .first.find("ONNX file") != std::string::npos);
  std::ofstream("bad.onnx") << "not a model";
  CHECK(bus_error_of("videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8 ! swarmclassify backend=opencv location=bad.onnx ! fakesink")
            .second.find("bad.onnx") != std::string::npos);
}

TEST_CASE("swarmtrain outside its schedule does not train, and says so on the bus", "[elements][swarmtrain][idle]") {
  // A one-hour window two hours from now: the pipeline runs outside it.
  const std::time_t now = std::time(nullptr);
  std::tm local{};
  localtime_r(&now, &local);
  const int from = (local.tm_hour + 2) % 24, to = (local.tm_hour + 3) % 24;
  char schedule[32];
  std::snprintf(schedule, sizeof schedule, "%02d:00-%02d:00", from, to);
  const std::string desc = std::string("swarmsrc is-live=true fps-n=400 num-buffers=600 ! swarmtrain idle-policy=schedule schedule=") +
                           schedule + " stats-interval=100 model-id=sched ! fakesink";
  GError* err = nullptr;
  GstElement* p = gst_parse_launch(desc.c_str(), &err);
  REQUIRE(p);
  gst_element_set_state(p, GST_STATE_PLAYING);
  GstBus* bus = gst_element_get_bus(p);
  GstStructure* st = nullptr;  // the last swarmtrain-stats before EOS
  bool eos = false;
  while (GstMessage* m = gst_bus_timed_pop(bus, 30 * GST_SECOND)) {
    const GstMessageType type = GST_MESSAGE_TYPE(m);
    const GstStructure* s = gst_message_get_structure(m);
    if (type == GST_MESSAGE_ELEMENT && s && gst_structure_has_name(s, "swarmtrain-stats")) {
      if (st) gst_structure_free(st);
      st = gst_structure_copy(s);
    }
    gst_message_unref(m);
    eos = type == GST_MESSAGE_EOS;
    if (eos || type == GST_MESSAGE_ERROR) break;
  }
  CHECK(eos);
  REQUIRE(st);
  CHECK(std::string(gst_structure_get_string(st, "state")) == "outside-schedule");
  CHECK(field_u64(st, "steps") == 0);
  CHECK(field_u64(st, "pauses") == 1);
  gst_structure_free(st);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(bus);
  gst_object_unref(p);
}

namespace {

// The error gst_parse_launch gives for a description ("" if none).
std::string parse_error_of(const std::string& desc) {
  GError* err = nullptr;
  GstElement* p = gst_parse_launch(desc.c_str(), &err);
  std::string why = err ? err->message : "";
  if (err) g_error_free(err);
  if (p) gst_object_unref(p);
  return why;
}

}  // namespace

TEST_CASE("named choices are GEnums: a name that is not one of them is an error when the pipeline is parsed", "[elements][reject]") {
  CHECK(parse_error_of("videotestsrc ! swarmtrain idle-policy=sometimes ! fakesink").find("sometimes") != std::string::npos);
  CHECK(parse_error_of("videotestsrc ! swarmtrain criterion=largest ! fakesink").find("largest") != std::string::npos);
  CHECK(parse_error_of("swarmsrc set=validation ! fakesink").find("validation") != std::string::npos);
  CHECK(parse_error_of("videotestsrc ! swarmtrain model=resnet ! fakesink").find("resnet") != std::string::npos);
  CHECK(parse_error_of("videotestsrc ! swarmtrain idle-policy=load+schedule criterion=topk ! fakesink").empty());
  CHECK(parse_error_of("swarmsrc set=test ! fakesink").empty());
}

TEST_CASE("swarmtrain_rejects_out_of_range_values with a bus error at start, not a warning and the default", "[elements][swarmtrain][reject]") {
  const std::string head = "videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8,width=28,height=28 ! swarmtrain ";
  CHECK(bus_error_of((head + "learning-rate=-0.1 ! fakesink").c_str()).second.find("learning rate must be > 0") != std::string::npos);
  CHECK(bus_error_of((head + "density=2 ! fakesink").c_str()).second.find("density must be in (0, 1]") != std::string::npos);
  CHECK(bus_error_of((head + "momentum=1.5 ! fakesink").c_str()).second.find("momentum must be in [0, 1)") != std::string::npos);
  CHECK(bus_error_of((head + "batch-size=0 ! fakesink").c_str()).second.find("batch size must be >= 1") != std::string::npos);
}

TEST_CASE("every_element_rejects_out_of_range_numbers with a bus error at start naming the range", "[elements][reject]") {
  const std::string grey = "videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8,width=28,height=28 ! ";
  const std::pair<std::string, const char*> cases[] = {
      {"swarmsrc shard-index=5000 ! fakesink", "shard-index=5000 is outside its range, 0 .. 4095"},
      {"swarmsrc width=0 ! fakesink", "width=0 is outside its range, 1 .. 8192"},
      {"swarmsrc alpha=-1 ! fakesink", "alpha=-1 is outside its range, 0 .. 1000"},
      {grey + "swarmclassify every=0 ! fakesink", "every=0 is outside its range, 1 .. 1000"},
      {grey + "swarmclassify input-width=4 ! fakesink", "input-width=4 is outside its range, 8 .. 1024"},
      {grey + "swarmtrain load-ceiling=2 ! fakesink", "load-ceiling=2 is outside its range, 0.01 .. 1"},
      {grey + "swarmtrain classes=5000 ! fakesink", "classes=5000 is outside its range, 0 .. 1000"},
      {grey + "swarmtrain nice=30 ! fakesink", "nice=30 is outside its range, 0 .. 19"},
      {"swarmsrc num-buffers=2 format=BGRx ! swarmoverlay window=0 ! fakesink", "window=0 is outside its range, 1 .. 100000"},
      {"swarmaggregate interval=0 ! fakesink", "interval=0 is outside its range, 1 .. 3600000"},
  };
  for (const auto& [desc, message] : cases) {
    INFO(desc);
    CHECK(bus_error_of(desc.c_str()).first == message);
  }
}

TEST_CASE("a number out of range set while playing is refused with a warning, the old value kept", "[elements][reject]") {
  GstElement* p = gst_parse_launch("swarmsrc is-live=true ! swarmclassify name=c ! fakesink", nullptr);
  REQUIRE(p);
  REQUIRE(gst_element_set_state(p, GST_STATE_PLAYING) != GST_STATE_CHANGE_FAILURE);
  REQUIRE(gst_element_get_state(p, nullptr, nullptr, 10 * GST_SECOND) == GST_STATE_CHANGE_SUCCESS);
  GstElement* c = gst_bin_get_by_name(GST_BIN(p), "c");
  g_object_set(c, "every", 0u, nullptr);
  guint every = 0;
  g_object_get(c, "every", &every, nullptr);
  CHECK(every == 1);
  g_object_set(c, "every", 5u, nullptr);  // in range: taken
  g_object_get(c, "every", &every, nullptr);
  CHECK(every == 5);
  GstBus* bus = gst_element_get_bus(p);
  GstMessage* m = gst_bus_timed_pop_filtered(bus, 5 * GST_SECOND, GST_MESSAGE_WARNING);
  REQUIRE(m);
  GError* e = nullptr;
  gst_message_parse_warning(m, &e, nullptr);
  CHECK(std::string(e->message) == "every=0 is outside its range, 1 .. 1000: kept the old value");
  g_error_free(e);
  gst_message_unref(m);
  gst_object_unref(bus);
  gst_object_unref(c);
  gst_element_set_state(p, GST_STATE_NULL);
  gst_object_unref(p);
}

TEST_CASE("swarmtrain_rejects_a_bad_schedule with a bus error", "[elements][swarmtrain][reject]") {
  CHECK(bus_error_of("videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8 ! swarmtrain idle-policy=schedule schedule=9-5 ! fakesink")
            .second.find("HH:MM-HH:MM") != std::string::npos);
}

TEST_CASE("device=cuda without a CUDA LibTorch is a bus error that says why", "[elements][reject][device]") {
  const std::string why = swarmlens::device_problem("cuda");
  if (why.empty()) return;  // a LibTorch with CUDA and a GPU: cuda is valid here (test_model checks it)
  const auto [train_msg, train_dbg] = bus_error_of(
      "videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8 ! swarmtrain device=cuda ! fakesink");
  CHECK(train_msg.find("cuda") != std::string::npos);
  CHECK(train_dbg.find(why) != std::string::npos);
  const auto [cls_msg, cls_dbg] = bus_error_of(
      "videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8 ! swarmclassify device=cuda:0 ! fakesink");
  CHECK(cls_msg.find("cuda:0") != std::string::npos);
  CHECK(cls_dbg.find("CUDA") != std::string::npos);
  CHECK(bus_error_of("videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8 ! swarmtrain device=tpu ! fakesink")
            .second.find("use cpu, cuda or cuda:N") != std::string::npos);
  CHECK(bus_error_of("videotestsrc num-buffers=2 ! video/x-raw,format=GRAY8 ! swarmclassify backend=opencv "
                     "location=x.onnx device=cuda ! fakesink")
            .second.find("backend=libtorch") != std::string::npos);
}
