#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "busy_load.h"
#include "idle_policy.h"
#include "node_trainer.h"

using namespace swarmlens;

TEST_CASE("schedules: daily windows, across midnight, refused when malformed", "[idle]") {
  const Schedule night = Schedule::parse("22:00-06:00");
  CHECK(night.contains(23 * 60));
  CHECK(night.contains(0));
  CHECK(night.contains(5 * 60 + 59));
  CHECK_FALSE(night.contains(6 * 60));
  CHECK_FALSE(night.contains(12 * 60));
  const Schedule two = Schedule::parse("01:30-02:00, 12:00-13:00");
  CHECK(two.contains(90));
  CHECK(two.contains(12 * 60 + 30));
  CHECK_FALSE(two.contains(2 * 60));
  CHECK_THROWS_WITH(Schedule::parse("22-06"), Catch::Contains("HH:MM-HH:MM"));
  CHECK_THROWS_WITH(Schedule::parse("25:00-01:00"), Catch::Contains("25:00-01:00"));
  CHECK_THROWS(Schedule::parse(""));
  IdlePolicyConfig unscheduled;
  unscheduled.mode = IdleMode::Schedule;  // and no schedule given
  CHECK_THROWS_AS(IdleGate(unscheduled), std::invalid_argument);
}

TEST_CASE("the /proc parsers read CPU and process times, and reject junk", "[idle]") {
  const CpuTimes t = parse_proc_stat("cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 1 2 3 4 5 6 7 8\n");
  CHECK(t.total == 980u);
  CHECK(t.busy == 160u);  // not idle (800) nor iowait (20)
  CHECK(parse_self_stat("1234 (my (odd) name) S 1 2 3 4 5 6 7 8 9 10 70 30 0 0 20 0") == 100u);
  CHECK_THROWS(parse_proc_stat("intr 1 2 3"));
  CHECK_THROWS(parse_self_stat("garbage"));
  // Other processes' share: 500 of 1000 ticks busy, 200 of them ours -> 0.3.
  CHECK(other_load({100, 1000, 50}, {600, 2000, 250}) == Approx(0.3));
  CHECK(other_load({100, 1000, 50}, {100, 1000, 50}) == 0.0);
}

TEST_CASE("the load gate pauses above the ceiling and resumes below it with hysteresis", "[idle]") {
  IdlePolicyConfig cfg;
  cfg.mode = IdleMode::Load;
  cfg.load_ceiling = 0.5;
  IdleGate g(cfg);
  CHECK(g.decide(0.2, 0) == TrainState::Training);
  CHECK(g.decide(0.6, 0) == TrainState::PausedLoad);
  CHECK(g.decide(0.45, 0) == TrainState::PausedLoad);  // above 0.5 x 0.8: still paused
  CHECK(g.decide(0.35, 0) == TrainState::Training);
  cfg.mode = IdleMode::LoadAndSchedule;
  cfg.schedule = "22:00-06:00";
  IdleGate both(cfg);
  CHECK(both.decide(0.0, 12 * 60) == TrainState::OutsideSchedule);
  CHECK(both.decide(0.9, 23 * 60) == TrainState::PausedLoad);
  CHECK(both.decide(0.0, 23 * 60) == TrainState::Training);
  IdleGate always(IdlePolicyConfig{});
  CHECK(always.check() == TrainState::Training);
}

TEST_CASE("real load from other processes is seen in /proc/stat", "[idle][load]") {
  const CpuTimes a = read_cpu_times();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const double quiet = other_load(a, read_cpu_times());
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  BusyLoad busy(cores);
  REQUIRE(busy.running() == cores);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const CpuTimes b = read_cpu_times();
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  const double loaded = other_load(b, read_cpu_times());
  INFO("other load quiet " << quiet << ", with " << cores << " busy processes " << loaded);
  CHECK(loaded > 0.7);
}

TEST_CASE("a node trainer pauses while other processes load the CPU, keeps its work, and resumes", "[idle][node]") {
  NodeTrainerConfig cfg;
  cfg.model_id = "idle-test";
  cfg.batch_size = 8;
  cfg.idle.mode = IdleMode::Load;
  cfg.idle.load_ceiling = 0.6;
  cfg.idle.sample_every = std::chrono::milliseconds(200);
  cfg.compression.trigger.max_age_steps = 1000;  // keep the update pending across the pause
  NodeTrainer t(cfg);
  t.start();
  std::vector<float> frame(28 * 28, 0.1f);
  auto feed_until = [&](auto done, int seconds) {
    const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    while (!done() && std::chrono::steady_clock::now() < end) {
      for (int i = 0; i < 8; ++i) t.push(frame.data(), i % 10);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return done();
  };
  REQUIRE(feed_until([&] { return t.stats().steps >= 5; }, 30));
  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  BusyLoad busy(cores);
  REQUIRE(feed_until([&] { return t.stats().state == TrainState::PausedLoad; }, 10));
  const TrainStats paused = t.stats();
  INFO("other load when paused " << paused.other_load);
  CHECK(paused.other_load > 0.6);
  CHECK(paused.pauses == 1u);
  feed_until([] { return false; }, 1);  // a second of frames while paused: none trained
  CHECK(t.stats().steps == paused.steps);
  CHECK(t.stats().samples == paused.samples);
  CHECK(t.stats().messages == paused.messages);  // the pending update stays pending
  busy.stop();
  REQUIRE(feed_until([&] { return t.stats().state == TrainState::Training && t.stats().steps > paused.steps + 3; }, 30));
  CHECK(t.error().empty());
  t.stop();
}
