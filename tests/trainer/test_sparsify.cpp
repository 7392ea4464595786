#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "sparsify.h"

using namespace swarmlens;

namespace {

std::vector<float> gaussian(size_t n, uint64_t seed, float scale = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> d(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

std::vector<uint32_t> select(Criterion c, const std::vector<float>& v, uint32_t k, double thr = 0) {
  SparsifierConfig cfg;
  cfg.criterion = c;
  cfg.threshold = thr;
  auto sel = make_selector(cfg);
  std::vector<uint32_t> out;
  sel->select(v.data(), uint32_t(v.size()), k, out);
  return out;
}

}  // namespace

TEST_CASE("exact top-k picks the k largest magnitudes, ties by lower index", "[sparsify]") {
  const std::vector<float> v = {0.1f, -5.0f, 3.0f, 0.0f, 3.0f, -0.2f, 4.0f};
  CHECK(select(Criterion::TopK, v, 3) == std::vector<uint32_t>{1, 2, 6});
  CHECK(select(Criterion::TopK, v, 4) == std::vector<uint32_t>{1, 2, 4, 6});
  // Zeros are never significant, even when k asks for more.
  CHECK(select(Criterion::TopK, v, 7) == std::vector<uint32_t>{0, 1, 2, 4, 5, 6});
  CHECK(select(Criterion::TopK, std::vector<float>(10, 0.0f), 3).empty());
}

TEST_CASE("sampled top-k agrees with exact top-k on known vectors", "[sparsify]") {
  const auto v = gaussian(200000, 1);
  for (uint32_t k : {200u, 2000u, 20000u}) {
    const auto exact = select(Criterion::TopK, v, k);
    const auto sampled = select(Criterion::SampledTopK, v, k);
    INFO("k = " << k << ", sampled chose " << sampled.size());
    CHECK(std::is_sorted(sampled.begin(), sampled.end()));
    CHECK(sampled.size() >= k * 7 / 10);
    CHECK(sampled.size() <= k * 13 / 10);
    // The sampled choice is a threshold cut, so it nests with the exact one: most of the exact
    // top-k are in it.
    std::vector<uint32_t> common;
    std::set_intersection(exact.begin(), exact.end(), sampled.begin(), sampled.end(),
                          std::back_inserter(common));
    CHECK(double(common.size()) >= 0.7 * double(std::min(exact.size(), sampled.size())));
    // Everything chosen is at least as large as anything left out.
    float min_in = INFINITY, max_out = 0;
    std::vector<char> in(v.size(), 0);
    for (auto i : sampled) in[i] = 1, min_in = std::min(min_in, std::fabs(v[i]));
    for (size_t i = 0; i < v.size(); ++i)
      if (!in[i]) max_out = std::max(max_out, std::fabs(v[i]));
    CHECK(min_in >= max_out);
  }
}

TEST_CASE("sampled top-k falls back to exact on a spiky vector", "[sparsify]") {
  // 50 spikes among zeros: a 1% sample likely misses them all; the estimate must not return nothing.
  std::vector<float> v(100000, 0.0f);
  for (uint32_t i = 0; i < 50; ++i) v[i * 1999 + 7] = float(i + 1);
  const auto s = select(Criterion::SampledTopK, v, 40);
  CHECK(s.size() >= 28);
  CHECK(s.size() <= 50);
}

TEST_CASE("threshold and random-k criteria", "[sparsify]") {
  const std::vector<float> v = {0.1f, -5.0f, 3.0f, 0.0f, 3.0f, -0.2f, 4.0f};
  CHECK(select(Criterion::Threshold, v, 0, 3.0) == std::vector<uint32_t>{1, 2, 4, 6});
  CHECK(select(Criterion::Threshold, v, 0, 100.0).empty());  // above every element: none, no hang
  const auto g = gaussian(10000, 2);
  const auto r = select(Criterion::RandomK, g, 100);
  CHECK(r.size() == 100);
  CHECK(std::adjacent_find(r.begin(), r.end(), std::greater_equal<>()) == r.end());
}

TEST_CASE("warm-up schedule ramps sparsity 75% -> 99.9%", "[sparsify]") {
  SparsifierConfig cfg;
  cfg.warmup_stage_steps = 10;
  DgcSparsifier s(1000, cfg);
  CHECK(s.density_at(0) == Approx(0.25));
  CHECK(s.density_at(9) == Approx(0.25));
  CHECK(s.density_at(10) == Approx(0.0625));
  CHECK(s.density_at(20) == Approx(0.015625));
  CHECK(s.density_at(30) == Approx(0.004));
  CHECK(s.density_at(40) == Approx(0.001));
  CHECK(s.density_at(1000000) == Approx(0.001));
  // The selection follows it: 250 entries at step 0 of a dense gradient.
  const auto g = gaussian(1000, 3);
  CHECK(s.step(g.data()).nnz() == 250);
  cfg.warmup_stage_steps = 0;
  CHECK(DgcSparsifier(1000, cfg).density_at(0) == Approx(0.001));
}

TEST_CASE("residual conservation: sent + residual == sum of gradients (no momentum)", "[sparsify]") {
  SparsifierConfig cfg;
  cfg.momentum = 0.0;
  cfg.density = 0.01;
  cfg.criterion = GENERATE(Criterion::TopK, Criterion::SampledTopK, Criterion::RandomK);
  DgcSparsifier s(5000, cfg);
  std::vector<double> in(5000, 0.0), sent(5000, 0.0);
  for (int step = 0; step < 30; ++step) {
    const auto g = gaussian(5000, 100 + step);
    for (size_t i = 0; i < g.size(); ++i) in[i] += g[i];
    const auto out = s.step(g.data());
    CHECK(out.well_formed());
    for (size_t j = 0; j < out.nnz(); ++j) sent[out.index[j]] += out.value[j];
  }
  for (size_t i = 0; i < in.size(); ++i) REQUIRE(sent[i] + s.residual()[i] == Approx(in[i]).margin(1e-4));
}

TEST_CASE("momentum correction matches dense momentum SGD at density 1", "[sparsify]") {
  // With everything selected each step, DGC sends exactly the momentum velocity u_t.
  SparsifierConfig cfg;
  cfg.momentum = 0.9;
  cfg.density = 1.0;
  cfg.criterion = Criterion::TopK;
  DgcSparsifier s(100, cfg);
  std::vector<float> u(100, 0.0f);
  for (int step = 0; step < 5; ++step) {
    const auto g = gaussian(100, 200 + step);
    const auto out = s.step(g.data());
    REQUIRE(out.nnz() == 100);
    for (size_t i = 0; i < 100; ++i) {
      // Masking clears u for sent entries, so with everything sent u restarts each step.
      u[i] = g[i];
      REQUIRE(out.value[i] == Approx(u[i]));
    }
  }
}

TEST_CASE("momentum factor masking clears u only where sent", "[sparsify]") {
  SparsifierConfig cfg;
  cfg.momentum = 0.5;
  cfg.density = 0.001;  // k = 1
  cfg.criterion = Criterion::TopK;
  DgcSparsifier s(1000, cfg);
  std::vector<float> g(1000, 1.0f);
  g[7] = 10.0f;
  const auto out = s.step(g.data());
  REQUIRE(out.index == std::vector<uint32_t>{7});
  CHECK(out.value[0] == 10.0f);
  CHECK(s.velocity()[7] == 0.0f);
  CHECK(s.residual()[7] == 0.0f);
  CHECK(s.velocity()[0] == 1.0f);
  CHECK(s.residual()[0] == 1.0f);
  s.step(g.data());  // u = 0.5*1 + 1, v = 1 + 1.5 on untouched entries
  CHECK(s.velocity()[0] == 1.5f);
  CHECK(s.residual()[0] == 2.5f);
}

TEST_CASE("local gradient clipping bounds each step's contribution", "[sparsify]") {
  SparsifierConfig cfg;
  cfg.momentum = 0.0;
  cfg.clip_norm = 1.0;
  cfg.density = 0.001;
  DgcSparsifier s(1000, cfg);
  std::vector<float> g(1000, 10.0f);  // norm 316
  s.step(g.data());
  double sq = 0;
  for (float v : s.residual()) sq += double(v) * v;
  CHECK(std::sqrt(sq) <= 1.0 + 1e-4);
}

TEST_CASE("sparsifier_rejects_nan_gradients_without_touching_state", "[sparsify][reject]") {
  SparsifierConfig cfg;
  DgcSparsifier s(100, cfg);
  auto g = gaussian(100, 9);
  s.step(g.data());
  const auto u = s.velocity(), v = s.residual();
  g[42] = std::numeric_limits<float>::quiet_NaN();
  CHECK_THROWS_AS(s.step(g.data()), std::invalid_argument);
  g[42] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(s.step(g.data()), std::invalid_argument);
  CHECK(s.velocity() == u);
  CHECK(s.residual() == v);
  CHECK(s.steps() == 1);
}

TEST_CASE("sparsifier_rejects_bad_configuration", "[sparsify][reject]") {
  SparsifierConfig cfg;
  cfg.density = 0.0;
  CHECK_THROWS_AS(DgcSparsifier(10, cfg), std::invalid_argument);
  cfg.density = 0.1;
  cfg.momentum = 1.0;
  CHECK_THROWS_AS(DgcSparsifier(10, cfg), std::invalid_argument);
  CHECK_FALSE(parse_criterion("median").has_value());
  CHECK(parse_criterion("sampled-topk") == Criterion::SampledTopK);
}
