// How a model travels from the aggregator to the nodes over NATS, shared by both ends:
//   swarmlens.<id>.update.<node>  node -> aggregator: compressed updates (wire format SWLU)
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
#include "signing.h"
#include "snapshot.h"

namespace swarmlens {

// Each node publishes on a subject of its own, so that the server's permissions can bind a node's
// login to its id; the broker subscribes to update_subjects() and refuses a payload whose node id is
// not its subject's.
inline std::string update_subject(const std::string& model_id, uint32_t node) {
  return "swarmlens." + model_id + ".update." + std::to_string(node);
}
inline std::string update_subjects(const std::string& model_id) { return "swarmlens." + model_id + ".update.*"; }
inline std::string model_subject(const std::string& model_id) { return "swarmlens." + model_id + ".model"; }
inline std::string metrics_subject(const std::string& model_id) { return "swarmlens." + model_id + ".metrics"; }
inline std::string retained_prefix(const std::string& model_id, const std::string& kind) {
  return "swarmlens." + model_id + ".retained." + kind;
}
// The JetStream stream name: SWARMLENS_ and the model id in capitals, other characters as '_'.
std::string retention_stream(const std::string& model_id);

// The latest model kept in JetStream (full snapshot plus its cumulative delta when it matches), or
// nullopt if none was kept. Throws NatsError (JetStream unreachable) or std::runtime_error (corrupt,
// unsigned or badly signed under trust.key, or failing check_model).
std::optional<Snapshot> fetch_retained_model(NatsLink& link, const std::string& model_id, const ModelTrust& trust = {});

// The payload of a model message once its signature is checked against trust.key (a trailer is
// stripped either way). Throws std::runtime_error starting with `what` when it is refused.
std::vector<uint8_t> verified_model_bytes(const uint8_t* data, size_t size, const ModelTrust& trust,
                                          const std::string& model_id, const std::string& what);
// Throws std::runtime_error starting with `what` when the model fails check_model (robust.h).
void check_adoptable(const Snapshot& s, const ModelTrust& trust, const std::string& what);

class ModelReceiver {
 public:
  ModelReceiver(std::string model_id = {}, ModelTrust trust = {}) : model_id_(std::move(model_id)), trust_(trust) {}
  // Takes one payload of the model subject; returns the model it leads to, or null when it leads
  // nowhere new (an older version, a delta whose base this side never had). Throws
  // std::runtime_error for a payload that is not a model, is corrupt, is not signed by the trusted key
  // (when one is set) or leads to a model that fails its check (non-finite, exploding). Thread-safe.
  std::shared_ptr<const Snapshot> receive(const uint8_t* data, size_t size, const std::string& subject);
  // Starts from a model obtained another way (fetch_retained_model). Thread-safe.
  void seed(std::shared_ptr<const Snapshot> model);
  std::shared_ptr<const Snapshot> latest() const;
  uint64_t skipped_deltas() const;

 private:
  std::string model_id_;
  ModelTrust trust_;
  mutable std::mutex lock_;
  std::shared_ptr<const Snapshot> base_;    // the last full snapshot (deltas apply to it)
  std::shared_ptr<const Snapshot> latest_;  // the newest model
  uint64_t skipped_ = 0;
};

}  // namespace swarmlens
