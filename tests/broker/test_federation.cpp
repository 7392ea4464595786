// Three nodes and a broker train one model together over a real nats-server.
#include <catch2/catch.hpp>

#include <zlib.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <chrono>
#include <filesystem>
#include <thread>

#include "broker_service.h"
#include "dataset.h"
#include "metrics.h"
#include "nats_server.h"
#include "served_broker.h"
#include "temp_dir.h"
#include "node_link.h"
#include "node_trainer.h"

using namespace swarmlens;
using swarmlens::testing::NatsServer;

TEST_CASE("three nodes and a broker train one model over NATS", "[federation]") {
  set_compute_threads(1);
  const uint32_t nodes = 3;
  const double lr = 0.05;

  BrokerConfig bc;
  bc.model_id = "fed";
  bc.aggregation.server_lr = lr / nodes;  // each update on arrival, N of them add up to one step
  bc.aggregation.buffer_size = 1;
  bc.aggregation.staleness_grace = 4 * nodes;
  bc.aggregation.max_staleness = 1000;
  testing::ServedBroker served(bc);
  auto& [server, broker, publisher] = served;
  const NatsOptions opts = served.options();

  auto train = load_fashion_mnist(default_fashion_mnist_dir(), true);
  const auto shards = shard_iid(9000, nodes, 3);
  // Links after trainers: destroyed first, so no model callback reaches a destroyed trainer.
  std::vector<std::unique_ptr<NodeTrainer>> trainers;
  std::vector<std::unique_ptr<NodeLink>> links;
  for (uint32_t n = 0; n < nodes; ++n) {
    NodeTrainerConfig cfg;
    cfg.model_id = "fed";  // the model id on the wire: the broker accepts only its own
    cfg.node_id = n;
    cfg.lr = lr / nodes;  // the scale the broker applies this node's updates with
    cfg.batch_size = 32;
    cfg.compression.sparsify.warmup_stage_steps = 4;
    // Asynchronous nodes see each other's updates a few steps late, and asynchrony acts as extra
    // momentum (docs/benchmarks.md, trigger study): less explicit momentum, no hold in the trigger.
    cfg.compression.sparsify.momentum = 0.6;
    cfg.compression.trigger.max_age_steps = 1;
    auto t = std::make_unique<NodeTrainer>(cfg);
    NodeTrainer* raw = t.get();
    links.push_back(std::make_unique<NodeLink>(opts, "fed", [raw](std::shared_ptr<const Snapshot> m) { raw->offer_model(m); }));
    NodeLink* link = links.back().get();
    t->set_uplink([link](const std::vector<uint8_t>& msg) { return link->send_update(msg); });
    t->start();
    trainers.push_back(std::move(t));
  }
  // Each node plays its shard (every frame trained) on its own thread, as camera pipelines would.
  std::vector<std::thread> cameras;
  for (uint32_t n = 0; n < nodes; ++n)
    cameras.emplace_back([&, n] {
      std::vector<float> img;
      std::vector<int64_t> lab;
      for (uint32_t idx : shards[n]) {
        make_batch(train, &idx, 1, img, lab);
        trainers[n]->push(img.data(), int(lab[0]), true);
      }
      trainers[n]->drain();
    });
  for (auto& c : cameras) c.join();
  uint64_t sent_bytes = 0, sent_messages = 0, link_bytes = 0;
  for (auto& t : trainers) {
    t->stop();  // sends what is still pending
    CHECK(t->error().empty());
    sent_bytes += t->stats().bytes_out;
    sent_messages += t->stats().messages;
  }
  for (auto& l : links) {
    CHECK(l->stats().updates_refused == 0);
    CHECK(l->stats().models_in > 0);  // models came down (snapshots and deltas)
    link_bytes += l->stats().bytes_sent;
  }
  CHECK(link_bytes == sent_bytes);
  for (auto& l : links) l->flush();
  for (int i = 0; i < 200 && broker.stats().updates_in < sent_messages; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  publisher.stop();

  const BrokerStats bs = broker.stats();
  CHECK(bs.updates_in == sent_messages);
  CHECK(bs.bytes_in == sent_bytes);  // what the nodes counted is what the broker received
  CHECK(bs.accepted == sent_messages);
  CHECK(bs.rejected.empty());
  CHECK(bs.models_out > 3);
  CHECK(bs.snapshots_out == 1);  // one keyframe when the chain started, deltas since
  CHECK(bs.deltas_out >= 3);
  CHECK(bs.version == sent_messages);

  auto model = Model::create({}, 1);
  const Snapshot s = broker.snapshot();
  model->set_params(s.params.data());
  auto test = load_fashion_mnist(default_fashion_mnist_dir(), false);
  const double acc = evaluate_accuracy(*model, test, 2000);
  INFO("global test accuracy after one pass over 9000 images on 3 nodes: " << acc);
  CHECK(acc > 0.5);  // chance is 0.1
}

TEST_CASE("broker_rejects_malformed_wrong_layout_and_nan_updates and the model stays finite", "[federation][reject]") {
  NatsServer server;
  NatsOptions opts;
  opts.urls = {server.url()};
  BrokerConfig bc;
  bc.model_id = "bad";
  BrokerService broker(bc, NatsLink::connect(opts));
  auto peer = NatsLink::connect(opts);
  const auto model = Model::create({}, 1);
  UpdateHeader h{"bad", model->layout_hash(), 0, 9, 1, 32};
  SparseVector s;
  s.dim = uint32_t(model->num_params());
  s.index = {5, 17};
  s.value = {0.5f, -0.25f};
  auto good = encode_update(h, s, {});
  peer->publish(update_subject("bad", 9), {1, 2, 3});                    // garbage
  auto wrong = good;
  wrong[0] = 'X';
  peer->publish(update_subject("bad", 9), wrong);                        // bad magic
  UpdateHeader other = h;
  other.layout_hash ^= 1;
  peer->publish(update_subject("bad", 9), encode_update(other, s, {}));  // another layout
  peer->publish(update_subject("bad", 9), good);                         // fine
  peer->publish(update_subject("bad", 9), good);                         // replayed
  // NaN on the wire, with a checksum that matches: caught by the value check, not the CRC.
  UpdateHeader next = h;
  next.sequence = 2;
  CodecConfig fp32;
  fp32.value = ValueCoding::Fp32;
  auto nan = encode_update(next, s, fp32);
  const float half = 0.5f, qnan = std::numeric_limits<float>::quiet_NaN();
  auto at = std::search(nan.begin(), nan.end(), reinterpret_cast<const uint8_t*>(&half), reinterpret_cast<const uint8_t*>(&half) + 4);
  REQUIRE(at != nan.end());
  std::memcpy(&*at, &qnan, 4);
  const uint32_t crc = uint32_t(crc32(crc32(0L, Z_NULL, 0), nan.data(), uInt(nan.size() - 4)));
  std::memcpy(nan.data() + nan.size() - 4, &crc, 4);
  peer->publish(update_subject("bad", 9), nan);
  // Oversized: 3 MB, over max_payload, so it travels in chunks, is reassembled, then rejected.
  peer->publish(update_subject("bad", 9), std::vector<uint8_t>(3 << 20, 0x5a));
  peer->flush();
  for (int i = 0; i < 100 && broker.stats().updates_in < 7; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const auto st = broker.stats();
  CHECK(st.updates_in == 7);
  CHECK(st.accepted == 1);
  CHECK(st.rejected.at("truncated") == 1);
  CHECK(st.rejected.at("bad_magic") == 2);
  CHECK(st.rejected.at("non_finite") == 1);
  CHECK(st.rejected.at("layout_mismatch") == 1);
  CHECK(st.rejected.at("replayed") == 1);
  for (float v : broker.snapshot().params) REQUIRE(std::isfinite(v));
}

TEST_CASE("the broker service runs without a link, updates handed in directly", "[federation][local]") {
  BrokerConfig bc;
  bc.model_id = "local";
  BrokerService broker(bc, nullptr);  // swarmaggregate without nats-url
  CHECK_FALSE(broker.published());
  const auto model = Model::create({}, 1);
  SparseVector s;
  s.dim = uint32_t(model->num_params());
  s.index = {3};
  s.value = {1.0f};
  const auto before = broker.snapshot().params[3];
  CHECK(broker.submit(encode_update({"local", model->layout_hash(), 0, 1, 1, 32}, s, {})).empty());
  CHECK(broker.submit({1, 2, 3}).find("truncated") == 0);
  CHECK(broker.submit(encode_update({"local", model->layout_hash(), 0, 1, 1, 32}, s, {})) == "replayed");
  REQUIRE(broker.publish_if_changed());
  CHECK_FALSE(broker.publish_if_changed());  // no newer version
  const auto published = broker.published();
  REQUIRE(published);
  CHECK(published->version == 1);
  CHECK(published->params[3] < before);
  CHECK(published->applied.at(1) == 1);
  const auto st = broker.stats();
  CHECK(st.accepted == 1);
  CHECK(st.models_out == 0);  // nothing went on a wire
  CHECK(st.rejected.at("replayed") == 1);
}

namespace {

// One update of `node`, sent as a node sends it (on its own subject, on the broker's current
// version), then the model published once the broker has taken it.
void send_and_publish(NatsLink& peer, BrokerService& broker, const std::string& id, const Model& model, uint32_t node,
                      uint64_t seq, std::vector<uint32_t> index, std::vector<float> value) {
  SparseVector s;
  s.dim = uint32_t(model.num_params());
  s.index = std::move(index);
  s.value = std::move(value);
  const uint64_t before = broker.stats().accepted;
  peer.publish(update_subject(id, node), encode_update({id, model.layout_hash(), broker.stats().version, node, seq, 32}, s, {}));
  peer.flush();
  for (int i = 0; i < 200 && broker.stats().accepted == before; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(broker.stats().accepted == before + 1);
  REQUIRE(broker.publish_if_changed());
}

}  // namespace

TEST_CASE("a node that starts late receives the latest model before it trains", "[federation][late]") {
  set_compute_threads(1);
  NatsServer server;
  NatsOptions opts;
  opts.urls = {server.url()};
  BrokerConfig bc;
  bc.model_id = "late";
  BrokerService broker(bc, NatsLink::connect(opts));
  auto peer = NatsLink::connect(opts);
  const auto model = Model::create({}, 1);
  for (uint64_t seq = 1; seq <= 5; ++seq)
    send_and_publish(*peer, broker, "late", *model, 4, seq, {uint32_t(seq * 1000), uint32_t(seq * 1000 + 7)}, {0.5f, -0.25f});
  const BrokerStats bs = broker.stats();
  CHECK(bs.version == 5);
  CHECK(bs.snapshots_out == 1);  // the keyframe that started the chain, then a delta a publish
  CHECK(bs.deltas_out == 4);

  NodeTrainerConfig cfg;
  cfg.model_id = "late";
  cfg.node_id = 9;
  cfg.batch_size = 16;
  NodeTrainer trainer(cfg);
  std::shared_ptr<const Snapshot> first;
  NodeLink link(opts, "late", [&](std::shared_ptr<const Snapshot> m) {
    if (!first) first = m;
    trainer.offer_model(m);
  });
  // Before any new model is published, the node already holds the latest one, bit for bit: the
  // keyframe and the four deltas after it, read from JetStream.
  REQUIRE(first);
  CHECK(first->version == 5);
  CHECK(first->applied.at(4) == 5);
  const auto want = broker.published();
  CHECK(std::memcmp(first->params.data(), want->params.data(), want->params.size() * sizeof(float)) == 0);
  CHECK(link.stats().keyframes_in == 1);
  CHECK(link.stats().catchup_deltas == 3);  // and the fourth as the head

  trainer.set_uplink([&](const std::vector<uint8_t>& m) { return link.send_update(m); });
  trainer.start();
  auto train = load_fashion_mnist(default_fashion_mnist_dir(), true);
  std::vector<float> img;
  std::vector<int64_t> lab;
  for (uint32_t idx = 0; idx < 16; ++idx) {
    make_batch(train, &idx, 1, img, lab);
    trainer.push(img.data(), int(lab[0]), true);
  }
  trainer.drain();
  trainer.stop();
  CHECK(trainer.error().empty());
  CHECK(trainer.stats().model_version == 5);  // it trained on the global model, not on its seed
}

TEST_CASE("a node that missed deltas reads them from the chain; the model it reaches is the broker's, bit for bit",
          "[federation][downlink]") {
  NatsServer server;
  NatsOptions opts;
  opts.urls = {server.url()};
  BrokerConfig bc;
  bc.model_id = "chain";
  BrokerService broker(bc, NatsLink::connect(opts));
  auto peer = NatsLink::connect(opts);
  const auto model = Model::create({}, 1);
  const uint32_t dim = uint32_t(model->num_params());
  uint64_t seq = 0;
  auto publish_updates = [&](int n) {
    for (int k = 0; k < n; ++k) {
      ++seq;
      std::vector<uint32_t> index = {uint32_t(seq * 997 % dim), uint32_t(seq * 1000 + 7)};
      std::sort(index.begin(), index.end());
      send_and_publish(*peer, broker, "chain", *model, 2, seq, index, {0.5f, -0.25f});
    }
  };
  publish_updates(2);
  // A node on a slow link pulls the model when it has room (it does not follow every publish).
  NodeLink slow(opts, "chain", {}, {}, false);
  REQUIRE(slow.latest());
  CHECK(slow.latest()->version == 2);
  CHECK(slow.stats().keyframes_in == 1);
  publish_updates(5);
  const uint64_t before = slow.stats().bytes_in;
  REQUIRE(slow.pull_model());
  CHECK(slow.latest()->version == 7);
  CHECK(slow.stats().keyframes_in == 1);     // the chain was cheaper than the keyframe
  CHECK(slow.stats().catchup_deltas == 4);  // v2 to v6 from the chain, v6 to v7 as the head
  CHECK(slow.stats().bytes_in - before < 4096);
  const auto want = broker.published();
  CHECK(std::memcmp(slow.latest()->params.data(), want->params.data(), want->params.size() * sizeof(float)) == 0);
  CHECK(slow.latest()->applied == want->applied);
  CHECK_FALSE(slow.pull_model());  // nothing newer

  // The node's model is the server's minus the server residual: one update's worth of entries here,
  // all of them sent, each rounded to fp16.
  const Snapshot server_side = broker.snapshot();
  for (size_t i = 0; i < dim; ++i) REQUIRE(want->params[i] == fp16_grid(server_side.params[i]));

  // A node that follows the stream holds the same model after every publish.
  std::atomic<uint64_t> seen{0};
  NodeLink follower(opts, "chain", [&](std::shared_ptr<const Snapshot> m) { seen = m->version; });
  publish_updates(3);
  for (int i = 0; i < 200 && seen < seq; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(seen == seq);
  CHECK(follower.stats().keyframes_in == 1);
  CHECK(std::memcmp(follower.latest()->params.data(), broker.published()->params.data(), want->params.size() * sizeof(float)) == 0);
}

TEST_CASE("a restarted broker continues the chain its nodes hold; one that cannot starts a new one and they move to it",
          "[federation][downlink]") {
  testing::TempDir dir;
  NatsServer server;
  NatsOptions opts;
  opts.urls = {server.url()};
  const auto model = Model::create({}, 1);
  const uint32_t dim = uint32_t(model->num_params());
  auto peer = NatsLink::connect(opts);
  uint64_t seq = 0;
  auto update = [&](BrokerService& broker) {
    ++seq;
    send_and_publish(*peer, broker, "again", *model, 6, seq, {uint32_t(seq * 31), uint32_t(seq * 31 + 5000)}, {0.25f, -0.5f});
  };
  BrokerConfig bc;
  bc.model_id = "again";
  bc.snapshot_path = dir.path + "/broker.swm";
  std::atomic<uint64_t> seen{0};
  std::unique_ptr<NodeLink> node;
  uint64_t chain = 0;
  {
    BrokerService first(bc, NatsLink::connect(opts));
    update(first);
    node = std::make_unique<NodeLink>(opts, "again", [&](std::shared_ptr<const Snapshot> m) { seen = m->version; });
    update(first);
    update(first);
    chain = first.published()->chain_id;
  }
  // Same snapshot file, same version as the kept model: the chain goes on, the node takes deltas.
  {
    BrokerService second(bc, NatsLink::connect(opts));
    REQUIRE(second.published());
    CHECK(second.published()->chain_id == chain);
    update(second);
    for (int i = 0; i < 200 && seen < seq; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(seen == seq);
    CHECK(second.stats().snapshots_out == 0);  // no keyframe on the wire
    CHECK(node->stats().keyframes_in == 1);    // the one it started from
    CHECK(std::memcmp(node->latest()->params.data(), second.published()->params.data(), dim * sizeof(float)) == 0);
  }
  // Without its file the broker resumes from the kept model itself (the server residual is lost:
  // here none, every difference went out) and continues; with an older file it starts a new chain.
  std::filesystem::remove(bc.snapshot_path);
  std::filesystem::remove(bc.snapshot_path + ".journal");
  BrokerConfig fresh = bc;
  fresh.snapshot_path = dir.path + "/other.swm";
  {
    BrokerService third(fresh, NatsLink::connect(opts));
    CHECK(third.stats().resumed_from == "JetStream");
    CHECK(third.published()->chain_id == chain);
  }
  // A server model the nodes never saw (its file is ahead of the kept model): a new chain, whose
  // keyframe the node adopts.
  Snapshot ahead = *node->latest();
  ahead.version = 100;
  ahead.chain_id = 0;
  ahead.chain_offset = 0;
  save_snapshot(dir.path + "/ahead.swm", ahead);
  fresh.snapshot_path = dir.path + "/ahead.swm";
  BrokerService fourth(fresh, NatsLink::connect(opts));
  CHECK_FALSE(fourth.published());
  update(fourth);
  for (int i = 0; i < 200 && seen < 101; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(seen == 101);
  CHECK(fourth.stats().snapshots_out == 1);
  CHECK(fourth.published()->chain_id != chain);
  CHECK(node->latest()->chain_id == fourth.published()->chain_id);
  CHECK(std::memcmp(node->latest()->params.data(), fourth.published()->params.data(), dim * sizeof(float)) == 0);
}

namespace {

// Federated training through the broker service, in process: `nodes` honest two-step nodes and,
// if `attack`, one more that sends its honest update sign-flipped and scaled by 25 (model
// poisoning). Returns the global model's test accuracy.
struct PoisonRun {
  double accuracy = 0;
  double median_honest_norm = 0;
  BrokerStats stats;
  bool finite = true;
};
PoisonRun poison_run(const Dataset& train, const Dataset& test, bool attack, const NormBoundConfig& bound) {
  const uint32_t nodes = 4, rounds = 60, batch = 32;
  const double lr = 0.05;
  auto model = Model::create({}, 1);
  const uint32_t dim = uint32_t(model->num_params());
  BrokerConfig bc;
  bc.model_id = "poison";
  bc.aggregation.server_lr = lr / nodes;
  bc.aggregation.norm = bound;
  BrokerService broker(bc, nullptr);
  const Shards shards = shard_iid(train.size(), nodes + 1, 7);
  std::vector<TwoStepCompressor> comp;
  for (uint32_t n = 0; n <= nodes; ++n) {
    CompressorConfig cc;
    cc.sparsify.density = 0.01;
    cc.sparsify.seed = 100 + n;
    cc.trigger.max_age_steps = 1;
    cc.codec.value = ValueCoding::Fp32;
    comp.emplace_back(dim, cc, NodeIdentity{"poison", model->layout_hash(), n});
  }
  std::vector<float> images;
  std::vector<int64_t> labels;
  std::vector<double> honest_norms;
  for (uint32_t r = 0; r < rounds; ++r) {
    for (uint32_t n = 0; n < nodes + (attack ? 1 : 0); ++n) {
      const Snapshot global = broker.snapshot();
      model->set_params(global.params.data());
      const auto& shard = shards[n];
      const size_t first = (size_t(r) * batch) % (shard.size() - batch);
      make_batch(train, shard.data() + first, batch, images, labels);
      model->compute_gradient({images.data(), labels.data(), labels.size()});
      std::optional<std::vector<uint8_t>> msg;
      try {
        msg = comp[n].step(model->grad(), batch, global.version);
      } catch (const std::invalid_argument&) {  // a wrecked model gives NaN gradients: skipped, as a node does
        continue;
      }
      REQUIRE(msg);
      if (n == nodes) {  // the attacker: its honest update, flipped and blown up
        auto d = decode_update(*msg);
        for (float& v : d.value.update.value) v *= -25.0f;
        msg = encode_update(d.value.header, d.value.update, {std::nullopt, ValueCoding::Fp32});
      } else {
        honest_norms.push_back(decode_update(*msg).value.update.l2_norm());
      }
      broker.submit(*msg);
    }
  }
  PoisonRun out;
  std::sort(honest_norms.begin(), honest_norms.end());
  out.median_honest_norm = honest_norms.empty() ? 0 : honest_norms[honest_norms.size() / 2];
  const Snapshot s = broker.snapshot();
  for (float v : s.params) out.finite = out.finite && std::isfinite(v);
  model->set_params(s.params.data());
  out.accuracy = evaluate_accuracy(*model, test);
  out.stats = broker.stats();
  return out;
}

}  // namespace

TEST_CASE("one poisoning node among four: norm clipping keeps the model learning, absurd and malformed updates are counted by reason",
          "[federation][reject][poison]") {
  set_compute_threads(1);
  Dataset train = load_fashion_mnist(default_fashion_mnist_dir(), true);
  train.truncate(12000);
  Dataset test = load_fashion_mnist(default_fashion_mnist_dir(), false);
  test.truncate(1000);
  NormBoundConfig off;  // no bound at all, as before robust aggregation was the default
  off.clip_factor = off.reject_factor = off.max_norm = 0.0;
  const PoisonRun clean = poison_run(train, test, false, NormBoundConfig{});
  const PoisonRun open = poison_run(train, test, true, off);
  // The defaults: clipped to 3x the median of recent accepted norms, refused above 50x or 1000.
  const PoisonRun robust = poison_run(train, test, true, NormBoundConfig{});
  INFO("median honest norm " << clean.median_honest_norm << "; accuracy: clean " << clean.accuracy << ", attacked "
       << open.accuracy << ", attacked under the default bound " << robust.accuracy);
  CHECK(clean.accuracy > 0.6);
  CHECK(open.accuracy < clean.accuracy - 0.2);     // the attack is real: unbounded, it wrecks the model
  // Under the default bound it does not: the sign-flipped update counts as much as one honest one,
  // so 4 honest nodes move the model at 3/4 of their speed (0.69 against 0.75 clean after 60 rounds
  // when this was written; docs/security.md).
  CHECK(robust.accuracy > clean.accuracy - 0.1);
  CHECK(robust.finite);
  // Tighter: refused outright above 10x the median, and counted by reason.
  NormBoundConfig strict;
  strict.reject_factor = 10.0;
  const PoisonRun rejected = poison_run(train, test, true, strict);
  CHECK(rejected.stats.rejected.at("absurd_norm") >= 50);
  CHECK(rejected.accuracy > clean.accuracy - 0.1);

  // Truncated and oversized messages, by reason, and the model untouched by them.
  BrokerConfig bc;
  bc.model_id = "poison";
  bc.max_update_bytes = 4096;
  BrokerService broker(bc, nullptr);
  const auto model = Model::create({}, 1);
  SparseVector s;
  s.dim = uint32_t(model->num_params());
  s.index = {1, 2};
  s.value = {0.5f, 0.5f};
  auto good = encode_update({"poison", model->layout_hash(), 0, 3, 1, 32}, s, {});
  const auto before = broker.snapshot().params;
  // Cut inside the header (a cut further on fails the checksum, counted as bad_checksum).
  CHECK(broker.submit(std::vector<uint8_t>(good.begin(), good.begin() + 8)).find("truncated") == 0);
  CHECK(broker.submit(std::vector<uint8_t>(5000, 1)).find("oversized") == 0);
  const auto st = broker.stats();
  CHECK(st.rejected.at("truncated") == 1);
  CHECK(st.rejected.at("oversized") == 1);
  CHECK(st.accepted == 0);
  CHECK(broker.snapshot().params == before);
}
