#include "broker_service.h"

#include <fstream>

namespace swarmlens {

BrokerService::BrokerService(BrokerConfig cfg, std::unique_ptr<NatsLink> link)
    : cfg_(std::move(cfg)), link_(std::move(link)) {
  auto model = Model::create(cfg_.model, cfg_.seed);
  layout_hash_ = model->layout_hash();
  dim_ = uint32_t(model->num_params());
  std::vector<float> params = model->params_copy();
  uint64_t version = 0;
  if (!cfg_.snapshot_path.empty() && std::ifstream(cfg_.snapshot_path).good()) {
    Snapshot s = load_snapshot(cfg_.snapshot_path);
    if (s.layout_hash != layout_hash_ || s.params.size() != dim_)
      throw std::runtime_error(cfg_.snapshot_path + ": snapshot is for another model layout");
    params = std::move(s.params);
    version = s.version;
  }
  aggregator_ = std::make_unique<Aggregator>(cfg_.model_id, layout_hash_, std::move(params), cfg_.aggregation, version);
  stats_.version = version;
  link_->subscribe(update_subject(cfg_.model_id),
                  [this](const std::string&, std::vector<uint8_t> payload) { on_update(payload); },
                  [this](const std::string&) {
                    std::lock_guard<std::mutex> g(lock_);
                    ++stats_.rejected["bad_chunks"];
                  });
  link_->flush();
}

BrokerService::~BrokerService() { link_.reset(); }  // no update callback after this

void BrokerService::on_update(const std::vector<uint8_t>& payload) {
  DecodeOptions opts;
  opts.layout_hash = layout_hash_;
  opts.dim = dim_;
  const DecodeResult d = decode_update(payload, opts);  // outside the lock: decoding is the heavy part
  std::lock_guard<std::mutex> g(lock_);
  ++stats_.updates_in;
  stats_.bytes_in += payload.size();
  if (!d.ok()) {
    ++stats_.rejected[decode_error_name(d.error)];
    return;
  }
  const Verdict v = aggregator_->submit(d.value);
  if (v == Verdict::Accepted) ++stats_.accepted;
  else ++stats_.rejected[verdict_name(v)];
  stats_.version = aggregator_->version();
}

bool BrokerService::publish_if_changed() {
  Snapshot s;
  {
    std::lock_guard<std::mutex> g(lock_);
    if (aggregator_->version() == published_version_) return false;
    s = snapshot_locked();
  }
  const auto bytes = encode_snapshot(s);
  link_->publish(model_subject(cfg_.model_id), bytes);
  if (!cfg_.snapshot_path.empty()) save_snapshot(cfg_.snapshot_path, s);
  std::lock_guard<std::mutex> g(lock_);
  published_version_ = s.version;
  ++stats_.models_out;
  stats_.bytes_out += bytes.size();
  return true;
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
