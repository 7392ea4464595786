#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "compressor.h"
#include "gaussian.h"
#include "trigger.h"

using namespace swarmlens;

namespace {

SparseVector sv(uint32_t dim, std::vector<uint32_t> idx, std::vector<float> val) {
  SparseVector s;
  s.dim = dim;
  s.index = std::move(idx);
  s.value = std::move(val);
  return s;
}

}  // namespace

TEST_CASE("merge_add sums overlapping entries and keeps order", "[trigger]") {
  auto m = merge_add(sv(10, {1, 4, 7}, {1, 1, 1}), sv(10, {0, 4, 9}, {2, 2, 2}));
  CHECK(m.index == std::vector<uint32_t>{0, 1, 4, 7, 9});
  CHECK(m.value == std::vector<float>{2, 1, 3, 1, 2});
  CHECK(m.well_formed());
}

TEST_CASE("trigger releases on age, size or norm, never empty", "[trigger]") {
  SECTION("age") {
    Trigger t(10, {0.0, 0, 3});
    t.add(sv(10, {1}, {1}), 32, 5);
    t.add(sv(10, {}, {}), 32, 6);
    CHECK_FALSE(t.ready());
    t.add(sv(10, {1, 2}, {1, 1}), 32, 7);
    REQUIRE(t.ready());
    auto r = t.take();
    CHECK(r.update.index == std::vector<uint32_t>{1, 2});
    CHECK(r.update.value == std::vector<float>{2, 1});
    CHECK(r.samples == 96);
    CHECK(r.base_version == 5);  // the oldest part decides the staleness
    CHECK(r.steps == 3);
    CHECK(t.pending().empty());
    CHECK(t.age_steps() == 0);
  }
  SECTION("size") {
    Trigger t(10, {0.0, 3, 0});
    t.add(sv(10, {1, 2}, {1, 1}), 1, 0);
    CHECK_FALSE(t.ready());
    t.add(sv(10, {2}, {1}), 1, 0);  // overlaps: still 2 entries
    CHECK_FALSE(t.ready());
    t.add(sv(10, {5}, {1}), 1, 0);
    CHECK(t.ready());
  }
  SECTION("norm") {
    Trigger t(10, {5.0, 0, 0});
    t.add(sv(10, {1}, {3}), 1, 0);
    CHECK_FALSE(t.ready());
    t.add(sv(10, {2}, {4}), 1, 0);  // norm 5
    CHECK(t.ready());
  }
  SECTION("an empty pending update is never ready, however old") {
    Trigger t(10, {0.0, 0, 1});
    for (int i = 0; i < 5; ++i) t.add(sv(10, {}, {}), 1, 0);
    CHECK_FALSE(t.ready());
  }
  SECTION("no threshold set: every non-empty step") {
    Trigger t(10, {});
    t.add(sv(10, {3}, {1}), 1, 0);
    CHECK(t.ready());
  }
}

TEST_CASE("trigger restore puts an undelivered update back, merged", "[trigger]") {
  Trigger t(10, {0.0, 0, 2});
  t.add(sv(10, {1}, {1}), 10, 3);
  t.add(sv(10, {2}, {1}), 10, 4);
  auto r = t.take();
  t.add(sv(10, {2, 3}, {1, 1}), 10, 8);
  t.restore(r.update, r.samples, r.base_version);
  CHECK(t.pending().index == std::vector<uint32_t>{1, 2, 3});
  CHECK(t.pending().value == std::vector<float>{1, 2, 1});
  auto again = t.take();
  CHECK(again.samples == 30);
  CHECK(again.base_version == 3);
}

TEST_CASE("two-step compressor conserves everything: decoded + residual + pending == input",
          "[trigger][compressor]") {
  const uint32_t dim = 20000;
  CompressorConfig cfg;
  cfg.sparsify.momentum = 0.0;  // so the input is simply the sum of gradients
  cfg.sparsify.density = 0.005;
  cfg.trigger.max_age_steps = 3;
  cfg.codec.value = GENERATE(ValueCoding::Fp16, ValueCoding::Int8, ValueCoding::Sign);
  TwoStepCompressor c(dim, cfg, {"m", 99, 1});
  std::vector<double> in(dim, 0.0), got(dim, 0.0);
  int messages = 0;
  for (int step = 0; step < 20; ++step) {
    const auto g = gaussian(dim, 50 + step);
    for (uint32_t i = 0; i < dim; ++i) in[i] += g[i];
    if (auto msg = c.step(g.data(), 32, uint64_t(step))) {
      ++messages;
      auto d = decode_update(*msg);
      REQUIRE(d.ok());
      CHECK(d.value.header.sequence == uint64_t(messages));
      for (size_t j = 0; j < d.value.update.nnz(); ++j)
        got[d.value.update.index[j]] += d.value.update.value[j];
    }
  }
  CHECK(messages == 6);  // 20 steps, released every 3
  const auto& pending = c.trigger().pending();
  std::vector<double> pend(dim, 0.0);
  for (size_t j = 0; j < pending.nnz(); ++j) pend[pending.index[j]] = pending.value[j];
  for (uint32_t i = 0; i < dim; ++i)
    REQUIRE(got[i] + c.sparsifier().residual()[i] + pend[i] == Approx(in[i]).margin(1e-3));
  CHECK(c.messages() == 6);
}

TEST_CASE("compressor requeue and flush: an undelivered update is sent later, not lost",
          "[trigger][compressor]") {
  CompressorConfig cfg;
  cfg.sparsify.momentum = 0.0;
  cfg.sparsify.density = 0.1;
  cfg.codec.value = ValueCoding::Fp32;
  TwoStepCompressor c(100, cfg, {"m", 1, 2});
  const auto g = gaussian(100, 1);
  auto msg = c.step(g.data(), 8, 0);
  REQUIRE(msg);
  const auto first = decode_update(*msg).value.update;
  c.requeue(*msg);  // the link was down
  CHECK(c.messages() == 0);
  CHECK(c.trigger().pending().index == first.index);
  auto later = c.flush();
  REQUIRE(later);
  CHECK(decode_update(*later).value.update.value == first.value);
  CHECK_FALSE(c.flush());
}

TEST_CASE("compressor_rejects_nan_gradient_and_keeps_pending", "[trigger][compressor][reject]") {
  CompressorConfig cfg;
  cfg.trigger.max_age_steps = 10;
  TwoStepCompressor c(100, cfg, {"m", 1, 2});
  auto g = gaussian(100, 3);
  c.step(g.data(), 8, 0);
  const auto before = c.trigger().pending();
  g[5] = NAN;
  CHECK_THROWS_AS(c.step(g.data(), 8, 0), std::invalid_argument);
  CHECK(c.trigger().pending().index == before.index);
  CHECK(c.trigger().age_steps() == 1);
}
