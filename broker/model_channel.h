// How a model travels from the aggregator to the nodes over NATS, shared by both ends:
//   swarmlens.<id>.update   node -> aggregator: compressed updates (wire format SWLU)
//   swarmlens.<id>.model    aggregator -> nodes: a full snapshot (SWLM) now and then, and in between
//                           cumulative deltas (SWLD) from the last full snapshot
//   swarmlens.<id>.metrics  JSON: the aggregator's test accuracy and counters, the nodes' progress
//   swarmlens.<id>.retained.{full,delta}.<k>
//                           JetStream (stream SWARMLENS_<ID>, last message per subject): the latest
//                           full snapshot and the latest cumulative delta, chunked, for late joiners
//                           and for the aggregator after a restart.
// ModelReceiver follows the model subject on the node side: it keeps the last full snapshot and
// turns each delta into the model it leads to.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "nats_link.h"
#include "snapshot.h"

namespace swarmlens {

inline std::string update_subject(const std::string& model_id) { return "swarmlens." + model_id + ".update"; }
inline std::string model_subject(const std::string& model_id) { return "swarmlens." + model_id + ".model"; }
inline std::string metrics_subject(const std::string& model_id) { return "swarmlens." + model_id + ".metrics"; }
inline std::string retained_prefix(const std::string& model_id, const std::string& kind) {
  return "swarmlens." + model_id + ".retained." + kind;
}
// The JetStream stream name: SWARMLENS_ and the model id in capitals, other characters as '_'.
std::string retention_stream(const std::string& model_id);

// The latest model kept in JetStream (full snapshot plus its cumulative delta when it matches), or
// nullopt if none was kept. Throws NatsError (JetStream unreachable) or std::runtime_error (corrupt).
std::optional<Snapshot> fetch_retained_model(NatsLink& link, const std::string& model_id);

class ModelReceiver {
 public:
  // Takes one payload of the model subject; returns the model it leads to, or null when it leads
  // nowhere new (an older version, a delta whose base this side never had). Throws
  // std::runtime_error for a payload that is not a model or is corrupt. Thread-safe.
  std::shared_ptr<const Snapshot> receive(const uint8_t* data, size_t size, const std::string& subject);
  // Starts from a model obtained another way (fetch_retained_model). Thread-safe.
  void seed(std::shared_ptr<const Snapshot> model);
  std::shared_ptr<const Snapshot> latest() const;
  uint64_t skipped_deltas() const;

 private:
  mutable std::mutex lock_;
  std::shared_ptr<const Snapshot> base_;    // the last full snapshot (deltas apply to it)
  std::shared_ptr<const Snapshot> latest_;  // the newest model
  uint64_t skipped_ = 0;
};

}  // namespace swarmlens
