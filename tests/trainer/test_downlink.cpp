#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <map>
#include <random>

#include "bytes.h"
#include "downlink.h"
#include "framing.h"
#include "int_code.h"
#include "snapshot.h"

using namespace swarmlens;

namespace {

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// The server's model after `steps` of training-like drift: a few large moves and many small ones.
void drift(std::vector<float>& server, std::mt19937& rng, float scale) {
  std::normal_distribution<float> n(0.0f, scale);
  std::uniform_int_distribution<size_t> pick(0, server.size() - 1);
  for (int k = 0; k < 40; ++k) server[pick(rng)] += 20.0f * n(rng);
  for (float& v : server) v += 0.01f * n(rng);
}

}  // namespace

TEST_CASE("the fp16 grid: positions are monotone, exact and cover every finite fp16 value", "[downlink]") {
  int32_t prev = -kFp16MaxOrdinal - 1;
  float prev_value = -INFINITY;
  for (int32_t o = -kFp16MaxOrdinal; o <= kFp16MaxOrdinal; ++o) {
    const float v = from_fp16_ordinal(o);
    REQUIRE(on_fp16_grid(v));
    REQUIRE(fp16_ordinal(v) == o);
    REQUIRE(v > prev_value);
    REQUIRE(o == prev + 1);
    prev = o;
    prev_value = v;
  }
  CHECK(fp16_grid(1e6f) == 65504.0f);
  CHECK(fp16_grid(-1e6f) == -65504.0f);
  CHECK(!std::signbit(fp16_grid(-1e-9f)));  // -0 is +0: one value per grid point
  CHECK(!on_fp16_grid(0.1f));
  CHECK(on_fp16_grid(fp16_grid(0.1f)));
  CHECK(std::fabs(fp16_grid(0.1f) - 0.1f) < 0.1f / 2048);
}

TEST_CASE("a node following the model stream holds the broker's published model bit for bit", "[downlink][delta]") {
  std::mt19937 rng(11);
  std::normal_distribution<float> init(0.0f, 0.1f);
  std::vector<float> server(20000);
  for (float& v : server) v = init(rng);
  DownlinkConfig cfg;
  cfg.density = 0.01;
  DownlinkEncoder enc(cfg);
  enc.reset(server);
  // The keyframe: exact in fp16.
  Snapshot key("cnn", 0x77, 1, enc.published(), {{1, 5}});
  key.chain_id = 0xc0ffee;
  const auto key_bytes = encode_snapshot(key, true);
  CHECK(key_bytes.size() < server.size() * 2 + 200);
  Snapshot node = decode_snapshot(key_bytes.data(), key_bytes.size(), "keyframe");
  REQUIRE(same_bits(node.params, enc.published()));
  CHECK(node.chain_id == 0xc0ffee);

  uint64_t offset = 0, version = 1;
  std::map<uint32_t, uint64_t> applied = {{1, 5}};
  for (int publish = 0; publish < 60; ++publish) {
    drift(server, rng, 1e-3f);
    applied[uint32_t(publish % 3)] = uint64_t(publish + 10);
    ModelDelta d;
    d.layout_hash = 0x77;
    d.chain_id = 0xc0ffee;
    d.base_version = version;
    d.version = version += 5;
    d.dim = uint32_t(server.size());
    d.offset = offset;
    enc.next(server, d.index, d.step);
    CHECK(d.index.size() <= 200);  // at most 1% of the parameters per publish
    for (const auto& [n, seq] : applied)
      if (!node.applied.count(n) || node.applied.at(n) != seq) d.applied[n] = seq;
    const auto bytes = encode_delta(d);
    offset += bytes.size();
    // Under 2.5 bytes an entry (a gap and a step in adaptive codes), against 4 for the value alone in fp32.
    CHECK(bytes.size() < d.index.size() * 5 / 2 + 120);
    node = apply_delta(node, decode_delta(bytes.data(), bytes.size(), "delta"));
    REQUIRE(same_bits(node.params, enc.published()));
    CHECK(node.version == version);
    CHECK(node.applied == applied);
    CHECK(node.chain_offset == offset);
  }
  // Nothing is lost, only delayed: once the server stops moving, the residual drains to the
  // rounding of the server model to the grid.
  const double before = enc.residual_norm(server);
  for (int publish = 0; publish < 200; ++publish) {
    ModelDelta d;
    enc.next(server, d.index, d.step);
  }
  std::vector<float> rounded(server.size());
  std::transform(server.begin(), server.end(), rounded.begin(), fp16_grid);
  CHECK(same_bits(enc.published(), rounded));
  CHECK(enc.residual_norm(server) < before);
}

TEST_CASE("moves smaller than the grid's step wait in the residual until they add up", "[downlink]") {
  std::vector<float> server(100, 1.0f);
  DownlinkEncoder enc(DownlinkConfig{1.0});
  enc.reset(server);
  std::vector<uint32_t> index;
  std::vector<int32_t> step;
  // fp16's step at 1.0 is 2^-10: a move of a tenth of it a publish goes out after about five.
  int published_after = 0;
  for (int k = 1; k <= 20 && !published_after; ++k) {
    for (float& v : server) v += 1.0f / 10240;
    enc.next(server, index, step);
    if (!index.empty()) published_after = k;
  }
  CHECK(published_after >= 4);
  CHECK(published_after <= 6);
  CHECK(index.size() == 100);
  CHECK(step == std::vector<int32_t>(100, 1));
  CHECK(enc.published()[0] == 1.0f + 1.0f / 1024);
}

TEST_CASE("a model delta is refused when it is not for the model it meets, or leaves the grid", "[downlink][reject]") {
  Snapshot base("cnn", 0x5, 7, {0.5f, 1.0f, -2.0f, 0.0f});
  base.chain_id = 3;
  Snapshot next = base;
  next.version = 9;
  next.params[1] = fp16_grid(1.25f);
  next.params[3] = from_fp16_ordinal(-1);
  next.applied = {{4, 2}};
  const ModelDelta d = make_delta(base, next);
  CHECK(d.index == std::vector<uint32_t>{1, 3});
  CHECK(d.applied == next.applied);
  const auto bytes = encode_delta(d);
  const ModelDelta got = decode_delta(bytes.data(), bytes.size(), "t");
  CHECK(got.bytes == bytes.size());
  CHECK(same_bits(apply_delta(base, got).params, next.params));

  Snapshot other_chain = base;
  other_chain.chain_id = 4;
  CHECK_THROWS_WITH(apply_delta(other_chain, got), Catch::Contains("another chain"));
  Snapshot other_version = base;
  other_version.version = 8;
  CHECK_THROWS_WITH(apply_delta(other_version, got), Catch::Contains("from version 7"));
  Snapshot off_grid = base;
  off_grid.params[1] = 0.1f;
  CHECK_THROWS_WITH(apply_delta(off_grid, got), Catch::Contains("fp16 grid"));
  ModelDelta too_far = got;
  too_far.step[0] = 2 * kFp16MaxOrdinal;
  const auto far_bytes = encode_delta(too_far);
  CHECK_THROWS_WITH(apply_delta(base, decode_delta(far_bytes.data(), far_bytes.size(), "t")), Catch::Contains("fp16 range"));
  auto corrupt = bytes;
  corrupt[20] ^= 1;
  CHECK_THROWS_WITH(decode_delta(corrupt.data(), corrupt.size(), "t"), Catch::Contains("checksum"));
  CHECK_THROWS_WITH(decode_delta(bytes.data(), 10, "t"), Catch::Contains("not a Swarmlens model delta"));
  CHECK_THROWS(make_delta(off_grid, next));  // only models on the grid make deltas
  Snapshot keyframe_off_grid = off_grid;
  CHECK_THROWS_WITH(encode_snapshot(keyframe_off_grid, true), Catch::Contains("fp16 grid"));
}

TEST_CASE("the adaptive integer codes read back what they wrote and pick the shorter code", "[downlink][intcode]") {
  std::mt19937 rng(5);
  std::geometric_distribution<uint64_t> geo(0.02);
  std::vector<uint64_t> gaps(5000), tail(5000);
  for (auto& v : gaps) v = geo(rng);
  for (size_t i = 0; i < tail.size(); ++i) tail[i] = i % 50 == 0 ? 40000 + i : i % 3;  // mostly tiny, a few huge
  for (const auto* values : {&gaps, &tail}) {
    for (IntCode::Kind kind : {IntCode::Rice, IntCode::ExpGolomb}) {
      for (uint8_t k : {0, 3, 7}) {
        const IntCode c{kind, k};
        if (kind == IntCode::Rice && k == 0 && values == &tail) continue;  // 40,000-bit codewords: legal, pointless
        BitWriter w;
        uint64_t bits = 0;
        for (uint64_t v : *values) c.write(w, v), bits += c.bits(v);
        CHECK(w.bytes().size() == (bits + 7) / 8);
        BitReader r(w.bytes().data(), w.bytes().size());
        uint64_t v = 0;
        bool same = true;
        for (uint64_t want : *values) same = same && c.read(r, 1 << 20, v) && v == want;
        CHECK(same);
        CHECK(r.remaining() < 8);
      }
    }
  }
  CHECK(best_int_code(gaps).kind == IntCode::Rice);       // geometric gaps: Rice
  CHECK(best_int_code(tail).kind == IntCode::ExpGolomb);  // a heavy tail: exp-Golomb
  // A value beyond the bound, or a stream that ends early, is refused.
  BitWriter w;
  IntCode{IntCode::ExpGolomb, 2}.write(w, 5000);
  BitReader r(w.bytes().data(), w.bytes().size());
  uint64_t v = 0;
  CHECK_FALSE(IntCode{IntCode::ExpGolomb, 2}.read(r, 4999, v));
  BitReader cut(w.bytes().data(), 1);
  CHECK_FALSE(IntCode{IntCode::ExpGolomb, 2}.read(cut, 1 << 20, v));
  IntCode c;
  CHECK_FALSE(IntCode::from_byte(0x40, c));
  CHECK(IntCode::from_byte(IntCode{IntCode::ExpGolomb, 9}.byte(), c));
  CHECK((c.kind == IntCode::ExpGolomb && c.k == 9));
}

TEST_CASE("a model delta of format 2 (varints, kept from before) still reads", "[downlink][delta]") {
  std::vector<uint8_t> buf;
  begin_frame(buf, {'S', 'W', 'L', 'D'}, 2);
  ByteWriter w(buf);
  for (uint64_t v : {uint64_t(0x5), uint64_t(3), uint64_t(7), uint64_t(9)}) w.put<uint64_t>(v);  // layout, chain, base, version
  w.put<uint32_t>(4);
  for (uint64_t v : {uint64_t(100), uint64_t(1), uint64_t(0), uint64_t(50)}) w.put<uint64_t>(v);  // offsets
  w.varint(2);
  w.varint(1);  // index 1
  w.varint(1);  // index 3
  w.varint(2);  // step +1
  w.varint(1);  // step -1
  w.varint(1);
  w.varint(4);
  w.varint(2);  // node 4 at sequence 2
  end_frame(buf);
  const ModelDelta d = decode_delta(buf.data(), buf.size(), "format 2");
  CHECK(d.index == std::vector<uint32_t>{1, 3});
  CHECK(d.step == std::vector<int32_t>{1, -1});
  CHECK(d.applied == std::map<uint32_t, uint64_t>{{4, 2}});
  CHECK(d.offset == 100);
}
