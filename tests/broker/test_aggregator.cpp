#include <catch2/catch.hpp>

#include <cmath>
#include <limits>

#include "aggregator.h"

using namespace swarmlens;

namespace {

DecodedUpdate update(std::vector<uint32_t> idx, std::vector<float> val, uint64_t base = 0,
                     uint32_t node = 1, uint64_t seq = 1, uint32_t dim = 8) {
  DecodedUpdate u;
  u.header.model_id = "m";
  u.header.layout_hash = 77;
  u.header.base_version = base;
  u.header.node_id = node;
  u.header.sequence = seq;
  u.update.dim = dim;
  u.update.index = std::move(idx);
  u.update.value = std::move(val);
  return u;
}

}  // namespace

TEST_CASE("aggregator applies a sparse update with the server learning rate", "[aggregator]") {
  AggregatorConfig cfg;
  cfg.server_lr = 0.5;
  Aggregator a("m", 77, std::vector<float>(8, 1.0f), cfg);
  CHECK(a.submit(update({1, 5}, {2.0f, -4.0f})) == Verdict::Accepted);
  CHECK(a.version() == 1);
  CHECK(a.params() == std::vector<float>{1, 0, 1, 1, 1, 3, 1, 1});
}

TEST_CASE("aggregator buffers K updates and averages them (FedBuff)", "[aggregator]") {
  AggregatorConfig cfg;
  cfg.buffer_size = 2;
  Aggregator a("m", 77, std::vector<float>(8, 0.0f), cfg);
  a.submit(update({0}, {2.0f}, 0, 1, 1));
  CHECK(a.version() == 0);
  CHECK(a.params()[0] == 0.0f);
  a.submit(update({0, 1}, {4.0f, 2.0f}, 0, 2, 1));
  CHECK(a.version() == 1);
  CHECK(a.params()[0] == -3.0f);
  CHECK(a.params()[1] == -1.0f);
  a.submit(update({2}, {2.0f}, 1, 1, 2));
  CHECK(a.flush());  // partial buffer on demand
  CHECK(a.params()[2] == -2.0f);
  CHECK_FALSE(a.flush());
}

TEST_CASE("aggregator with server momentum matches momentum SGD", "[aggregator]") {
  AggregatorConfig cfg;
  cfg.server_lr = 0.1;
  cfg.server_momentum = 0.9;
  Aggregator a("m", 77, std::vector<float>(8, 0.0f), cfg);
  a.submit(update({3}, {1.0f}, 0, 1, 1));
  a.submit(update({3}, {1.0f}, 1, 1, 2));
  CHECK(a.params()[3] == Approx(-(0.1 + 0.1 * 1.9)));
}

TEST_CASE("aggregator weights stale updates down as 1/(1+sqrt(tau))", "[aggregator]") {
  AggregatorConfig cfg;
  cfg.max_staleness = 10;
  Aggregator a("m", 77, std::vector<float>(8, 0.0f), cfg);
  for (uint64_t s = 1; s <= 4; ++s) a.submit(update({7}, {0.0001f}, a.version(), 9, s));
  REQUIRE(a.version() == 4);
  const float before = a.params()[0];
  a.submit(update({0}, {1.0f}, 0, 1, 1));  // tau = 4: weight 1/3
  CHECK(a.last_weight() == Approx(1.0 / 3.0));
  CHECK(a.params()[0] - before == Approx(-1.0 / 3.0));
  cfg.staleness_grace = 4;
  CHECK(Aggregator("m", 77, std::vector<float>(8), cfg).staleness_weight(4) == 1.0);
}

TEST_CASE("aggregator clips each update's norm", "[aggregator]") {
  AggregatorConfig cfg;
  cfg.norm.clip_norm = 1.0;
  Aggregator a("m", 77, std::vector<float>(8, 0.0f), cfg);
  a.submit(update({0, 1}, {30.0f, 40.0f}));
  CHECK(std::hypot(a.params()[0], a.params()[1]) == Approx(1.0));
}

TEST_CASE("aggregator_rejects_wrong_layout_nan_stale_future_and_replayed", "[aggregator][reject]") {
  AggregatorConfig cfg;
  cfg.max_staleness = 2;
  Aggregator a("m", 77, std::vector<float>(8, 0.0f), cfg);
  auto wrong_hash = update({0}, {1.0f});
  wrong_hash.header.layout_hash = 78;
  CHECK(a.submit(wrong_hash) == Verdict::LayoutMismatch);
  auto wrong_model = update({0}, {1.0f});
  wrong_model.header.model_id = "other";
  CHECK(a.submit(wrong_model) == Verdict::LayoutMismatch);
  CHECK(a.submit(update({0}, {1.0f}, 0, 1, 1, 9)) == Verdict::LayoutMismatch);
  CHECK(a.submit(update({0}, {std::numeric_limits<float>::quiet_NaN()})) == Verdict::NonFinite);
  CHECK(a.submit(update({0}, {1.0f}, 5)) == Verdict::FromTheFuture);
  auto unsorted = update({3, 1}, {1.0f, 1.0f});
  CHECK(a.submit(unsorted) == Verdict::LayoutMismatch);
  CHECK(a.params() == std::vector<float>(8, 0.0f));  // nothing rejected touched the model
  CHECK(a.version() == 0);

  CHECK(a.submit(update({0}, {1.0f}, 0, 1, 5)) == Verdict::Accepted);
  CHECK(a.submit(update({0}, {1.0f}, 1, 1, 5)) == Verdict::Replayed);
  CHECK(a.submit(update({0}, {1.0f}, 1, 1, 4)) == Verdict::Replayed);
  a.submit(update({0}, {1.0f}, 1, 2, 1));
  a.submit(update({0}, {1.0f}, 2, 2, 2));
  CHECK(a.version() == 3);
  CHECK(a.submit(update({0}, {1.0f}, 0, 3, 1)) == Verdict::TooStale);  // tau 3 > 2
  CHECK(a.count(Verdict::LayoutMismatch) == 4);
  CHECK(a.count(Verdict::Replayed) == 2);
  CHECK(a.count(Verdict::TooStale) == 1);
  CHECK(a.count(Verdict::Accepted) == 3);
  for (float v : a.params()) CHECK(std::isfinite(v));
}

TEST_CASE("the fleet rule averages small fleets and buffers large ones at the nodes' rate", "[aggregator][fleet]") {
  const FleetAggregation small = fleet_aggregation(0.05, 4, 2);
  CHECK(small.buffer_size == 1);
  CHECK(small.server_lr == Approx(0.0125));
  CHECK(small.staleness_grace == 8);
  const FleetAggregation at64 = fleet_aggregation(0.05, 64, 2);
  CHECK(at64.buffer_size == 1);
  CHECK(at64.server_lr == Approx(0.05));
  CHECK(at64.staleness_grace == 1);
  const FleetAggregation large = fleet_aggregation(0.05, 1024, 2);
  CHECK(large.buffer_size == 16);
  CHECK(large.server_lr == Approx(0.05));
  CHECK(large.staleness_grace == 1);
  CHECK_THROWS_AS(fleet_aggregation(0.05, 0, 2), std::invalid_argument);
}
