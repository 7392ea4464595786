// KeyedWorkers: each key's messages handled in order on one thread, keys side by side, the queue
// bound holding a pusher back, and stop() handling what was queued.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "keyed_workers.h"

using namespace swarmlens;

TEST_CASE("keyed workers keep each key's order and spread keys over threads", "[workers]") {
  std::mutex m;
  std::map<uint64_t, std::vector<uint8_t>> seen;  // key -> payload[0] in the order handled
  std::set<std::thread::id> threads;
  {
    KeyedWorkers w(4, 1 << 20, [&](uint64_t key, std::vector<uint8_t>& p) {
      std::lock_guard<std::mutex> g(m);
      seen[key].push_back(p[0]);
      threads.insert(std::this_thread::get_id());
    });
    REQUIRE(w.threads() == 4);
    for (int i = 0; i < 200; ++i)
      for (uint64_t key = 0; key < 16; ++key) REQUIRE(w.push(key, {uint8_t(i), 0, 0}));
    w.stop();  // handles all that was queued
    CHECK_FALSE(w.push(1, {1}));
    CHECK(w.refused() == 1);
  }
  REQUIRE(seen.size() == 16);
  for (const auto& [key, order] : seen) {
    REQUIRE(order.size() == 200);
    for (int i = 0; i < 200; ++i) CHECK(order[size_t(i)] == uint8_t(i));
  }
  CHECK(threads.size() == 4);
}

TEST_CASE("a full queue holds the pusher back until the worker catches up", "[workers]") {
  std::atomic<bool> release{false};
  std::atomic<int> handled{0}, pushed{0};
  KeyedWorkers w(1, 1000, [&](uint64_t, std::vector<uint8_t>&) {
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    ++handled;
  });
  std::thread pusher([&] {
    for (int i = 0; i < 20; ++i) {
      w.push(0, std::vector<uint8_t>(400));
      ++pushed;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  // One message taken by the blocked worker, two more queued (800 of 1,000 bytes): the fourth waits.
  CHECK(pushed.load() == 3);
  release = true;
  pusher.join();
  w.stop();
  CHECK(handled.load() == 20);
}

TEST_CASE("a message larger than the bound still goes through an empty queue", "[workers]") {
  std::atomic<int> handled{0};
  KeyedWorkers w(2, 100, [&](uint64_t, std::vector<uint8_t>& p) { handled += int(p.size()); });
  REQUIRE(w.push(0, std::vector<uint8_t>(5000)));
  w.stop();
  CHECK(handled.load() == 5000);
  CHECK_THROWS_AS(KeyedWorkers(0, 100, [](uint64_t, std::vector<uint8_t>&) {}), std::invalid_argument);
}
