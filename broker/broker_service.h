// The aggregator served over NATS: takes updates on swarmlens.<model>.update, validates and merges
// them (Aggregator), and publishes the model on swarmlens.<model>.model whenever its version moved
// (at most once per call of publish_if_changed, which the owner calls on a timer) as the model
// stream (downlink.h, model_channel.h): a keyframe when a chain starts, then one compressed delta
// per publish, with the server residual keeping what a delta leaves out. Each delta is kept in
// JetStream (by the version it applies to) before it goes out, a keyframe whenever the chain since
// the last one has grown past one, and the server model in the snapshot file, so a restarted broker
// resumes from the newest model it published and a late node starts from the keyframe and the chain. With a
// snapshot file, every accepted update is also journalled (update_journal.h) before its node is
// told, so a broker killed between two publishes merges them again when it restarts. Every update
// whose sender can be read is answered on swarmlens.<model>.ack.<node> (update_ack.h).
// The same class runs in the swarmlens-broker daemon, the demo and tests.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "aggregator.h"
#include "downlink.h"
#include "histogram.h"
#include "keyed_workers.h"
#include "model.h"
#include "model_channel.h"
#include "node_trainer.h"
#include "nats_link.h"
#include "robust.h"
#include "signing.h"
#include "snapshot.h"
#include "update_ack.h"
#include "update_journal.h"

namespace swarmlens {

struct BrokerConfig {
  std::string model_id = NodeTrainerConfig::kDefaultModelId;
  ModelSpec model;
  std::vector<std::string> class_names;  // none, or one per class: in every snapshot's description
  uint64_t seed = NodeTrainerConfig::kDefaultSeed;  // initial weights, as the nodes' seed
  AggregatorConfig aggregation;
  std::string snapshot_path;      // resume from it at start; rewritten (atomically) on each publish
  bool journal = true;            // with snapshot_path: journal accepted updates in <snapshot>.journal
  // Journal accepted updates in a JetStream stream (stream_journal.h, stream_replicas copies) and keep
  // the server model in JetStream at each publish, instead of the files: a broker on another machine
  // (a standby, daemon.h) resumes with every accepted update. Needs the link and JetStream.
  bool replicated_journal = false;
  bool retain = true;             // keep the published model in JetStream (the server needs -js)
  int stream_replicas = 1;        // copies of those streams in a NATS cluster (3: a server may die)
  DownlinkConfig downlink;        // what one published delta may carry (density)
  // Bound on the chain of deltas kept in JetStream (the oldest go first; a node that needs one of
  // them reads the keyframe instead).
  int64_t chain_max_bytes = 64ll << 20;
  int64_t max_pending_bytes = 256ll << 20;  // updates waiting to be taken before NATS drops them
  // Threads that decode and merge updates (keyed_workers.h: each node's updates on one of them, in
  // order); 0 = on the NATS delivery thread. Their queues hold at most max_pending_bytes as well.
  static constexpr unsigned kDefaultDecodeThreads = 2;
  unsigned decode_threads = kDefaultDecodeThreads;
  // Keep what the operator's view shows: each node's traffic (node_traffic()) and the staleness and
  // merge-time histograms. The daemon sets it when /metrics or the dashboard is on.
  bool operator_stats = false;
  // Updates larger than this are rejected ("oversized") before decoding; 0 = twice a dense fp32
  // update of the model plus 4 KiB (no honest encoding comes near).
  size_t max_update_bytes = 0;
  RateLimitConfig rate;  // per node id (robust.h)
  // The model is checked before every publish: every parameter finite and its L2 norm at most this
  // many times the initial model's (0 = finiteness only). A model that fails goes back to the last
  // one published, and the refusal is counted.
  double max_model_norm_factor = ModelTrust::kDefaultNormFactor;
  // Ed25519 secret key file (signing.h): every model and ack goes out signed. Created, with its .pub
  // beside it, when the file does not exist. "" = unsigned (the receivers trust models blindly).
  std::string signing_key_path;
};

struct BrokerStats {
  uint64_t updates_in = 0, bytes_in = 0, accepted = 0;
  std::map<std::string, uint64_t> rejected;  // by reason (decode error or aggregator verdict)
  uint64_t models_out = 0, bytes_out = 0;  // on the model subject: keyframes and deltas
  uint64_t snapshots_out = 0, deltas_out = 0;  // snapshots_out: keyframes on the model subject (chain starts)
  uint64_t keyframes_kept = 0;     // keyframes written to JetStream
  double downlink_residual = 0.0;  // L2 norm of the server model minus the published one
  uint64_t version = 0;
  double busy_seconds = 0;        // time spent taking updates (decode, validate, merge)
  std::string resumed_from;       // "snapshot file", "JetStream checkpoint" (the server model), "JetStream" (the published one) or "" (fresh)
  uint64_t journal_replayed = 0;  // journalled updates merged again at start (not in the snapshot)
  uint64_t journal_skipped = 0;   // journalled updates the snapshot already held
  uint64_t journal_errors = 0;    // appends that failed (disk full, JetStream down): merged, but not crash-safe
  std::string journal_error;      // the last failure's message
  uint64_t acks_out = 0;
  uint64_t models_refused = 0;     // failed the check before publish: rolled back to the last good one
  std::string model_refusal;       // the last one's reason
  std::string resume_refused;      // a resume source refused at start (forged, corrupt), and why
  double norm_median = 0.0;        // median L2 norm of recent accepted updates (the adaptive bound's base)
  uint64_t clipped = 0;            // accepted updates scaled down to the norm bound
  bool signing = false;            // models and acks go out signed
  std::string public_key;          // hex, when signing
  // Accepted updates: how many versions the model had moved on since the one each was computed on.
  Histogram staleness{{0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}};
  // Every update taken: seconds from its arrival to its verdict (decode, checks, journal, merge).
  Histogram merge_seconds{{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5}};
  uint64_t nodes_untracked = 0;    // updates from nodes beyond kMaxTrackedNodes: counted above, not per node
};

// What the broker saw of one node's updates (the dashboard's node table, per-node metrics).
struct NodeTraffic {
  uint64_t accepted = 0, refused = 0, bytes_in = 0;
  std::string last_refusal;  // the verdict or decode error of the last refused one
  double last_update = 0;    // unix seconds of the last update taken
};

class BrokerService {
 public:
  // Builds the initial model (or resumes the snapshot) and subscribes. Throws on a bad snapshot.
  // Owns the link: it is closed first on destruction, so no callback outlives the service.
  // Without a link (swarmaggregate with no nats-url) updates come only through submit(), nothing
  // is retained, and publish_if_changed() only marks the model published (and writes the file).
  BrokerService(BrokerConfig cfg, std::unique_ptr<NatsLink> link);
  ~BrokerService();

  // Publishes the model if its version changed since the last publish: retained first, then on the
  // model subject, then the snapshot file. Throws NatsError when the link cannot take it (the
  // next call tries again). Thread: the owner's.
  bool publish_if_changed();
  // The model as last published (null before the first publish). Thread: any.
  std::shared_ptr<const Snapshot> published() const;
  // Takes one encoded update, as from the update subject: "" when accepted, else the reason it was
  // rejected (counted in stats). Thread: any.
  std::string submit(const std::vector<uint8_t>& payload);
  // The same, with the answer the node gets (nullopt when its sender cannot be read). subject_node:
  // the node id of the subject it came on (enforced by the server's permissions): a payload that
  // claims another is refused ("identity_mismatch").
  std::optional<UpdateAck> take(const std::vector<uint8_t>& payload, std::string* reason = nullptr,
                                std::optional<uint32_t> subject_node = std::nullopt);
  // Takes no more updates from the link and answers none (those queued included): for a broker that
  // lost its lease, whose nodes must send them again to the one that serves now. Thread: any.
  void abandon() { abandoned_ = true; }
  // The broker's public key when it signs (for the nodes' model-key).
  std::optional<PublicKey> public_key() const;
  BrokerStats stats() const;
  // Per node, for the nodes heard from (at most kMaxTrackedNodes). Thread: any.
  static constexpr size_t kMaxTrackedNodes = 65536;
  std::map<uint32_t, NodeTraffic> node_traffic() const;
  uint64_t updates_received() const { return received_.load(); }  // lock-free, for pacing
  Snapshot snapshot() const;

 private:
  Snapshot snapshot_locked() const;                     // caller holds lock_
  void replay_journal();                                // constructor: merges what the journal holds
  // Constructor: the newest valid model to resume; kept_model gets the model kept in JetStream.
  std::optional<Snapshot> resume_source(std::optional<Snapshot>& kept_model);
  void on_message(const std::string& subject, std::vector<uint8_t> payload);  // NATS thread
  void on_update(uint32_t node, const std::vector<uint8_t>& payload);  // a decode thread (or the NATS one)
  // take() but a stream journal's append. With `held`: an update that passes every check is not
  // merged but moved there, and its answer says "accepted" provisionally.
  // take() but the per-node and latency accounting.
  std::optional<UpdateAck> take_checked(const std::vector<uint8_t>& payload, std::string* reason,
                                        std::optional<uint32_t> subject_node);
  std::optional<UpdateAck> take_locked(const std::vector<uint8_t>& payload, std::string* reason,
                                       std::optional<uint32_t> subject_node, DecodedUpdate* held);
  UpdateAck merge_locked(const DecodedUpdate& u, uint64_t base_version, std::string* reason);  // caller holds lock_
  void journal_error(const std::exception& e);  // counted and kept for the stats; caller holds lock_
  std::vector<uint8_t> signed_bytes(std::vector<uint8_t> bytes, const char* kind) const;
  size_t max_update_bytes() const;

  BrokerConfig cfg_;
  uint64_t layout_hash_ = 0;
  uint32_t dim_ = 0;
  double max_model_norm_ = 0;             // 0 = finiteness only
  std::optional<SigningKey> key_;
  RateLimit rate_;                        // under lock_
  std::atomic<uint64_t> received_{0};
  std::atomic<bool> abandoned_{false};
  mutable std::mutex lock_;  // protects aggregator_ and stats_; taken by the NATS callback and the owner
  std::unique_ptr<Aggregator> aggregator_;
  std::unique_ptr<Journal> journal_;  // a file's under lock_; a stream's outside it (its own lock)
  BrokerStats stats_;
  std::map<uint32_t, NodeTraffic> nodes_;  // under lock_
  uint64_t published_version_ = UINT64_MAX;
  // Owner's thread only: the model stream (downlink.h). published_ is what the nodes hold (the
  // server model without link).
  struct Chain {
    uint64_t id = 0;  // 0: none yet (the next publish starts one with a keyframe)
    uint64_t offset = 0, keyframe_version = 0, keyframe_offset = 0, keyframe_bytes = 0;
  };
  // publish_if_changed: a new chain (its keyframe kept and sent), or the next delta (kept and sent,
  // with a keyframe kept when one is due); each returns the model the nodes now hold.
  std::shared_ptr<const Snapshot> start_chain(const Snapshot& server);
  std::shared_ptr<const Snapshot> publish_delta(const Snapshot& server);
  void keep_keyframe(const Snapshot& published, bool live);
  // What the nodes hold now: the downlink's published parameters with the server model's version,
  // applied sequences and description, at the chain's current position.
  std::shared_ptr<Snapshot> published_model(const Snapshot& server) const;
  DownlinkEncoder downlink_;
  Chain chain_;
  std::shared_ptr<const Snapshot> published_;  // under lock_
  std::unique_ptr<KeyedWorkers> workers_;  // stopped (what they hold handled) before the link closes
  std::unique_ptr<NatsLink> link_;  // last member: destroyed (closed) first
};

}  // namespace swarmlens
