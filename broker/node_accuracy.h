// The nodes' own held-out accuracy, as a broker without test data publishes it: each node
// (swarmtrain holdout-every=N) reports, in its metrics JSON on swarmlens.<model>.metrics, its
// accuracy on the last frames it held out; the broker keeps each node's latest report and publishes
// their mean, weighted by the frames behind each. These are the nodes' own claims, not checked: a
// figure the operator can trust comes from the broker's own --test-data.
//
// A report is hostile input: one that is too large, not JSON, not a node's, or has a figure out of
// range is ignored and counted; at most kMaxNodes nodes are kept, and a node silent for `max_age`
// drops out of the mean.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>

namespace swarmlens {

class NodeAccuracy {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr size_t kMaxNodes = 65536;
  static constexpr size_t kMaxReportBytes = 64 * 1024;
  static constexpr std::chrono::seconds kDefaultMaxAge{60};

  explicit NodeAccuracy(Clock::duration max_age = kDefaultMaxAge) : max_age_(max_age) {}

  enum class Take { Used, NotHoldout, Refused };
  // One payload of the metrics subject. NotHoldout: not a node's holdout report (the broker's own
  // metrics, a node without holdout-every): nothing to do. Refused: malformed or out of range, or a
  // new node when kMaxNodes are kept (counted in refused()). Thread-safe.
  Take take(const uint8_t* data, size_t size, Clock::time_point now = Clock::now());

  struct Summary {
    double accuracy = -1.0;  // weighted by each node's held-out frames; -1 when no node reports
    size_t nodes = 0;
    uint64_t samples = 0;
  };
  // Over the nodes heard from within max_age (older ones are forgotten). Thread-safe.
  Summary summary(Clock::time_point now = Clock::now());
  uint64_t refused() const;

 private:
  struct Report {
    double accuracy;
    uint64_t samples;
    Clock::time_point at;
  };
  const Clock::duration max_age_;
  mutable std::mutex lock_;
  std::map<uint32_t, Report> nodes_;
  uint64_t refused_ = 0;
};

}  // namespace swarmlens
