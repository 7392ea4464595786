// NodeAccuracy: the nodes' held-out accuracy reports, as a broker without test data takes them.
#include <catch2/catch.hpp>

#include <string>

#include "node_accuracy.h"
#include "node_trainer.h"

using namespace swarmlens;

namespace {
NodeAccuracy::Take take(NodeAccuracy& n, const std::string& json, NodeAccuracy::Clock::time_point at) {
  return n.take(reinterpret_cast<const uint8_t*>(json.data()), json.size(), at);
}
}  // namespace

TEST_CASE("node accuracy: the mean of the nodes' latest reports, weighted by their held-out frames", "[node-accuracy]") {
  const auto t0 = NodeAccuracy::Clock::now();
  NodeAccuracy n(std::chrono::seconds(60));
  CHECK(n.summary(t0).nodes == 0);
  CHECK(n.summary(t0).accuracy == -1.0);
  using T = NodeAccuracy::Take;
  CHECK(take(n, R"({"source":"node","node":1,"holdout_accuracy":0.5,"holdout_samples":100})", t0) == T::Used);
  CHECK(take(n, R"({"source":"node","node":2,"holdout_accuracy":0.8,"holdout_samples":300})", t0) == T::Used);
  auto s = n.summary(t0);
  CHECK(s.nodes == 2);
  CHECK(s.samples == 400);
  CHECK(s.accuracy == Approx((0.5 * 100 + 0.8 * 300) / 400));
  // A node's newer report replaces its older one.
  CHECK(take(n, R"({"source":"node","node":1,"holdout_accuracy":0.9,"holdout_samples":300})", t0) == T::Used);
  CHECK(n.summary(t0).accuracy == Approx(0.85));
  // The broker's own metrics and a node that holds nothing out are not reports.
  CHECK(take(n, R"({"source":"broker","model_version":3})", t0) == T::NotHoldout);
  CHECK(take(n, R"({"source":"node","node":3,"steps":10})", t0) == T::NotHoldout);
  // A node silent for longer than max_age drops out.
  CHECK(take(n, R"({"source":"node","node":2,"holdout_accuracy":0.7,"holdout_samples":300})", t0 + std::chrono::seconds(50)) == T::Used);
  s = n.summary(t0 + std::chrono::seconds(90));
  CHECK(s.nodes == 1);
  CHECK(s.accuracy == Approx(0.7));
  CHECK(n.refused() == 0);
}

TEST_CASE("node accuracy: hostile reports are refused and counted, and never move the figure", "[node-accuracy][reject]") {
  const auto t0 = NodeAccuracy::Clock::now();
  NodeAccuracy n;
  using T = NodeAccuracy::Take;
  REQUIRE(take(n, R"({"source":"node","node":1,"holdout_accuracy":0.5,"holdout_samples":100})", t0) == T::Used);
  const std::string bad[] = {
      "not json",
      R"([1,2])",
      R"({"source":"node","node":2,"holdout_accuracy":1.5,"holdout_samples":100})",
      R"({"source":"node","node":2,"holdout_accuracy":-0.1,"holdout_samples":100})",
      R"({"source":"node","node":2,"holdout_accuracy":"high","holdout_samples":100})",
      R"({"source":"node","node":-2,"holdout_accuracy":0.9,"holdout_samples":100})",
      R"({"source":"node","node":2,"holdout_accuracy":0.9,"holdout_samples":0})",
      R"({"source":"node","node":2,"holdout_accuracy":0.9,"holdout_samples":1e12})",
      R"({"source":"node","node":2,"holdout_accuracy":0.9,"holdout_samples":100000000})",  // > the window
      R"({"source":"node","node":99999999999,"holdout_accuracy":0.9,"holdout_samples":100})",
      R"({"source":"node","holdout_accuracy":0.9,"holdout_samples":100})",
      std::string(NodeAccuracy::kMaxReportBytes + 1, ' '),
  };
  for (const auto& b : bad) {
    INFO(b.substr(0, 80));
    CHECK(take(n, b, t0) == T::Refused);
  }
  CHECK(n.refused() == std::size(bad));
  const auto s = n.summary(t0);
  CHECK(s.nodes == 1);
  CHECK(s.accuracy == Approx(0.5));
}

TEST_CASE("node accuracy: at most kMaxNodes nodes are kept", "[node-accuracy][reject]") {
  const auto t0 = NodeAccuracy::Clock::now();
  NodeAccuracy n;
  for (size_t i = 0; i < NodeAccuracy::kMaxNodes; ++i)
    REQUIRE(take(n, R"({"source":"node","node":)" + std::to_string(i) + R"(,"holdout_accuracy":0.5,"holdout_samples":10})", t0) ==
            NodeAccuracy::Take::Used);
  CHECK(take(n, R"({"source":"node","node":4000000000,"holdout_accuracy":1,"holdout_samples":10})", t0) == NodeAccuracy::Take::Refused);
  // A node already kept still reports.
  CHECK(take(n, R"({"source":"node","node":7,"holdout_accuracy":1,"holdout_samples":10})", t0) == NodeAccuracy::Take::Used);
  CHECK(n.summary(t0).nodes == NodeAccuracy::kMaxNodes);
}
