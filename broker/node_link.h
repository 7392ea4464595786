// A camera node's side of the federation: its NATS link, the model coming down and the updates going
// up. Used by swarmtrain (updates up, models into its trainer), swarmclassify (models only) and the
// demo. Without GStreamer, so it is tested as plain C++.
//
// At construction it fetches the model kept in JetStream, so a node that joins late starts from the
// latest published model, not from its seed; then it follows the model subject (one delta per
// publish) and, when it finds it missed some, reads them (or the keyframe) from JetStream. send_update() refuses while the link is down, so the trainer merges the update into its
// pending one instead of queueing it (nothing accepted is lost, memory stays bounded).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "model_channel.h"
#include "signing.h"
#include "nats_link.h"
#include "update_ack.h"

namespace swarmlens {

struct NodeLinkStats {
  uint64_t updates_sent = 0, bytes_sent = 0;
  uint64_t updates_refused = 0;  // link down or publish failed: merged back by the trainer
  uint64_t models_in = 0, bytes_in = 0;  // bytes_in: the model subject and what catch-ups read
  uint64_t keyframes_in = 0;     // keyframes read from JetStream (at start, or when the chain cost more)
  uint64_t catchup_deltas = 0;   // missed deltas read from the chain kept in JetStream
  uint64_t model_version = 0;    // newest model received (0 = none)
  uint64_t reconnects = 0;       // times the link came back after a disconnect
  uint64_t acks_in = 0;
  // Refused: models that are forged (bad or missing signature under the model key), corrupt or fail
  // their check (non-finite, exploding); acks that are not signed by the key or do not parse.
  uint64_t models_refused = 0, acks_refused = 0;
  bool connected = false;
};

class NodeLink {
 public:
  using ModelHandler = std::function<void(std::shared_ptr<const Snapshot>)>;
  using EventHandler = std::function<void(const std::string&)>;  // link state, bad messages, warnings
  using AckHandler = std::function<void(const UpdateAck&)>;

  // Connects (throws NatsError), fetches the retained model and subscribes. on_model gets every newer
  // model, on nats.c's thread (and once on the caller's thread for the retained model).
  // With follow = false it does not subscribe to the model subject: the node pulls the model with
  // pull_model() when its link has room (a slow link is not flooded with every published model).
  // Models and acks are checked against trust (signing.h); without a key, on_event hears once that
  // models are trusted blindly.
  NodeLink(const NatsOptions& opts, std::string model_id, ModelHandler on_model, EventHandler on_event = {},
           bool follow = true, ModelTrust trust = {});
  ~NodeLink();
  NodeLink(const NodeLink&) = delete;
  NodeLink& operator=(const NodeLink&) = delete;

  // Publishes an update on its node's update subject (the node id read from its header); false (and nothing sent) while the link is down or
  // when the publish fails. Thread: any (the trainer's).
  bool send_update(const std::vector<uint8_t>& msg);
  // Publishes a JSON text on the metrics subject; failures are reported to on_event only.
  void publish_metrics(const std::string& json);
  // Subscribes to the broker's answers to this node's updates (update_ack.h); the handler runs on
  // nats.c's thread. Call once. Throws NatsError.
  void on_acks(uint32_t node_id, AckHandler handler);
  void flush(int timeout_ms = 5000);
  // Fetches the model kept in JetStream; on_model gets it if it is newer than the latest. Returns
  // whether it was. Errors (no JetStream, link down, timeout) go to on_event. Thread: any.
  bool pull_model();

  NodeLinkStats stats() const;
  std::shared_ptr<const Snapshot> latest() const { return receiver_.latest(); }

 private:
  void on_model_message(const std::string& subject, const std::vector<uint8_t>& payload);
  // Reads what this node misses up to head (null: the latest kept) and adopts it; false if nothing
  // newer came (errors go to on_event).
  bool catch_up_to(const ModelDelta* head);
  void adopt(const std::shared_ptr<const Snapshot>& model);
  void on_ack_message(const std::string& subject, const std::vector<uint8_t>& payload);
  void refused_model(const std::string& why);
  void report(const std::string& what);

  std::string model_id_;
  ModelTrust trust_;
  ModelHandler on_model_;
  EventHandler on_event_;
  AckHandler on_ack_;
  ModelReceiver receiver_;
  mutable std::mutex lock_;  // protects stats_
  NodeLinkStats stats_;
  std::string last_refusal_;  // the last refused model's reason, said once
  std::atomic<bool> catchup_failing_{false};  // JetStream unreadable: said once until it works again
  std::unique_ptr<NatsLink> link_;  // last: closed first, so no callback runs into a dead member
};

}  // namespace swarmlens
