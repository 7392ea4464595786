// Tests: calls broker.publish_if_changed() every 50 ms on a thread of its own, as the daemon's loop
// does, until stop() or destruction (so a failed REQUIRE never leaves a joinable thread behind).
#pragma once

#include <atomic>
#include <chrono>
#include <thread>

#include "broker_service.h"

namespace swarmlens::testing {

class PublishTimer {
 public:
  explicit PublishTimer(BrokerService& broker)
      : thread_([this, &broker] {
          while (!done_) {
            broker.publish_if_changed();
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
          }
        }) {}
  ~PublishTimer() { stop(); }
  void stop() {
    done_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace swarmlens::testing
