// Collects what a NatsLink subscription delivers, for tests: payloads in arrival order, errors the
// test's error handler adds, and a wait for a count.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "nats_link.h"

namespace swarmlens::testing {

struct Inbox {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::vector<uint8_t>> payloads;
  std::vector<std::string> errors;

  NatsLink::MessageHandler handler() {
    return [this](const std::string&, std::vector<uint8_t> p) {
      std::lock_guard<std::mutex> g(m);
      payloads.push_back(std::move(p));
      cv.notify_all();
    };
  }
  bool wait_for(size_t n, int ms = 5000) {
    std::unique_lock<std::mutex> l(m);
    return cv.wait_for(l, std::chrono::milliseconds(ms), [&] { return payloads.size() >= n; });
  }
};

}  // namespace swarmlens::testing
