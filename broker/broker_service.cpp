#include "broker_service.h"

#include <chrono>
#include <fstream>

namespace swarmlens {

BrokerService::BrokerService(BrokerConfig cfg, std::unique_ptr<NatsLink> link)
    : cfg_(std::move(cfg)), link_(std::move(link)) {
  auto model = Model::create(cfg_.model, cfg_.seed);
  layout_hash_ = model->layout_hash();
  dim_ = uint32_t(model->num_params());
  // Resume from the newest of the snapshot file and the model kept in JetStream.
  std::optional<Snapshot> resume;
  auto consider = [&](Snapshot s, const char* from, const std::string& what) {
    if (s.layout_hash != layout_hash_ || s.params.size() != dim_)
      throw std::runtime_error(what + ": snapshot is for another model layout");
    if (!resume || s.version > resume->version) {
      resume = std::move(s);
      stats_.resumed_from = from;
    }
  };
  if (!cfg_.snapshot_path.empty() && std::ifstream(cfg_.snapshot_path).good())
    consider(load_snapshot(cfg_.snapshot_path), "snapshot file", cfg_.snapshot_path);
  if (!link_) cfg_.retain = false;
  if (cfg_.retain) {
    link_->ensure_retention_stream(retention_stream(cfg_.model_id), "swarmlens." + cfg_.model_id + ".retained.>");
    if (auto kept = fetch_retained_model(*link_, cfg_.model_id))
      consider(std::move(*kept), "JetStream", retention_stream(cfg_.model_id));
  }
  std::vector<float> params = resume ? std::move(resume->params) : model->params_copy();
  const uint64_t version = resume ? resume->version : 0;
  aggregator_ = std::make_unique<Aggregator>(cfg_.model_id, layout_hash_, std::move(params), cfg_.aggregation, version);
  if (resume) aggregator_->resume_sequences(resume->applied);
  stats_.version = version;
  if (cfg_.journal && !cfg_.snapshot_path.empty()) {
    journal_ = std::make_unique<UpdateJournal>(cfg_.snapshot_path + ".journal");
    replay_journal();
  }
  if (!link_) return;
  link_->subscribe(update_subject(cfg_.model_id),
                  [this](const std::string&, std::vector<uint8_t> payload) {
                    auto ack = take(payload);
                    if (!ack) return;
                    try {
                      const std::string text = encode_ack(*ack);
                      link_->publish(ack_subject(cfg_.model_id, ack->node), std::vector<uint8_t>(text.begin(), text.end()));
                      std::lock_guard<std::mutex> g(lock_);
                      ++stats_.acks_out;
                    } catch (const NatsError&) {  // link down: the node sends it again and hears "replayed"
                    }
                  },
                  [this](const std::string&) {
                    std::lock_guard<std::mutex> g(lock_);
                    ++stats_.rejected["bad_chunks"];
                  },
                  cfg_.max_pending_bytes);
  link_->flush();
}

BrokerService::~BrokerService() { link_.reset(); }  // no update callback after this

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

std::optional<UpdateAck> BrokerService::take(const std::vector<uint8_t>& payload, std::string* reason) {
  auto say = [&](std::string r) {
    if (reason) *reason = std::move(r);
  };
  const auto start = std::chrono::steady_clock::now();
  struct Busy {  // adds the time spent here on every way out
    BrokerService* self;
    std::chrono::steady_clock::time_point start;
    ~Busy() { self->stats_.busy_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }
  };
  const size_t max_bytes = cfg_.max_update_bytes ? cfg_.max_update_bytes : 2 * size_t(dim_) * sizeof(float) + 4096;
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
  const DecodeResult d = decode_update(payload, opts);  // outside the lock: decoding is the heavy part
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
  const Verdict v = aggregator_->submit(d.value);
  stats_.version = aggregator_->version();
  UpdateAck ack{hd.node_id, hd.sequence, verdict_name(v), aggregator_->version(), hd.base_version, 0.0};
  if (v == Verdict::Accepted) {
    ++stats_.accepted;
    ack.weight = aggregator_->last_weight();
    if (journal_) {
      try {
        journal_->append({hd.node_id, hd.sequence, payload});
      } catch (const std::exception& e) {
        ++stats_.journal_errors;
        stats_.journal_error = e.what();
      }
    }
    say("");
    return ack;
  }
  ++stats_.rejected[verdict_name(v)];
  say(verdict_name(v));
  return ack;
}

bool BrokerService::publish_if_changed() {
  auto s = std::make_shared<Snapshot>();
  {
    std::lock_guard<std::mutex> g(lock_);
    if (aggregator_->version() == published_version_) return false;
    *s = snapshot_locked();
  }
  std::vector<uint8_t> bytes;  // stays empty without a link: nothing goes on the wire
  bool full = !base_ || since_full_ + 1 >= cfg_.full_every;
  if (!link_) {
    full = true;
  } else if (!full) {
    bytes = encode_delta(make_delta(*base_, *s));
    full = bytes.size() * 2 > s->params.size() * sizeof(float);  // a delta that big: a snapshot is worth it
  }
  if (full && link_) bytes = encode_snapshot(*s);
  if (cfg_.retain) link_->retain(retained_prefix(cfg_.model_id, full ? "full" : "delta"), bytes);
  if (link_) link_->publish(model_subject(cfg_.model_id), bytes);
  if (!cfg_.snapshot_path.empty()) save_snapshot(cfg_.snapshot_path, *s);
  if (journal_) {  // the snapshot holds these now: the journal keeps only what came after
    std::lock_guard<std::mutex> g(lock_);
    try {
      journal_->compact(s->applied);
    } catch (const std::exception& e) {
      ++stats_.journal_errors;
      stats_.journal_error = e.what();
    }
  }
  if (full) {
    base_ = s;
    since_full_ = 0;
  } else {
    ++since_full_;
  }
  std::lock_guard<std::mutex> g(lock_);
  published_version_ = s->version;
  published_ = s;
  if (link_) {
    ++stats_.models_out;
    ++(full ? stats_.snapshots_out : stats_.deltas_out);
    stats_.bytes_out += bytes.size();
  }
  return true;
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
  return {cfg_.model.name, layout_hash_, aggregator_->version(), aggregator_->params(), aggregator_->applied_sequences()};
}

}  // namespace swarmlens
