// How a model travels from the aggregator to the nodes over NATS, shared by both ends:
//   swarmlens.<id>.update.<node>  node -> aggregator: compressed updates (wire format SWLU)
//   swarmlens.<id>.model    aggregator -> nodes: the model stream (downlink.h): a keyframe (SWLM,
//                           fp16) when a chain starts, then one delta (SWLD) per publish, each from
//                           the model before it
//   swarmlens.<id>.metrics  JSON: the aggregator's test accuracy and counters, the nodes' progress
//   swarmlens.<id>.retained.{full,delta}.<k>
//                           JetStream (stream SWARMLENS_<ID>, last message per subject): the latest
//                           keyframe and the latest delta (the head of the chain), chunked
//   swarmlens.<id>.chain.<chain>.<base version>.<k>
//                           JetStream (stream SWARMLENS_<ID>_CHAIN, bounded): every delta of the
//                           chain by the version it applies to, so a node that has version v reads
//                           v's delta, then the next one's, up to the head
// ModelReceiver follows the model subject on the node side; catch_up() brings a node that missed
// deltas (or has none) to the head through the kept chain or the keyframe, whichever costs fewer
// bytes.
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
// A node's overlay snapshot (a small JPEG, opt-in: swarmlens camera --snapshot-interval), for the dashboard.
inline std::string snapshot_subject(const std::string& model_id, uint32_t node) {
  return "swarmlens." + model_id + ".snapshot." + std::to_string(node);
}
inline std::string snapshot_subjects(const std::string& model_id) { return "swarmlens." + model_id + ".snapshot.*"; }
inline std::string retained_prefix(const std::string& model_id, const std::string& kind) {
  return "swarmlens." + model_id + ".retained." + kind;
}
// The JetStream stream name: SWARMLENS_ and the model id in capitals, other characters as '_'.
std::string retention_stream(const std::string& model_id);
// The chain of deltas: its stream, and the subject prefix of the delta that applies to base_version.
inline std::string chain_stream(const std::string& model_id) { return retention_stream(model_id) + "_CHAIN"; }
// The replicated update journal (stream_journal.h) and the brokers' lease bucket (daemon.h).
inline std::string journal_stream(const std::string& model_id) { return retention_stream(model_id) + "_JOURNAL"; }
inline std::string journal_subject(const std::string& model_id) { return "swarmlens." + model_id + ".journal"; }
inline std::string lease_bucket(const std::string& model_id) { return retention_stream(model_id) + "_LEASE"; }
inline std::string chain_subjects(const std::string& model_id) { return "swarmlens." + model_id + ".chain.>"; }
std::string chain_prefix(const std::string& model_id, uint64_t chain_id, uint64_t base_version);

// What catch_up read to get where it got.
struct CatchUp {
  std::optional<Snapshot> model;  // the newest model reached; nullopt if nothing newer than `have`
  uint64_t bytes = 0;             // payload bytes read from JetStream
  uint64_t deltas = 0;            // chain deltas read
  bool keyframe = false;          // whether it read the keyframe
};

// Brings `have` (null: a node with no model yet) up to `head` (the newest delta this side has seen,
// null: the latest one kept) through the deltas kept in the chain stream, or through the keyframe
// and the deltas after it, whichever the head's chain position says costs fewer bytes; when a
// chain delta is missing (the stream's bound dropped it, a new chain began) it takes the keyframe
// path. Every payload is checked under trust (signature when trust.key is set) and the model reached
// must pass check_adoptable. Throws NatsError (JetStream unreachable) or std::runtime_error
// (corrupt, unsigned, badly signed, failing its check).
CatchUp catch_up(NatsLink& link, const std::string& model_id, const ModelTrust& trust, const Snapshot* have,
                 const ModelDelta* head = nullptr);
// The latest model kept in JetStream (catch_up from nothing), or nullopt if none was kept.
std::optional<Snapshot> fetch_retained_model(NatsLink& link, const std::string& model_id, const ModelTrust& trust = {});
// The server model (fp32, with the server residual) a broker with a replicated journal keeps at each
// publish, for a standby to resume from; nullopt when none is kept. Throws as fetch_retained_model.
std::optional<Snapshot> fetch_server_checkpoint(NatsLink& link, const std::string& model_id, const ModelTrust& trust = {});

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
  // nowhere new (an older version, or a delta this side cannot apply: then gap() holds it until
  // taken). Throws std::runtime_error for a payload that is not a model, is corrupt, is not signed
  // by the trusted key (when one is set) or leads to a model that fails its check (non-finite,
  // exploding). Thread-safe.
  std::shared_ptr<const Snapshot> receive(const uint8_t* data, size_t size, const std::string& subject);
  // The newest delta that did not apply to the latest model (deltas were missed, or a new chain
  // began): the head to catch_up() to. Taken once. Thread-safe.
  std::optional<ModelDelta> take_gap();
  // Starts from (or moves on to) a model obtained another way (catch_up). Thread-safe.
  void seed(std::shared_ptr<const Snapshot> model);
  std::shared_ptr<const Snapshot> latest() const;

 private:
  std::string model_id_;
  ModelTrust trust_;
  mutable std::mutex lock_;
  std::shared_ptr<const Snapshot> latest_;  // the newest model (the next delta applies to it)
  std::optional<ModelDelta> gap_;
};

}  // namespace swarmlens
