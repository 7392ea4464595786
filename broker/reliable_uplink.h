// A node's acknowledged uplink: at most one update on the wire, kept until the broker answers for
// it (update_ack.h), sent again (the same bytes, the same sequence number) when no answer comes in
// time or the link came back after a cut. The broker takes a sequence only once, so a resend whose
// first copy got through is answered "replayed" and nothing is merged twice; an update is never
// given up silently: it is delivered, refused with a reason, or still in flight (stats say which).
//
// While one update is in flight, offer() refuses the next, so the trainer merges it into its pending
// update (the trigger's memory): a slow or cut-off node sends fewer, fuller updates, and keeps
// training meanwhile. When the link comes back after a cut, the uplink first pulls the current
// model (a node far behind trains on it from then on), then sends its in-flight update again,
// which the broker weights by how stale it is.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "node_link.h"

namespace swarmlens {

struct UplinkOptions {
  // Wait this long for the answer once the server has the update, then send it again.
  int ack_timeout_ms = 10000;
  // After each answered update, pull the newest model (a node whose NodeLink does not follow the
  // model subject, so a slow downlink carries one model per exchange).
  bool pull_after_ack = false;
  // Called on the uplink's thread (no lock held) with the broker's final answer to each update
  // (delivered or refused; not rate_limited or journal_unavailable, which are sent again): the owner says a refusal at once
  // (a bus warning, a log line, the overlay). May be empty.
  std::function<void(const UpdateAck&)> on_answer;
};

struct UplinkStats {
  uint64_t offered = 0;       // updates taken for sending
  uint64_t held_back = 0;     // offers refused because one was in flight (merged back by the trainer)
  uint64_t link_refused = 0;  // offers refused because the link was down
  uint64_t resent = 0;        // sends of an update already sent once
  uint64_t delivered = 0;     // answered "accepted" or "replayed"
  uint64_t duplicates = 0;    // of those, "replayed": an earlier copy had got through
  uint64_t refused = 0;       // answered with a rejection
  uint64_t rate_limited = 0;  // answered "rate_limited": sent again a second later, not refused
  uint64_t unavailable = 0;   // answered "journal_unavailable": likewise
  std::map<std::string, uint64_t> refused_by;
  uint64_t catchups = 0;      // models pulled because the link came back
  uint64_t catchup_model_version = 0;  // the node's model version after the last catch-up
  uint64_t delivered_samples = 0;      // training samples behind the delivered updates
  bool in_flight = false;     // an update sent and not answered yet
  uint64_t in_flight_seq = 0, in_flight_samples = 0;
  // The node's model version when its last resend after a reconnect went out.
  uint64_t resend_model_version = 0;
  UpdateAck last_ack;
};

class ReliableUplink {
 public:
  // Subscribes to node_id's answers (throws NatsError) and starts the uplink's thread.
  ReliableUplink(NodeLink& link, uint32_t node_id, UplinkOptions opts = {});
  // Stops the thread. An update still in flight is not merged anywhere: stats() tells.
  ~ReliableUplink();
  ReliableUplink(const ReliableUplink&) = delete;
  ReliableUplink& operator=(const ReliableUplink&) = delete;

  // The trainer's uplink: true when the update is taken (it is this uplink's to deliver from then
  // on), false when one is in flight, the link is down, or it is back and the current model not
  // pulled yet (the caller keeps it). Throws
  // std::invalid_argument for bytes that are not this node's update. Thread: any.
  bool offer(const std::vector<uint8_t>& msg);
  // Waits until no update is in flight; false on timeout.
  bool wait_idle(std::chrono::milliseconds timeout);
  // At stop: waits up to `timeout` for the update on the wire to be answered. Nothing when it was
  // (or none was in flight), else which update got no answer, for the warning the owner gives.
  std::optional<std::string> unanswered_after(std::chrono::milliseconds timeout);
  UplinkStats stats() const;

 private:
  void run();
  void on_ack(const UpdateAck& a);

  NodeLink& link_;
  const uint32_t node_id_;
  const UplinkOptions opts_;
  mutable std::mutex mu_;  // everything below
  std::condition_variable cv_;
  bool quit_ = false;
  std::vector<uint8_t> in_flight_;
  bool answered_ = false;
  uint64_t reconnects_seen_ = 0;  // the link's reconnect count the last catch-up answered
  UplinkStats stats_;
  std::thread thread_;  // last: started after everything it uses
};

}  // namespace swarmlens
