// `swarmlens camera --snapshot-interval S`: the overlay, as a small JPEG (320 pixels wide), sent at
// most once every S seconds on swarmlens.<model>.snapshot.<node> for the broker's dashboard. Opt-in
// per camera, so slow links are not burdened; a JPEG over OverlaySnapshots::kMaxBytes is not sent.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "nats_link.h"

namespace swarmlens {

class SnapshotSender {
 public:
  static constexpr int kWidth = 320;
  // "" when `text` is a valid --snapshot-interval: 0 (off) or 1 to 86400 seconds.
  static std::string interval_error(const std::string& text);
  // The pipeline branch after the overlay's tee, ending in the appsink this sender reads.
  static std::string branch();

  SnapshotSender(const NatsOptions& nats, std::string model_id, double interval_s);
  // Connects to the appsink "snapshots" of the pipeline (a GstElement*). Throws if it is not there.
  void attach(void* pipeline);
  void set_node(uint32_t node) { node_ = int64_t(node); }  // snapshots wait for it (swarmtrain's stats)
  uint64_t sent() const { return sent_; }
  uint64_t skipped_large() const { return too_large_; }

 private:
  void on_jpeg(const uint8_t* data, size_t size);  // the streaming thread

  std::unique_ptr<NatsLink> link_;
  const std::string model_id_;
  const std::chrono::duration<double> interval_;
  std::atomic<int64_t> node_{-1};
  std::atomic<uint64_t> sent_{0}, too_large_{0};
  std::mutex lock_;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace swarmlens
