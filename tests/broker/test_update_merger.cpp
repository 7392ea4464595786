#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "update_merger.h"

using namespace swarmlens;

namespace {

DecodedUpdate local(uint32_t node, uint64_t seq, std::vector<uint32_t> idx, std::vector<float> val,
                    uint64_t base = 0, uint32_t dim = 8) {
  DecodedUpdate u;
  u.header = {"m", 77, base, node, seq, 32};
  u.update.dim = dim;
  u.update.index = std::move(idx);
  u.update.value = std::move(val);
  return u;
}

MergerConfig gateway(uint32_t id = 900, uint64_t first = 1) {
  MergerConfig c;
  c.node_id = id;
  c.first_sequence = first;
  return c;
}

}  // namespace

TEST_CASE("merger forwards the sum of its nodes' updates under its own id", "[merger]") {
  UpdateMerger m("m", 77, 8, gateway(900, 1000));
  CHECK_FALSE(m.take());  // nothing submitted, nothing to send
  REQUIRE(m.submit(local(1, 1, {1, 5}, {2.0f, -4.0f}, 7)) == Verdict::Accepted);
  REQUIRE(m.submit(local(2, 9, {5, 6}, {1.0f, 0.5f}, 5)) == Verdict::Accepted);
  CHECK(m.pending_updates() == 2);
  auto c = m.take();
  REQUIRE(c);
  CHECK(m.pending_updates() == 0);
  CHECK(c->updates == 2);
  CHECK(c->header.node_id == 900);
  CHECK(c->header.sequence == 1000);
  CHECK(c->header.base_version == 5);  // the oldest base among them: staleness is not understated
  CHECK(c->header.samples == 64);
  CHECK(c->constituents == std::map<uint32_t, uint64_t>{{1, 1}, {2, 9}});
  // What goes on the wire decodes to exactly the sum.
  const DecodeResult d = decode_update(c->bytes);
  REQUIRE(d.ok());
  CHECK(d.value.header.node_id == 900);
  CHECK(d.value.update.index == std::vector<uint32_t>{1, 5, 6});
  CHECK(d.value.update.value == std::vector<float>{2.0f, -3.0f, 0.5f});
  CHECK(c->update.value == d.value.update.value);

  REQUIRE(m.submit(local(1, 2, {0}, {1.0f}, 8)) == Verdict::Accepted);
  auto c2 = m.take();
  REQUIRE(c2);
  CHECK(c2->header.sequence == 1001);
  CHECK(c2->header.base_version == 8);
  CHECK(c2->update.index == std::vector<uint32_t>{0});  // the sum restarted from zero
}

TEST_CASE("merger rejects what the aggregator would, and keeps it out of the sum", "[merger]") {
  UpdateMerger m("m", 77, 8, gateway());
  REQUIRE(m.submit(local(1, 5, {0}, {1.0f})) == Verdict::Accepted);
  CHECK(m.submit(local(1, 5, {1}, {1.0f})) == Verdict::Replayed);
  CHECK(m.submit(local(1, 4, {1}, {1.0f})) == Verdict::Replayed);
  CHECK(m.submit(local(2, 1, {1}, {std::numeric_limits<float>::quiet_NaN()})) == Verdict::NonFinite);
  CHECK(m.submit(local(2, 1, {1}, {1.0f}, 0, 9)) == Verdict::LayoutMismatch);  // another dimension
  auto other = local(2, 1, {1}, {1.0f});
  other.header.layout_hash = 78;
  CHECK(m.submit(other) == Verdict::LayoutMismatch);
  other = local(2, 1, {3, 1}, {1.0f, 1.0f});  // indices not increasing
  CHECK(m.submit(other) == Verdict::LayoutMismatch);
  CHECK(m.count(Verdict::Replayed) == 2);
  CHECK(m.count(Verdict::NonFinite) == 1);
  CHECK(m.count(Verdict::LayoutMismatch) == 3);
  auto c = m.take();
  REQUIRE(c);
  CHECK(c->update.index == std::vector<uint32_t>{0});
  CHECK(c->update.value == std::vector<float>{1.0f});
}

TEST_CASE("merger clips each local update to the norm bound", "[merger]") {
  MergerConfig cfg = gateway();
  cfg.norm.clip_norm = 1.0;
  cfg.codec.value = ValueCoding::Fp32;
  UpdateMerger m("m", 77, 8, cfg);
  m.submit(local(1, 1, {0, 1}, {3.0f, 4.0f}));  // norm 5 -> scaled by 1/5
  m.submit(local(2, 1, {0}, {0.5f}));           // within the bound: as is
  auto c = m.take();
  REQUIRE(c);
  CHECK(c->update.value[0] == Approx(0.6f + 0.5f));
  CHECK(c->update.value[1] == Approx(0.8f));
}

TEST_CASE("a combined update that could not be sent goes back into the next one", "[merger]") {
  UpdateMerger m("m", 77, 8, gateway());
  m.submit(local(1, 1, {2}, {1.5f}, 3));
  auto lost = m.take();
  REQUIRE(lost);
  m.restore(*lost);
  CHECK(m.pending_updates() == 1);
  m.submit(local(2, 4, {2, 3}, {1.0f, -1.0f}, 4));
  auto c = m.take();
  REQUIRE(c);
  CHECK(c->header.sequence == lost->header.sequence + 1);  // a fresh sequence: never a replay upstream
  CHECK(c->header.base_version == 3);
  CHECK(c->updates == 2);
  CHECK(c->update.index == std::vector<uint32_t>{2, 3});
  CHECK(c->update.value == std::vector<float>{2.5f, -1.0f});
  CHECK(c->constituents == std::map<uint32_t, uint64_t>{{1, 1}, {2, 4}});
  // The restored update is no longer waited for under its old sequence.
  Snapshot s;
  s.applied = {{900, lost->header.sequence}};
  m.translate(s);
  CHECK(s.applied.count(1) == 0);
}

TEST_CASE("merger translates upstream snapshots into the local nodes' sequences", "[merger]") {
  UpdateMerger m("m", 77, 8, gateway(900, 50));
  m.submit(local(1, 3, {0}, {1.0f}));
  m.submit(local(2, 5, {1}, {1.0f}));
  auto first = m.take();  // sequence 50: node 1 up to 3, node 2 up to 5
  m.submit(local(1, 4, {0}, {1.0f}));
  auto second = m.take();  // sequence 51: node 1 up to 4
  REQUIRE(first);
  REQUIRE(second);

  Snapshot none;  // a model from before any gateway update: nothing local in it
  none.applied = {{7, 2}};
  m.translate(none);
  CHECK(none.applied == std::map<uint32_t, uint64_t>{{7, 2}});

  Snapshot s1;
  s1.applied = {{900, 50}, {7, 3}};
  m.translate(s1);
  CHECK(s1.applied.at(1) == 3);
  CHECK(s1.applied.at(2) == 5);
  CHECK(s1.applied.at(7) == 3);

  Snapshot later;  // a model that does not name the gateway still holds what earlier ones held
  m.translate(later);
  CHECK(later.applied.at(1) == 3);

  Snapshot s2;
  s2.applied = {{900, 51}};
  m.translate(s2);
  CHECK(s2.applied.at(1) == 4);
  CHECK(s2.applied.at(2) == 5);
}

TEST_CASE("fp16 rounding of the combined update is fed back, not lost", "[merger]") {
  UpdateMerger m("m", 77, 8, gateway());  // fp16 values by default
  double sent = 0.0;
  for (uint64_t round = 1; round <= 100; ++round) {
    REQUIRE(m.submit(local(1, round, {0}, {1.1f})) == Verdict::Accepted);  // 1.1 is not an fp16 value
    auto c = m.take();
    REQUIRE(c);
    const DecodeResult d = decode_update(c->bytes);
    REQUIRE(d.ok());
    CHECK(d.value.value_coding == ValueCoding::Fp16);
    sent += d.value.update.value.at(0);
  }
  // Rounding each 1.1 alone would drift by 100 * 3.9e-4; fed back, the total is off by one rounding.
  CHECK(std::abs(sent - 110.0) < 1e-3);
}
