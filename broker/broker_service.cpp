#include "broker_service.h"

#include <chrono>
#include <random>
#include <fstream>

#include "camera_model.h"
#include "stream_journal.h"

namespace swarmlens {

BrokerService::BrokerService(BrokerConfig cfg, std::unique_ptr<NatsLink> link)
    : cfg_(std::move(cfg)), rate_(cfg_.rate), downlink_(cfg_.downlink), link_(std::move(link)) {
  if (!cfg_.class_names.empty() && cfg_.class_names.size() != size_t(cfg_.model.classes))
    throw std::invalid_argument(std::to_string(cfg_.class_names.size()) + " class names for " +
                                std::to_string(cfg_.model.classes) + " classes");
  auto model = Model::create(cfg_.model, cfg_.seed);
  layout_hash_ = model->layout_hash();
  dim_ = uint32_t(model->num_params());
  const std::vector<float> initial = model->params_copy();
  max_model_norm_ = cfg_.max_model_norm_factor * l2_norm(initial);
  if (!cfg_.signing_key_path.empty()) {
    if (std::ifstream(cfg_.signing_key_path).good()) {
      key_ = load_signing_key(cfg_.signing_key_path);
    } else {
      key_ = generate_signing_key();
      save_signing_key(cfg_.signing_key_path, *key_);
    }
    stats_.signing = true;
    stats_.public_key = public_key_hex(key_->public_key);
  }
  if (!link_) cfg_.retain = false;
  std::optional<Snapshot> kept;  // the model the nodes hold, read back from JetStream
  std::optional<Snapshot> resume = resume_source(kept);
  std::vector<float> params = resume ? std::move(resume->params) : initial;
  const uint64_t version = resume ? resume->version : 0;
  aggregator_ = std::make_unique<Aggregator>(cfg_.model_id, layout_hash_, std::move(params), cfg_.aggregation, version);
  if (resume) aggregator_->resume_sequences(resume->applied);
  stats_.version = version;
  if (kept && resume && kept->version == version && kept->chain_id) {
    // The nodes hold the kept model of this very version: continue its chain, so they go on with
    // deltas (a keyframe of it is kept again at the next publish). Otherwise the next publish starts
    // a new chain with a keyframe, and nodes move to it.
    downlink_.adopt(kept->params);
    chain_.id = kept->chain_id;
    chain_.offset = kept->chain_offset;
    published_ = std::make_shared<const Snapshot>(std::move(*kept));
    published_version_ = version;
  }
  if (cfg_.replicated_journal) {
    if (!link_) throw std::invalid_argument("a replicated journal needs a NATS link");
    if (!cfg_.retain)
      throw std::invalid_argument("a replicated journal keeps the server model in JetStream: it cannot go with --no-retain");
    link_->fence_retained_writes();
    journal_ = std::make_unique<StreamJournal>(*link_, cfg_.model_id, cfg_.stream_replicas);
    replay_journal();
  } else if (cfg_.journal && !cfg_.snapshot_path.empty()) {
    journal_ = std::make_unique<UpdateJournal>(cfg_.snapshot_path + ".journal");
    replay_journal();
  }
  if (!link_) return;
  if (cfg_.decode_threads)
    workers_ = std::make_unique<KeyedWorkers>(cfg_.decode_threads, size_t(cfg_.max_pending_bytes),
                                              [this](uint64_t node, std::vector<uint8_t>& payload) { on_update(uint32_t(node), payload); });
  link_->subscribe(update_subjects(cfg_.model_id),
                   [this](const std::string& subject, std::vector<uint8_t> payload) { on_message(subject, std::move(payload)); },
                   [this](const std::string&) {
                     std::lock_guard<std::mutex> g(lock_);
                     ++stats_.rejected["bad_chunks"];
                   },
                   cfg_.max_pending_bytes, max_update_bytes());
  link_->flush();
}

size_t BrokerService::max_update_bytes() const {
  return cfg_.max_update_bytes ? cfg_.max_update_bytes : 2 * size_t(dim_) * sizeof(float) + 4096;
}

std::optional<Snapshot> BrokerService::resume_source(std::optional<Snapshot>& kept_model) {
  // Resume from the newest of the snapshot file (the operator's own disk: a bad one is an error) and
  // the model kept in JetStream (the network's: a corrupt, unsigned, forged or exploding one is
  // refused, said, and the file or fresh weights used instead).
  std::optional<Snapshot> resume;
  auto consider = [&](Snapshot s, const char* from, const std::string& what) {
    if (s.layout_hash != layout_hash_ || s.params.size() != dim_)
      throw std::runtime_error(what + ": snapshot is for another model: it holds " + describe(s.model, s.description) +
                               ", this broker serves " + describe(cfg_.model.name, describe_model(cfg_.model, cfg_.class_names)));
    if (!resume || s.version > resume->version) {
      resume = std::move(s);
      stats_.resumed_from = from;
    }
  };
  if (!cfg_.snapshot_path.empty() && std::ifstream(cfg_.snapshot_path).good()) {
    Snapshot s = load_snapshot(cfg_.snapshot_path);
    ModelTrust file;
    file.max_norm = max_model_norm_;
    check_adoptable(s, file, cfg_.snapshot_path);
    consider(std::move(s), "snapshot file", cfg_.snapshot_path);
  }
  if (!cfg_.retain) return resume;
  link_->ensure_retention_stream(retention_stream(cfg_.model_id), "swarmlens." + cfg_.model_id + ".retained.>", -1,
                                 cfg_.stream_replicas);
  link_->ensure_retention_stream(chain_stream(cfg_.model_id), chain_subjects(cfg_.model_id), cfg_.chain_max_bytes,
                                 cfg_.stream_replicas);
  ModelTrust trust;
  trust.max_norm = max_model_norm_;
  if (key_) trust.key = key_->public_key;
  // With the replicated journal, the server model kept at the last publish and the journal since
  // hold everything; a published model kept after it (a broker that died between keeping the two)
  // lacks its server residual, so it only decides whether the chain goes on.
  bool checkpoint = false;
  if (cfg_.replicated_journal) {
    try {
      if (auto server = fetch_server_checkpoint(*link_, cfg_.model_id, trust)) {
        consider(std::move(*server), "JetStream checkpoint", retention_stream(cfg_.model_id));
        checkpoint = true;
      }
    } catch (const NatsError&) {
      throw;
    } catch (const std::runtime_error& e) {
      stats_.resume_refused = e.what();
    }
  }
  try {
    if (auto kept = fetch_retained_model(*link_, cfg_.model_id, trust)) {
      if (kept->layout_hash != layout_hash_ || kept->params.size() != dim_)
        throw std::runtime_error(retention_stream(cfg_.model_id) + ": retained model is for another model layout");
      kept_model = *kept;
      if (!checkpoint) consider(std::move(*kept), "JetStream", retention_stream(cfg_.model_id));
    }
  } catch (const NatsError&) {
    throw;  // JetStream unreachable: not a bad message, the operator must see it
  } catch (const std::exception& e) {
    stats_.resume_refused = e.what();
  }
  return resume;
}

void BrokerService::on_message(const std::string& subject, std::vector<uint8_t> payload) {
  // The node id is the subject's last token: swarmlens.<model>.update.<node>.
  std::optional<uint32_t> node;
  const std::string tail = subject.substr(subject.rfind('.') + 1);
  if (!tail.empty() && tail.size() <= 10 && tail.find_first_not_of("0123456789") == std::string::npos &&
      std::stoull(tail) <= UINT32_MAX)
    node = uint32_t(std::stoull(tail));
  if (!node) {
    std::lock_guard<std::mutex> g(lock_);
    ++received_;
    ++stats_.updates_in;
    ++stats_.rejected["bad_subject"];
    return;
  }
  if (!workers_) return on_update(*node, payload);
  workers_->push(*node, std::move(payload));  // refused only while stopping: not answered, sent again
}

void BrokerService::on_update(uint32_t node, const std::vector<uint8_t>& payload) {
  if (abandoned_) return;  // not merged, not answered: the node sends it again
  auto ack = take(payload, nullptr, node);
  if (!ack) return;
  try {
    const std::string text = encode_ack(*ack);
    link_->publish(ack_subject(cfg_.model_id, ack->node), signed_bytes(std::vector<uint8_t>(text.begin(), text.end()), kSignedAck));
    std::lock_guard<std::mutex> g(lock_);
    ++stats_.acks_out;
  } catch (const NatsError&) {  // link down: the node sends it again and hears "replayed"
  }
}

std::vector<uint8_t> BrokerService::signed_bytes(std::vector<uint8_t> bytes, const char* kind) const {
  if (key_) sign_payload(bytes, *key_, kind, cfg_.model_id);
  return bytes;
}

std::optional<PublicKey> BrokerService::public_key() const {
  if (!key_) return std::nullopt;
  return key_->public_key;
}

BrokerService::~BrokerService() {
  if (workers_) workers_->stop();  // what is queued is taken and answered; later messages are refused
  link_.reset();                   // no update callback after this
}

void BrokerService::replay_journal() {
  DecodeOptions opts;
  opts.layout_hash = layout_hash_;
  opts.dim = dim_;
  for (const JournalEntry& e : journal_->recovered()) {
    const DecodeResult d = decode_update(e.payload, opts);
    if (d.ok() && aggregator_->submit(d.value) == Verdict::Accepted)
      ++stats_.journal_replayed;
    else
      ++stats_.journal_skipped;  // in the snapshot already (replayed), or no longer mergeable
  }
  stats_.version = aggregator_->version();
}

std::string BrokerService::submit(const std::vector<uint8_t>& payload) {
  std::string reason;
  take(payload, &reason);
  return reason;
}

std::optional<UpdateAck> BrokerService::take(const std::vector<uint8_t>& payload, std::string* reason,
                                             std::optional<uint32_t> subject_node) {
  if (!cfg_.operator_stats) return take_checked(payload, reason, subject_node);
  const auto start = std::chrono::steady_clock::now();
  std::string why;
  std::optional<UpdateAck> ack = take_checked(payload, &why, subject_node);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::optional<uint32_t> node = ack ? std::optional<uint32_t>(ack->node) : subject_node;
  const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  std::lock_guard<std::mutex> g(lock_);
  stats_.merge_seconds.observe(seconds);
  if (node) {
    auto it = nodes_.find(*node);
    if (it == nodes_.end() && nodes_.size() < kMaxTrackedNodes) it = nodes_.emplace(*node, NodeTraffic{}).first;
    if (it == nodes_.end()) {
      ++stats_.nodes_untracked;
    } else {
      NodeTraffic& t = it->second;
      t.bytes_in += payload.size();
      t.last_update = now;
      if (ack && ack->verdict == "accepted") {
        ++t.accepted;
      } else {
        ++t.refused;
        t.last_refusal = ack ? ack->verdict : why.substr(0, why.find(':'));
      }
    }
  }
  if (reason) *reason = std::move(why);
  return ack;
}

std::map<uint32_t, NodeTraffic> BrokerService::node_traffic() const {
  std::lock_guard<std::mutex> g(lock_);
  return nodes_;
}

std::optional<UpdateAck> BrokerService::take_checked(const std::vector<uint8_t>& payload, std::string* reason,
                                                     std::optional<uint32_t> subject_node) {
  if (!journal_ || !journal_->remote()) return take_locked(payload, reason, subject_node, nullptr);
  // A stream journal's append is a round trip to JetStream: made outside the lock, after the checks
  // and before the merge, so that nothing is merged (and answered "accepted") that a broker taking
  // over would not find in the journal. Each node's updates come on one thread, in order, so the
  // checks still hold at the merge (but for too_stale, if the model moved on meanwhile).
  DecodedUpdate held;
  std::optional<UpdateAck> ack = take_locked(payload, reason, subject_node, &held);
  if (!ack || ack->verdict != "accepted") return ack;
  try {
    journal_->append({ack->node, ack->seq, payload});
  } catch (const std::exception& e) {
    std::lock_guard<std::mutex> g(lock_);
    journal_error(e);
    ++stats_.rejected["journal_unavailable"];
    if (reason) *reason = std::string("journal_unavailable: ") + e.what();
    ack->verdict = "journal_unavailable";  // not merged: the node sends it again
    return ack;
  }
  std::lock_guard<std::mutex> g(lock_);
  return merge_locked(held, ack->base_version, reason);
}

void BrokerService::journal_error(const std::exception& e) {
  ++stats_.journal_errors;
  stats_.journal_error = e.what();
}

UpdateAck BrokerService::merge_locked(const DecodedUpdate& u, uint64_t base_version, std::string* reason) {
  const UpdateHeader& hd = u.header;
  const uint64_t at = aggregator_->version();
  const Verdict v = aggregator_->submit(u);
  stats_.norm_median = aggregator_->norm_bound().median();
  stats_.clipped = aggregator_->clipped();
  stats_.version = aggregator_->version();
  UpdateAck ack{hd.node_id, hd.sequence, verdict_name(v), aggregator_->version(), base_version, 0.0};
  if (reason) *reason = v == Verdict::Accepted ? "" : verdict_name(v);
  if (v != Verdict::Accepted) {
    ++stats_.rejected[verdict_name(v)];
    return ack;
  }
  ++stats_.accepted;
  if (cfg_.operator_stats) stats_.staleness.observe(double(at > base_version ? at - base_version : 0));
  ack.weight = aggregator_->last_weight();
  return ack;
}

std::optional<UpdateAck> BrokerService::take_locked(const std::vector<uint8_t>& payload, std::string* reason,
                                                    std::optional<uint32_t> subject_node, DecodedUpdate* held) {
  auto say = [&](std::string r) {
    if (reason) *reason = std::move(r);
  };
  const auto start = std::chrono::steady_clock::now();
  struct Busy {  // adds the time spent here on every way out
    BrokerService* self;
    std::chrono::steady_clock::time_point start;
    ~Busy() { self->stats_.busy_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }
  };
  const size_t max_bytes = max_update_bytes();
  if (payload.size() > max_bytes) {
    std::lock_guard<std::mutex> g(lock_);
    const Busy busy{this, start};
    ++received_;
    ++stats_.updates_in;
    stats_.bytes_in += payload.size();
    ++stats_.rejected["oversized"];
    say("oversized: " + std::to_string(payload.size()) + " bytes, more than " + std::to_string(max_bytes));
    return std::nullopt;
  }
  DecodeOptions opts;
  opts.layout_hash = layout_hash_;
  opts.dim = dim_;
  DecodeResult d = decode_update(payload, opts);  // outside the lock: decoding is the heavy part
  std::lock_guard<std::mutex> g(lock_);
  const Busy busy{this, start};  // destroyed before the lock is released
  ++received_;
  ++stats_.updates_in;
  stats_.bytes_in += payload.size();
  if (!d.ok()) {
    ++stats_.rejected[decode_error_name(d.error)];
    say(decode_error_name(d.error) + std::string(": ") + d.detail);
    // A layout mismatch still has a readable sender: tell it, it will never be merged.
    if (d.error != DecodeError::LayoutMismatch) return std::nullopt;
    DecodeOptions header;
    header.header_only = true;
    const DecodeResult h = decode_update(payload, header);
    if (!h.ok()) return std::nullopt;
    return UpdateAck{h.value.header.node_id, h.value.header.sequence, "layout_mismatch", aggregator_->version(),
                     h.value.header.base_version, 0.0};
  }
  const UpdateHeader& hd = d.value.header;
  if (subject_node && *subject_node != hd.node_id) {  // a login sending as another node: no answer
    ++stats_.rejected["identity_mismatch"];
    say("identity_mismatch: node " + std::to_string(hd.node_id) + " on the subject of node " + std::to_string(*subject_node));
    return std::nullopt;
  }
  if (!rate_.allow(hd.node_id, payload.size())) {
    ++stats_.rejected["rate_limited"];
    say("rate_limited");
    return UpdateAck{hd.node_id, hd.sequence, "rate_limited", aggregator_->version(), hd.base_version, 0.0};
  }
  if (held) {  // checked, not merged: the caller journals it first
    const Verdict v = aggregator_->precheck(d.value);
    if (v != Verdict::Accepted) {
      ++stats_.rejected[verdict_name(v)];
      say(verdict_name(v));
      return UpdateAck{hd.node_id, hd.sequence, verdict_name(v), aggregator_->version(), hd.base_version, 0.0};
    }
    const uint64_t base = hd.base_version;
    *held = std::move(d.value);
    return UpdateAck{held->header.node_id, held->header.sequence, "accepted", aggregator_->version(), base, 0.0};
  }
  UpdateAck ack = merge_locked(d.value, hd.base_version, reason);
  if (ack.verdict == "accepted" && journal_) {
    try {
      journal_->append({hd.node_id, hd.sequence, payload});
    } catch (const std::exception& e) {
      journal_error(e);
    }
  }
  return ack;
}

bool BrokerService::publish_if_changed() {
  auto s = std::make_shared<Snapshot>();
  {
    std::lock_guard<std::mutex> g(lock_);
    if (aggregator_->version() == published_version_) return false;
    *s = snapshot_locked();
    const std::string why = check_model(s->params, max_model_norm_);
    if (!why.empty()) {  // never published: back to the last model that was (or the initial one)
      ++stats_.models_refused;
      stats_.model_refusal = "version " + std::to_string(s->version) + ": " + why;
      aggregator_->reset_params(published_ ? published_->params : Model::create(cfg_.model, cfg_.seed)->params_copy());
      return false;
    }
  }
  // Without a link nothing goes on the wire: the published model is the server's own.
  std::shared_ptr<const Snapshot> out = s;
  if (link_) out = chain_.id ? publish_delta(*s) : start_chain(*s);
  {  // out on the wire: from here on this is the model the next delta builds on, whatever fails
    std::lock_guard<std::mutex> g(lock_);
    published_version_ = s->version;
    published_ = out;
    if (link_) stats_.downlink_residual = downlink_.residual_norm(s->params);
  }
  if (!cfg_.snapshot_path.empty()) save_snapshot(cfg_.snapshot_path, *s);  // the server model, fp32
  if (cfg_.replicated_journal) {  // the server model where a standby finds it, then the journal trimmed to it
    try {
      link_->retain(retained_prefix(cfg_.model_id, "server"), signed_bytes(encode_snapshot(*s), kSignedModel));
      journal_->compact(s->applied);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> g(lock_);
      journal_error(e);
    }
  } else if (journal_) {  // the snapshot holds these now: the journal keeps only what came after
    std::lock_guard<std::mutex> g(lock_);
    try {
      journal_->compact(s->applied);
    } catch (const std::exception& e) {
      journal_error(e);
    }
  }
  return true;
}

std::shared_ptr<const Snapshot> BrokerService::start_chain(const Snapshot& server) {
  downlink_.reset(server.params);
  std::random_device rd;
  chain_ = Chain{};
  while (!chain_.id) chain_.id = (uint64_t(rd()) << 32) | rd();
  auto p = published_model(server);
  try {
    keep_keyframe(*p, true);
  } catch (...) {
    chain_.id = 0;  // not out: the next publish starts again
    throw;
  }
  return p;
}

std::shared_ptr<Snapshot> BrokerService::published_model(const Snapshot& server) const {
  auto p = std::make_shared<Snapshot>(server.model, server.layout_hash, server.version, downlink_.published(), server.applied);
  p->description = server.description;
  p->chain_id = chain_.id;
  p->chain_offset = chain_.offset;
  return p;
}

void BrokerService::keep_keyframe(const Snapshot& p, bool live) {
  const std::vector<uint8_t> bytes = encode_snapshot(p, true);
  const std::vector<uint8_t> sent = signed_bytes(bytes, kSignedModel);
  if (cfg_.retain) link_->retain(retained_prefix(cfg_.model_id, "full"), sent);
  if (live) link_->publish(model_subject(cfg_.model_id), sent);
  chain_.keyframe_version = p.version;
  chain_.keyframe_offset = p.chain_offset;
  chain_.keyframe_bytes = bytes.size();
  std::lock_guard<std::mutex> g(lock_);
  stats_.keyframes_kept += cfg_.retain ? 1 : 0;
  if (!live) return;
  ++stats_.models_out;
  ++stats_.snapshots_out;
  stats_.bytes_out += sent.size();
}

std::shared_ptr<const Snapshot> BrokerService::publish_delta(const Snapshot& server) {
  std::shared_ptr<const Snapshot> base;
  {
    std::lock_guard<std::mutex> g(lock_);
    base = published_;
  }
  ModelDelta d;
  d.layout_hash = layout_hash_;
  d.chain_id = chain_.id;
  d.base_version = base->version;
  d.version = server.version;
  d.dim = dim_;
  d.offset = chain_.offset;
  d.keyframe_version = chain_.keyframe_version;
  d.keyframe_offset = chain_.keyframe_offset;
  d.keyframe_bytes = chain_.keyframe_bytes;
  downlink_.next(server.params, d.index, d.step);
  d.applied = applied_changes(base->applied, server.applied);
  const std::vector<uint8_t> bytes = encode_delta(d);
  const std::vector<uint8_t> sent = signed_bytes(bytes, kSignedModel);
  try {
    if (cfg_.retain) {
      link_->retain(chain_prefix(cfg_.model_id, chain_.id, d.base_version), sent);
      link_->retain(retained_prefix(cfg_.model_id, "delta"), sent);
    }
    link_->publish(model_subject(cfg_.model_id), sent);
  } catch (...) {
    downlink_.revert(d.index, d.step);  // not out: the next publish carries it again
    throw;
  }
  chain_.offset += bytes.size();
  auto p = published_model(server);
  {
    std::lock_guard<std::mutex> g(lock_);
    ++stats_.models_out;
    ++stats_.deltas_out;
    stats_.bytes_out += sent.size();
  }
  // A keyframe whenever the chain since the last one costs more than a keyframe: a node that starts
  // then reads at most about two keyframes' worth. Without JetStream (no chain to catch up from) it
  // goes on the model subject instead, so a node that missed a delta recovers there.
  const bool keyframe_due = !chain_.keyframe_bytes || chain_.offset - chain_.keyframe_offset > chain_.keyframe_bytes;
  if (keyframe_due) {
    try {
      keep_keyframe(*p, !cfg_.retain);
    } catch (const std::exception&) {  // the delta is out; the keyframe is still due at the next publish
    }
  }
  return p;
}

std::shared_ptr<const Snapshot> BrokerService::published() const {
  std::lock_guard<std::mutex> g(lock_);
  return published_;
}

BrokerStats BrokerService::stats() const {
  std::lock_guard<std::mutex> g(lock_);
  return stats_;
}

Snapshot BrokerService::snapshot() const {
  std::lock_guard<std::mutex> g(lock_);
  return snapshot_locked();
}

Snapshot BrokerService::snapshot_locked() const {
  Snapshot s{cfg_.model.name, layout_hash_, aggregator_->version(), aggregator_->params(), aggregator_->applied_sequences()};
  s.description = describe_model(cfg_.model, cfg_.class_names);
  return s;
}

}  // namespace swarmlens
