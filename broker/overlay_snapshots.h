// The overlay snapshots nodes offer (swarmlens camera --snapshot-interval): a small JPEG of what the
// camera's overlay shows, at most one a second per node, on swarmlens.<model>.snapshot.<node>. The
// broker keeps each node's latest for the dashboard.
//
// A snapshot is hostile input: one larger than kMaxBytes, not a JPEG, or sooner than kMinInterval
// after the node's last is refused and counted. At most kMaxNodes nodes' snapshots are kept: a new
// node's replaces the one heard from longest ago, so memory stays under kMaxNodes x kMaxBytes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace swarmlens {

class OverlaySnapshots {
 public:
  static constexpr size_t kMaxBytes = 64 * 1024;
  static constexpr size_t kMaxNodes = 256;
  static constexpr double kMinInterval = 1.0;  // seconds between one node's snapshots

  // The node id of a snapshot subject ("swarmlens.<model>.snapshot.<node>"), or nullopt.
  static std::optional<uint32_t> node_of(const std::string& subject);
  // The node id of the dashboard's path "<node>.jpg", or nullopt.
  static std::optional<uint32_t> node_of_file(const std::string& name);

  // now: unix seconds. True when kept. Thread-safe.
  bool take(uint32_t node, std::vector<uint8_t> jpeg, double now);
  std::shared_ptr<const std::vector<uint8_t>> get(uint32_t node) const;
  std::map<uint32_t, double> times() const;  // each kept node's last snapshot (unix seconds)
  uint64_t refused() const;

 private:
  struct Kept {
    std::shared_ptr<const std::vector<uint8_t>> jpeg;
    double at;
  };
  mutable std::mutex lock_;
  std::map<uint32_t, Kept> nodes_;
  uint64_t refused_ = 0;
};

}  // namespace swarmlens
