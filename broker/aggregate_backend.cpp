#include "aggregate_backend.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>

#include "codec.h"
#include "reliable_uplink.h"

namespace swarmlens {

namespace {

constexpr std::chrono::milliseconds kStopWait{3000};  // for the broker's answer, at stop

class ServingBackend : public AggregateBackend {
 public:
  ServingBackend(const BrokerConfig& cfg, std::unique_ptr<NatsLink> link, ModelForTrainers to_trainers)
      : service_(cfg, std::move(link)), to_trainers_(std::move(to_trainers)) {
    to_trainers_(service_.snapshot());  // the trainers' first model (resumed, or the seed's)
  }

  std::string submit(const std::vector<uint8_t>& update) override { return service_.submit(update); }

  AggregateOutput tick() override {
    AggregateOutput out;
    try {
      service_.publish_if_changed();
    } catch (const std::exception& e) {
      out.warning = AggregateWarning{"Cannot publish the model", std::string(e.what()) + "; tried again next interval"};
    }
    auto model = service_.published();
    if (!model || (pushed_version_ && model->version <= *pushed_version_)) return out;
    to_trainers_(*model);
    pushed_version_ = model->version;
    ++models_out_;
    out.model = std::move(model);
    return out;
  }

  std::vector<AggregateWarning> finish() override {
    try {
      service_.publish_if_changed();  // the last accepted updates are in the published (and kept) model
    } catch (const std::exception& e) {
      return {{"Cannot publish the last model", e.what()}};
    }
    return {};
  }

  AggregateStats stats() const override {  // the service counts what it takes (NATS's updates too)
    const BrokerStats st = service_.stats();
    AggregateStats a;
    a.updates_in = st.updates_in;
    a.bytes_in = st.bytes_in;
    a.accepted = st.accepted;
    a.rejected = st.rejected;
    a.version = st.version;
    a.models_out = models_out_;
    return a;
  }

 private:
  BrokerService service_;
  ModelForTrainers to_trainers_;
  std::optional<uint64_t> pushed_version_;  // the model last sent out
  std::atomic<uint64_t> models_out_{0};
};

class ForwardingBackend : public AggregateBackend {
 public:
  ForwardingBackend(const ForwardConfig& cfg, const OpenUpstream& open_upstream, ModelForTrainers to_trainers)
      : layout_(model_layout(cfg.model)), to_trainers_(std::move(to_trainers)),
        merger_(cfg.model_id, layout_.hash, uint32_t(layout_.num_params), cfg.merger), node_id_(cfg.merger.node_id) {
    if (open_upstream) {
      link_ = open_upstream([this](std::shared_ptr<const Snapshot> m) { translate_and_share(*m); });
      if (!link_) throw std::runtime_error("no NATS link to the broker upstream");
      acked_ = std::make_unique<ReliableUplink>(*link_, node_id_, cfg.uplink);
    }
  }
  ~ForwardingBackend() override {
    acked_.reset();
    link_.reset();  // no model callback after this
  }

  std::string submit(const std::vector<uint8_t>& update) override {
    DecodeOptions opts;
    opts.layout_hash = layout_.hash;
    opts.dim = uint32_t(layout_.num_params);
    const DecodeResult d = decode_update(update, opts);
    std::string key, reason;  // counted by key, as BrokerService does; the reason says "key: detail"
    std::lock_guard<std::mutex> g(lock_);
    if (!d.ok()) {
      key = decode_error_name(d.error);
      reason = key + ": " + d.detail;
    } else if (const Verdict v = merger_.submit(d.value); v != Verdict::Accepted) {
      key = reason = verdict_name(v);
    }
    ++stats_.updates_in;
    stats_.bytes_in += update.size();
    if (reason.empty()) ++stats_.accepted;
    else ++stats_.rejected[key];
    return reason;
  }

  AggregateOutput tick() override {
    AggregateOutput out;
    std::lock_guard<std::mutex> g(lock_);
    out.update = merger_.take();
    return out;
  }

  void delivered(const CombinedUpdate& c, bool pushed_downstream) override {
    const bool sent = acked_ ? acked_->offer(c.bytes) : pushed_downstream;
    if (sent) return delivered_stats(c);
    std::lock_guard<std::mutex> g(lock_);
    merger_.restore(c);  // nothing accepted is lost: it goes with the next
  }

  void model_from_upstream(const Snapshot& s) override {
    if (s.layout_hash != layout_.hash || s.params.size() != layout_.num_params)
      throw std::invalid_argument("a model for another layout");
    translate_and_share(s);
  }

  std::vector<AggregateWarning> finish() override {
    std::vector<AggregateWarning> w;
    if (!acked_) return w;
    // What was merged but not forwarded yet still goes upstream; one update may be on the wire
    // still: it gets kStopWait to be answered before the last one goes.
    std::optional<CombinedUpdate> c;
    {
      std::lock_guard<std::mutex> g(lock_);
      c = merger_.take();
    }
    if (c && !acked_->offer(c->bytes) && !(acked_->wait_idle(kStopWait) && acked_->offer(c->bytes)))
      w.push_back({"The last combined update could not be sent",
                   std::to_string(c->updates) + " updates from the trainers are lost: the NATS link is down or the "
                   "broker does not answer"});
    else if (c)
      delivered_stats(*c);
    if (auto why = acked_->unanswered_after(kStopWait)) w.push_back({"The last combined update was not acknowledged", *why});
    return w;
  }

  AggregateStats stats() const override {
    std::lock_guard<std::mutex> g(lock_);
    AggregateStats a = stats_;
    a.pending = merger_.pending_updates();
    a.version = version_;
    return a;
  }

  bool src_is_optional() const override { return link_ != nullptr; }

 private:
  // A model from upstream names the gateway's combined updates it holds; the trainers need their own.
  void translate_and_share(const Snapshot& upstream) {
    Snapshot s = upstream;
    {
      std::lock_guard<std::mutex> g(lock_);
      merger_.translate(s);
      version_ = std::max(version_, s.version);
    }
    to_trainers_(s);
  }
  void delivered_stats(const CombinedUpdate& c) {
    std::lock_guard<std::mutex> g(lock_);
    ++stats_.updates_out;
    stats_.bytes_out += c.bytes.size();
  }

  const ModelLayout layout_;
  ModelForTrainers to_trainers_;
  mutable std::mutex lock_;  // merger_, stats_, version_: the aggregate thread and models coming down
  UpdateMerger merger_;
  AggregateStats stats_;
  uint64_t version_ = 0;
  const uint32_t node_id_;
  std::unique_ptr<NodeLink> link_;
  std::unique_ptr<ReliableUplink> acked_;  // over link_: kept until the broker answers
};

}  // namespace

std::unique_ptr<AggregateBackend> make_serving_backend(const BrokerConfig& cfg, std::unique_ptr<NatsLink> link,
                                                       AggregateBackend::ModelForTrainers to_trainers) {
  return std::make_unique<ServingBackend>(cfg, std::move(link), std::move(to_trainers));
}

std::unique_ptr<AggregateBackend> make_forwarding_backend(const ForwardConfig& cfg, OpenUpstream open_upstream,
                                                          AggregateBackend::ModelForTrainers to_trainers) {
  return std::make_unique<ForwardingBackend>(cfg, open_upstream, std::move(to_trainers));
}

}  // namespace swarmlens
