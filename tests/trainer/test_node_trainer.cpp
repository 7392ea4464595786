// NodeTrainer: the training thread behind swarmtrain, tested without GStreamer.
#include <catch2/catch.hpp>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <limits>
#include <thread>

#include "camera_model.h"
#include "dataset.h"
#include "model.h"
#include "node_trainer.h"

using namespace swarmlens;

namespace {

const Dataset& data() {
  static const Dataset d = [] {
    auto t = load_fashion_mnist(default_fashion_mnist_dir(), true);
    t.truncate(1024);
    return t;
  }();
  return d;
}

void push_all(NodeTrainer& t, size_t n, bool block) {
  std::vector<float> img;
  std::vector<int64_t> lab;
  for (uint32_t i = 0; i < n; ++i) {
    const uint32_t idx = i % uint32_t(data().size());
    make_batch(data(), &idx, 1, img, lab);
    t.push(img.data(), int(lab[0]), block);
  }
}

NodeTrainerConfig small_config() {
  NodeTrainerConfig cfg;
  cfg.model_id = "node-test";
  cfg.batch_size = 16;
  cfg.buffer_frames = 64;
  cfg.compression.sparsify.warmup_stage_steps = 2;
  cfg.compression.trigger.max_age_steps = 2;  // as swarmtrain's default
  return cfg;
}

}  // namespace

TEST_CASE("node trainer trains every frame when pushing blocks, and drains", "[node]") {
  NodeTrainer t(small_config());
  t.start();
  push_all(t, 480, true);
  t.drain();
  const auto s = t.stats();
  CHECK(s.samples == 480);
  CHECK(s.steps == 30);
  CHECK(s.dropped == 0);
  CHECK(s.messages == 15);  // trigger age 2
  CHECK(s.model_version == 15);  // standalone: every update applied locally
  CHECK(s.bytes_out > 0);
  CHECK(s.compression_ratio() > 1.0);
  CHECK(t.error().empty());
  // The model is published in-process under its id.
  auto snap = ModelHub::instance().latest("node-test");
  REQUIRE(snap);
  t.stop();
  CHECK(ModelHub::instance().latest("node-test")->version >= 15);
}

TEST_CASE("node trainer samples frames instead of blocking when busy", "[node]") {
  auto cfg = small_config();
  cfg.buffer_frames = 16;
  NodeTrainer t(cfg);
  t.start();
  const auto t0 = std::chrono::steady_clock::now();
  push_all(t, 2000, false);  // far faster than it can train
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t.stop();
  const auto s = t.stats();
  CHECK(s.dropped > 0);
  CHECK(s.samples + s.dropped <= 2000);
  INFO("pushing 2000 frames took " << secs << " s");
  CHECK(s.samples < 2000);
}

TEST_CASE("node trainer resumes from its checkpoint", "[node]") {
  const std::string path = "node_trainer_ckpt.swm";
  std::remove(path.c_str());
  auto cfg = small_config();
  cfg.checkpoint = path;
  uint64_t version = 0;
  {
    NodeTrainer t(cfg);
    t.start();
    push_all(t, 160, true);
    t.drain();
    t.stop();  // writes the checkpoint, pending update applied first
    version = ModelHub::instance().latest("node-test")->version;
    CHECK(version >= 5);
  }
  NodeTrainer again(cfg);
  again.start();
  CHECK(again.stats().model_version == version);
  again.stop();
  // node_trainer_rejects a checkpoint of another layout
  ModelSpec other;
  other.name = "mobilenet";
  other.channels = 3;
  auto bad = cfg;
  bad.model = other;
  NodeTrainer wrong(bad);
  CHECK_THROWS_WITH(wrong.start(), Catch::Contains("another model layout"));
}

TEST_CASE("a federated node sends its pending update at stop, or keeps it when the link refuses", "[node][uplink]") {
  auto cfg = small_config();
  cfg.model_id = "node-uplink";
  cfg.compression.trigger.max_age_steps = 1000;  // nothing released while training: all of it at stop
  cfg.checkpoint = "node_uplink_ckpt.swm";
  std::remove(cfg.checkpoint.c_str());
  const std::vector<float> initial = Model::create(cfg.model, cfg.seed)->params_copy();
  {
    std::vector<std::vector<uint8_t>> sent;
    NodeTrainer t(cfg);
    t.set_uplink([&](const std::vector<uint8_t>& m) {
      sent.push_back(m);
      return true;
    });
    t.start();
    push_all(t, 64, true);
    t.drain();
    CHECK(sent.empty());
    t.stop();
    REQUIRE(sent.size() == 1);  // the pending update went out at stop...
    CHECK(t.stats().messages == 1);
    CHECK(t.stats().bytes_out == sent[0].size());
    // ...and is in the node's own view, so its checkpoint holds it (the model version stays the
    // aggregator's: 0).
    const Snapshot ckpt = load_snapshot(cfg.checkpoint);
    CHECK(ckpt.version == 0);
    CHECK(ckpt.params != initial);
  }
  std::remove(cfg.checkpoint.c_str());
  {
    // node_trainer_restarts_are_not_replays: the same node id started twice sends increasing
    // sequences, since the aggregator remembers the last one across restarts.
    uint64_t last = 0;
    for (int run = 0; run < 2; ++run) {
      NodeTrainer t(cfg);
      std::vector<uint64_t> seqs;
      t.set_uplink([&](const std::vector<uint8_t>& m) {
        seqs.push_back(decode_update(m).value.header.sequence);
        return true;
      });
      t.start();
      push_all(t, 32, true);
      t.drain();
      t.stop();
      REQUIRE(seqs.size() == 1);
      CHECK(seqs[0] > last);
      last = seqs[0];
    }
  }
  std::remove(cfg.checkpoint.c_str());
  {
    NodeTrainer t(cfg);
    int refused = 0;
    t.set_uplink([&](const std::vector<uint8_t>&) {
      ++refused;
      return false;  // link down
    });
    t.start();
    push_all(t, 64, true);
    t.drain();
    t.stop();
    CHECK(refused == 1);
    const Snapshot ckpt = load_snapshot(cfg.checkpoint);
    CHECK(ckpt.params == initial);  // not applied: it was never accepted by anyone
  }
}

TEST_CASE("a node that restarts resumes its residual, momentum and unsent update from its checkpoint", "[node][uplink][restart]") {
  auto cfg = small_config();
  cfg.model_id = "node-restart";
  cfg.checkpoint = "node_restart_ckpt.swm";
  std::remove(cfg.checkpoint.c_str());
  std::remove((cfg.checkpoint + ".state").c_str());
  std::vector<float> residual, velocity;
  SparseVector pending;
  {
    NodeTrainer t(cfg);
    t.set_uplink([](const std::vector<uint8_t>&) { return false; });  // the link is down all along
    t.start();
    push_all(t, 96, true);
    t.drain();
    t.stop();  // the pending update is refused once more and kept
    residual = t.compressor().sparsifier().residual();
    velocity = t.compressor().sparsifier().velocity();
    pending = t.compressor().trigger().pending();
  }
  REQUIRE(pending.nnz() > 0);
  double rnorm = 0;
  for (float v : residual) rnorm += double(v) * v;
  REQUIRE(rnorm > 0);
  {
    // The restarted node has all of it before it trains again, and sends the kept update once the
    // link takes it: nothing the first run selected or held back is gone.
    NodeTrainer t(cfg);
    std::vector<std::vector<uint8_t>> sent;
    t.set_uplink([&](const std::vector<uint8_t>& m) {
      sent.push_back(m);
      return true;
    });
    t.start();
    CHECK(t.compressor().sparsifier().residual() == residual);
    CHECK(t.compressor().sparsifier().velocity() == velocity);
    CHECK(t.compressor().trigger().pending().index == pending.index);
    CHECK(t.compressor().trigger().pending().value == pending.value);
    t.stop();
    REQUIRE(sent.size() == 1);
    const auto d = decode_update(sent[0]);
    REQUIRE(d.ok());
    CHECK(d.value.update.index == pending.index);
  }
  // A corrupt state file is refused with its name, not half loaded.
  {
    std::fstream f(cfg.checkpoint + ".state", std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(40);
    f.put('\x5a');
  }
  NodeTrainer t(cfg);
  CHECK_THROWS_WITH(t.start(), Catch::Contains(".state: node state fails its checksum"));
}

TEST_CASE("a node refuses an offered model that is not finite or whose norm exploded, and counts it", "[node][robust]") {
  const NodeTrainerConfig cfg = small_config();
  NodeTrainer trainer(cfg);
  const auto model = Model::create(cfg.model, cfg.seed);
  auto offer = [&](uint64_t version, std::vector<float> params) {
    trainer.offer_model(std::make_shared<const Snapshot>("cnn", model->layout_hash(), version, std::move(params)));
  };
  std::vector<float> exploded = model->params_copy();
  for (float& v : exploded) v *= 1000.0f;  // far past 20 x the initial norm
  offer(5, exploded);
  std::vector<float> nan = model->params_copy();
  nan[3] = std::numeric_limits<float>::quiet_NaN();
  offer(6, nan);
  CHECK(trainer.stats().models_refused == 2);
  std::vector<float> sane = model->params_copy();
  for (float& v : sane) v *= 2.0f;
  offer(7, sane);
  CHECK(trainer.stats().models_refused == 2);
}

TEST_CASE("a node counts frames labelled outside its classes, and takes the class names of the model it adopts", "[node]") {
  NodeTrainerConfig cfg = small_config();
  cfg.model_id = "node-names";
  NodeTrainer t(cfg);
  std::vector<float> img(28 * 28, 0.0f);
  CHECK_FALSE(t.push(img.data(), 10));  // 10 classes: labels 0..9
  CHECK_FALSE(t.push(img.data(), 12));
  CHECK(t.stats().unknown_labels == 2);
  // The broker's model says what the classes are called; the node's own snapshots say it from then on.
  const auto model = Model::create(cfg.model, cfg.seed);
  auto served = std::make_shared<Snapshot>("cnn", model->layout_hash(), 3, model->params_copy());
  std::vector<std::string> names;
  for (int i = 0; i < 10; ++i) names.push_back("kind" + std::to_string(i));
  served->description = describe_model(cfg.model, names);
  t.offer_model(served);
  t.start();
  push_all(t, 64, true);
  t.drain();
  t.stop();
  const auto published = ModelHub::instance().latest("node-names");
  REQUIRE(published);
  CHECK(published->version >= 3);
  CHECK(published->description.class_names == names);
  CHECK(published->description.classes == 10);
}


TEST_CASE("a node holds out every Nth labelled frame: classified by its current model, never trained on", "[node][holdout]") {
  NodeTrainerConfig cfg = small_config();
  cfg.model_id = "node-holdout";
  cfg.holdout_every = 5;
  NodeTrainer t(cfg);
  t.start();
  CHECK(t.stats().holdout_accuracy == -1.0);  // nothing classified yet
  push_all(t, 1000, true);
  t.drain();
  const auto s = t.stats();
  CHECK(s.held_out == 200);
  CHECK(s.samples == 800);  // the other four in five, and only those, trained on
  CHECK(s.steps == 50);
  CHECK(s.holdout_samples > 150);  // classified before each batch (the last few wait for the next)
  CHECK(s.holdout_samples <= 200);
  CHECK(s.holdout_accuracy > 0.25);  // it learns: chance is 0.1
  CHECK(s.holdout_accuracy <= 1.0);
  t.stop();

  NodeTrainerConfig all_held = small_config();
  all_held.holdout_every = 1;
  CHECK_THROWS_WITH(NodeTrainer(all_held), Catch::Contains("train on none"));
}
