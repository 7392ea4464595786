// The nodes as the operator sees them: each node's latest self-report (swarmtrain's metrics JSON on
// swarmlens.<model>.metrics: state, steps, frames, bytes up and down, the model version it runs),
// for the dashboard's node table and the per-node metrics.
//
// A report is hostile input, and these are the nodes' own claims: one too large, not JSON, not a
// node's, with a number out of range or a state that is not one of train_state_name()'s (or
// "diverged") is refused and counted; at most kMaxNodes nodes are kept (a new one beyond that is
// refused). A node is kept when it goes silent: the table shows since when.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>

namespace swarmlens {

struct NodeReport {
  std::string state;  // training, paused-load, outside-schedule, diverged
  uint64_t steps = 0, frames = 0, skipped_batches = 0;
  uint64_t bytes_up = 0, bytes_down = 0;  // what the node sent and received on its link
  uint64_t model_version = 0;
  uint64_t updates_delivered = 0, updates_refused = 0;
  std::optional<double> holdout_accuracy;
  double seen = 0;  // unix seconds of this report
};

class NodeBoard {
 public:
  static constexpr size_t kMaxNodes = 65536;
  static constexpr size_t kMaxReportBytes = 64 * 1024;

  enum class Take { Used, NotNode, Refused };
  // One payload of the metrics subject; `now` in unix seconds. Thread-safe.
  Take take(const uint8_t* data, size_t size, double now);
  std::map<uint32_t, NodeReport> nodes() const;
  uint64_t refused() const;

 private:
  mutable std::mutex lock_;
  std::map<uint32_t, NodeReport> nodes_;
  uint64_t refused_ = 0;
};

}  // namespace swarmlens
