// The hostile fleet (docs/security.md): each class of attack tried with a plain NATS client against a
// broker in its default settings (plus a signing key, as the demo runs it) and nodes that verify,
// on a real nats-server. Each test asserts the model is not hurt, nothing crashes, memory stays
// bounded, and the refusal is counted by its reason. The accuracy side (sign-flipped and oversized
// updates from a share of training nodes) is in test_federation.cpp and `swarmlens bench attacks`.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <fstream>
#include <mutex>
#include <random>
#include <string>
#include <thread>

#include "broker_service.h"
#include "chunks.h"
#include "codec.h"
#include "model.h"
#include "model_channel.h"
#include "nats_server.h"
#include "temp_dir.h"
#include "node_link.h"
#include "reliable_uplink.h"
#include "robust.h"
#include "signing.h"

#include <nats/nats.h>
#include <stdlib.h>

#include <filesystem>

using namespace swarmlens;
using swarmlens::testing::TempDir;
using namespace std::chrono_literals;

namespace {

// One chunk with Swarmlens's chunk header, sent by a plain nats.c client (not the project's link).
void publish_raw_chunk(natsConnection* nc, const std::string& subject, const std::vector<uint8_t>& data,
                       const ChunkInfo& info) {
  natsMsg* m = nullptr;
  REQUIRE(natsMsg_Create(&m, subject.c_str(), nullptr, reinterpret_cast<const char*>(data.data()), int(data.size())) == NATS_OK);
  REQUIRE(natsMsgHeader_Set(m, kChunkHeader, info.to_header().c_str()) == NATS_OK);
  REQUIRE(natsConnection_PublishMsg(nc, m) == NATS_OK);
  natsMsg_Destroy(m);
}

// A broker as the demo runs it: default settings, a signing key, on its own nats-server.
struct Federation {
  testing::NatsServer server;
  std::string key_path;
  std::unique_ptr<BrokerService> broker;
  uint64_t hash = 0;
  uint32_t dim = 0;
  explicit Federation(const std::string& dir, const std::string& model_id = "atk") : key_path(dir + "/broker.key") {
    BrokerConfig bc;
    bc.model_id = model_id;
    bc.signing_key_path = key_path;
    broker = std::make_unique<BrokerService>(bc, NatsLink::connect(options()));
    const Snapshot s = broker->snapshot();
    hash = s.layout_hash;
    dim = uint32_t(s.params.size());
  }
  NatsOptions options() const {
    NatsOptions o;
    o.urls = {server.url()};
    return o;
  }
  ModelTrust trust() const {
    ModelTrust t;
    t.key = parse_public_key(key_path + ".pub");
    return t;
  }
};

std::vector<uint8_t> update(const std::string& id, uint64_t hash, uint32_t dim, uint32_t node, uint64_t seq, float scale,
                            uint64_t base = 0) {
  SparseVector s;
  s.dim = dim;
  std::mt19937 rng(node * 7919u + uint32_t(seq));
  std::uniform_int_distribution<uint32_t> pick(0, dim - 1);
  for (int i = 0; i < 64; ++i) s.index.push_back(pick(rng));
  std::sort(s.index.begin(), s.index.end());
  s.index.erase(std::unique(s.index.begin(), s.index.end()), s.index.end());
  std::normal_distribution<float> g(0.0f, 1.0f);
  for (size_t i = 0; i < s.index.size(); ++i) s.value.push_back(scale * g(rng));
  CodecConfig fp32;
  fp32.value = ValueCoding::Fp32;
  return encode_update({id, hash, base, node, seq, 32}, s, fp32);
}

template <typename F>
bool wait_until(F done, std::chrono::milliseconds limit = 10s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(10ms);
  }
  return true;
}

uint64_t rejected(const BrokerStats& st, const std::string& why) {
  auto it = st.rejected.find(why);
  return it == st.rejected.end() ? 0 : it->second;
}

long rss_kib() {
  std::ifstream f("/proc/self/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  return -1;
}

}  // namespace

TEST_CASE("an update with an L2 norm of 1e31 under a made-up node id is refused; norms far above the median are clipped",
          "[attacks][norm]") {
  TempDir dir;
  Federation f(dir.path);
  auto peer = NatsLink::connect(f.options());
  uint64_t seq = 1;
  for (uint32_t node = 1; node <= 8; ++node)  // honest traffic sets the median
    peer->publish(update_subject("atk", node), update("atk", f.hash, f.dim, node, seq, 0.1f));
  // Taken before the attack: the broker's decode threads keep each node's order, not the order
  // between nodes.
  peer->flush();
  REQUIRE(wait_until([&] { return f.broker->stats().updates_in >= 8; }));
  peer->publish(update_subject("atk", 666), update("atk", f.hash, f.dim, 666, 1, 1e30f));  // L2 ~ 1e31
  peer->publish(update_subject("atk", 667), update("atk", f.hash, f.dim, 667, 1, 1000.0f));
  peer->flush();
  REQUIRE(wait_until([&] { return f.broker->stats().updates_in >= 10; }));
  const BrokerStats st = f.broker->stats();
  CHECK(st.accepted == 9);
  CHECK(rejected(st, "absurd_norm") == 1);
  CHECK(st.clipped >= 1);  // the 1000x one, down to the median (and honest ones above it)
  CHECK(st.norm_median < 10.0);
  const Snapshot s = f.broker->snapshot();
  CHECK(check_model(s.params, 0.0).empty());
  CHECK(f.broker->publish_if_changed());
}

TEST_CASE("a payload claiming another node's id on a node's subject is refused, and a sequence jump never shuts a node out",
          "[attacks][identity]") {
  TempDir dir;
  Federation f(dir.path);
  auto peer = NatsLink::connect(f.options());
  peer->publish(update_subject("atk", 6), update("atk", f.hash, f.dim, 5, 1, 0.1f));          // node 5 on 6's subject
  peer->publish(update_subject("atk", 5), update("atk", f.hash, f.dim, 5, UINT64_MAX, 0.1f));  // sequence poisoning
  peer->publish("swarmlens.atk.update.x", update("atk", f.hash, f.dim, 5, 2, 0.1f));           // no node id
  peer->flush();
  REQUIRE(wait_until([&] { return f.broker->stats().updates_in >= 3; }));
  BrokerStats st = f.broker->stats();
  CHECK(rejected(st, "identity_mismatch") == 1);
  CHECK(rejected(st, "sequence_jump") == 1);
  CHECK(rejected(st, "bad_subject") == 1);
  CHECK(st.accepted == 0);
  // Node 5's own next update, numbered from the clock as nodes do, is still taken.
  const uint64_t now_us = uint64_t(std::chrono::duration_cast<std::chrono::microseconds>(
                                       std::chrono::system_clock::now().time_since_epoch()).count());
  CHECK(f.broker->submit(update("atk", f.hash, f.dim, 5, now_us, 0.1f)).empty());
}

TEST_CASE("forged snapshots, deltas and acks are refused and counted by a node that has the model key; "
          "without it the node says it trusts blindly", "[attacks][signing]") {
  TempDir dir;
  Federation f(dir.path);
  REQUIRE(f.broker->publish_if_changed());
  std::mutex mu;
  std::vector<uint64_t> versions;
  std::vector<std::string> events;
  NodeLink node(f.options(), "atk", [&](std::shared_ptr<const Snapshot> m) {
    std::lock_guard<std::mutex> g(mu);
    versions.push_back(m->version);
  }, [&](const std::string& e) {
    std::lock_guard<std::mutex> g(mu);
    events.push_back(e);
  }, true, f.trust());
  {
    std::lock_guard<std::mutex> g(mu);
    REQUIRE(versions == std::vector<uint64_t>{0});  // the broker's retained model: signed, adopted
  }
  UpdateAck heard;
  std::atomic<int> acks{0};
  node.on_acks(3, [&](const UpdateAck& a) {
    heard = a;
    ++acks;
  });

  auto forger = NatsLink::connect(f.options());
  const Snapshot real = f.broker->snapshot();
  const Snapshot forged("cnn", real.layout_hash, 1000000, std::vector<float>(real.params.size(), 0.01f));
  forger->publish(model_subject("atk"), encode_snapshot(forged));                        // unsigned
  std::vector<uint8_t> wrong = encode_snapshot(forged);
  sign_payload(wrong, generate_signing_key(), kSignedModel, "atk");                       // another key
  forger->publish(model_subject("atk"), wrong);
  ModelDelta d = make_delta(*f.broker->published(), *f.broker->published());
  d.version = real.version + 1000000;
  forger->publish(model_subject("atk"), encode_delta(d));                                // the freezing delta
  const std::string fake = encode_ack(UpdateAck{3, 1, "accepted", 1, 0, 1.0});
  forger->publish(ack_subject("atk", 3), std::vector<uint8_t>(fake.begin(), fake.end()));  // a forged ack
  forger->flush();
  REQUIRE(wait_until([&] { return node.stats().models_refused >= 3 && node.stats().acks_refused >= 1; }));
  CHECK(acks == 0);

  // The real ones still come through: an update answered by the broker, and the model it leads to.
  ReliableUplink uplink(node, 3, UplinkOptions{2000, false, {}});
  REQUIRE(uplink.offer(update("atk", f.hash, f.dim, 3, 1, 0.1f)));
  REQUIRE(uplink.wait_idle(10s));
  CHECK(uplink.stats().delivered == 1);  // the broker's signed ack was taken...
  CHECK(node.stats().acks_refused == 1);  // ...and only the forged one refused
  REQUIRE(f.broker->publish_if_changed());
  REQUIRE(wait_until([&] { return node.stats().model_version == 1; }));
  {
    std::lock_guard<std::mutex> g(mu);
    CHECK(versions == std::vector<uint64_t>{0, 1});
  }

  // A node without the key is told, once, at start.
  std::vector<std::string> blind;
  NodeLink open(f.options(), "atk", {}, [&](const std::string& e) { blind.push_back(e); });
  REQUIRE_FALSE(blind.empty());
  CHECK(blind.front().find("trusted blindly") != std::string::npos);
}

TEST_CASE("a broker whose retained model is garbage or forged starts anyway, from its snapshot file, and says why",
          "[attacks][resume]") {
  TempDir dir;
  testing::NatsServer server;
  NatsOptions o;
  o.urls = {server.url()};
  BrokerConfig bc;
  bc.model_id = "res";
  bc.signing_key_path = dir.path + "/broker.key";
  bc.snapshot_path = dir.path + "/model.snap";
  bc.journal = false;
  uint64_t published = 0;
  {
    BrokerService b(bc, NatsLink::connect(o));
    const Snapshot s = b.snapshot();
    CHECK(b.submit(update("res", s.layout_hash, uint32_t(s.params.size()), 1, 1, 0.1f)).empty());
    REQUIRE(b.publish_if_changed());
    published = b.stats().version;
  }
  auto attacker = NatsLink::connect(o);
  // Garbage kept in JetStream over the real model: framed as a Swarmlens link would, and raw.
  attacker->retain(retained_prefix("res", "full"), std::vector<uint8_t>(5000, 0x42));
  {
    BrokerService b(bc, NatsLink::connect(o));
    CHECK(b.stats().resumed_from == "snapshot file");
    CHECK(b.stats().version == published);
    CHECK_FALSE(b.stats().resume_refused.empty());
  }
  attacker->publish(retained_prefix("res", "full") + ".0", std::vector<uint8_t>(100, 0x42));  // no chunk header
  attacker->flush();
  std::this_thread::sleep_for(200ms);
  {
    BrokerService b(bc, NatsLink::connect(o));
    CHECK(b.stats().version == published);
    CHECK(b.stats().resume_refused.find("chunk header") != std::string::npos);
  }
  // A well-formed model with a huge version, unsigned: refused, never resumed from.
  const Snapshot s = BrokerService(bc, nullptr).snapshot();
  attacker->retain(retained_prefix("res", "full"), encode_snapshot(Snapshot("cnn", s.layout_hash, 1000000, s.params)));
  attacker->retain(retained_prefix("res", "delta"), std::vector<uint8_t>{1, 2, 3});
  BrokerService b(bc, NatsLink::connect(o));
  CHECK(b.stats().version == published);
  CHECK(b.stats().resume_refused.find("not signed") != std::string::npos);
}

TEST_CASE("a model that fails its check is never published: the broker rolls back and counts it", "[attacks][model]") {
  BrokerConfig bc;
  bc.model_id = "chk";
  bc.aggregation.norm.max_norm = 0;       // every bound on updates off: only the model check stands
  bc.aggregation.norm.clip_factor = 0;
  BrokerService b(bc, nullptr);
  REQUIRE(b.publish_if_changed());
  const Snapshot before = b.snapshot();
  CHECK(b.submit(update("chk", before.layout_hash, uint32_t(before.params.size()), 1, 1, 1e8f)).empty());
  CHECK_FALSE(b.publish_if_changed());
  const BrokerStats st = b.stats();
  CHECK(st.models_refused == 1);
  CHECK(st.model_refusal.find("norm") != std::string::npos);
  CHECK(b.snapshot().params == before.params);
  CHECK(b.published()->params == before.params);
}

TEST_CASE("chunk bombs: unfinished chunked payloads are bounded in memory, expire on a timer and are counted",
          "[attacks][chunks]") {
  // The assembler alone: 32 payloads announcing 8 MiB each, one 512 KiB chunk of each sent.
  ChunkAssembler a(std::chrono::milliseconds(200), 64, 8u << 20);
  const std::vector<uint8_t> chunk(512 << 10, 7);
  const auto t0 = ChunkAssembler::Clock::now();
  uint64_t most = 0;
  for (uint64_t id = 0; id < 32; ++id) {
    a.add({id, 0, 16, 8u << 20}, chunk.data(), chunk.size(), t0);
    most = std::max(most, a.buffered_bytes());
  }
  CHECK(most <= 2 * (8u << 20));
  CHECK(a.dropped() >= 32 - 2 * 16);
  CHECK(a.expire(t0 + std::chrono::seconds(1)).find("missing chunk") != std::string::npos);
  CHECK(a.pending() == 0);
  CHECK(a.buffered_bytes() == 0);

  // Through a broker: unfinished payloads of a legal size on a node's update subject, from a plain
  // nats.c client. The broker holds at most about twice the largest legal update and says so.
  TempDir dir;
  Federation f(dir.path);
  natsConnection* nc = nullptr;
  REQUIRE(natsConnection_ConnectTo(&nc, f.server.url().c_str()) == NATS_OK);
  const uint64_t total = 2ull * f.dim * sizeof(float);  // a dense fp32 update's size, twice over: legal
  const std::vector<uint8_t> piece(size_t(total / 4), 1);
  for (uint64_t id = 0; id < 32; ++id) publish_raw_chunk(nc, update_subject("atk", 9), piece, ChunkInfo{1000 + id, 0, 4, total});
  REQUIRE(natsConnection_Flush(nc) == NATS_OK);
  natsConnection_Destroy(nc);
  // 32 quarter payloads are 8 legal updates' worth: past twice one, the oldest are dropped and counted.
  CHECK(wait_until([&] { return rejected(f.broker->stats(), "bad_chunks") >= 16; }));
}

TEST_CASE("a flood of 20,000 bad updates is refused, counted, and leaves the model and memory alone", "[attacks][flood]") {
  TempDir dir;
  Federation f(dir.path);
  const Snapshot before = f.broker->snapshot();
  auto flooder = NatsLink::connect(f.options());
  const std::vector<uint8_t> good = update("atk", f.hash, f.dim, 4, 1, 0.1f);
  const long rss0 = rss_kib();
  for (int i = 0; i < 20000; ++i) {
    std::vector<uint8_t> bad = good;
    bad[size_t(i) % bad.size()] ^= 0x5a;  // bit flips: bad magic, bad checksum, ...
    flooder->publish(update_subject("atk", 4), bad);
  }
  flooder->flush();
  REQUIRE(wait_until([&] { return f.broker->stats().updates_in >= 20000; }, 60s));
  const BrokerStats st = f.broker->stats();
  uint64_t refused = 0;
  for (const auto& [why, n] : st.rejected) refused += n;
  CHECK(refused + st.accepted == 20000);
  CHECK(st.accepted == 0);
  CHECK(f.broker->snapshot().params == before.params);
  CHECK(rss_kib() - rss0 < 64 * 1024);
}
