#include "node_link.h"

#include "codec.h"

namespace swarmlens {

NodeLink::NodeLink(const NatsOptions& opts, std::string model_id, ModelHandler on_model, EventHandler on_event,
                   bool follow, ModelTrust trust)
    : model_id_(std::move(model_id)),
      trust_(trust),
      on_model_(std::move(on_model)),
      on_event_(std::move(on_event)),
      receiver_(model_id_, trust_) {
  if (!trust_.key)
    report("no model key: models and acks are trusted blindly (set the broker's public key to refuse forged ones)");
  link_ = NatsLink::connect(opts, [this](LinkState s) {
    if (s == LinkState::Reconnected) {
      std::lock_guard<std::mutex> g(lock_);
      ++stats_.reconnects;
    }
    report(std::string("NATS link ") + link_state_name(s));
  });
  if (!follow) {
    pull_model();
    return;
  }
  // Subscribe first, then fetch: a model published in between is not missed (the receiver keeps
  // whichever is newer).
  link_->subscribe(model_subject(model_id_),
                   [this](const std::string& subject, std::vector<uint8_t> payload) { on_model_message(subject, payload); },
                   [this](const std::string& what) { report(model_subject(model_id_) + ": " + what); },
                   64ll << 20, trust_.max_model_bytes ? trust_.max_model_bytes : NatsLink::kMaxMessageBytes);
  link_->flush(link_->request_timeout_ms());
  catch_up_to(nullptr);
}

void NodeLink::refused_model(const std::string& why) {
  {
    std::lock_guard<std::mutex> g(lock_);
    ++stats_.models_refused;
    if (why == last_refusal_) return;  // counted; said once (a model of another layout comes again and again)
    last_refusal_ = why;
  }
  report(why);
}

NodeLink::~NodeLink() { link_.reset(); }

void NodeLink::on_model_message(const std::string& subject, const std::vector<uint8_t>& payload) {
  std::shared_ptr<const Snapshot> model;
  try {
    model = receiver_.receive(payload.data(), payload.size(), subject);
  } catch (const std::exception& e) {
    refused_model(std::string("model refused: ") + e.what());
    return;
  }
  {
    std::lock_guard<std::mutex> g(lock_);
    stats_.bytes_in += payload.size();
  }
  if (!model) {  // a delta that does not follow ours: read what we missed from JetStream
    if (auto gap = receiver_.take_gap()) catch_up_to(&*gap);
    return;
  }
  adopt(model);
}

void NodeLink::adopt(const std::shared_ptr<const Snapshot>& model) {
  {
    std::lock_guard<std::mutex> g(lock_);
    ++stats_.models_in;
    stats_.model_version = model->version;
  }
  if (on_model_) on_model_(model);
}

bool NodeLink::catch_up_to(const ModelDelta* head) {
  CatchUp got;
  try {
    const auto have = receiver_.latest();
    got = catch_up(*link_, model_id_, trust_, have.get(), head);
  } catch (const NatsError& e) {  // said once until a catch-up works again (it is tried at every gap)
    if (!catchup_failing_.exchange(true)) report(std::string("cannot read the model kept in JetStream: ") + e.what());
    return false;
  } catch (const std::exception& e) {
    refused_model(std::string("kept model refused: ") + e.what());
    return false;
  }
  catchup_failing_ = false;
  {
    std::lock_guard<std::mutex> g(lock_);
    stats_.bytes_in += got.bytes;
    stats_.catchup_deltas += got.deltas;
    stats_.keyframes_in += got.keyframe ? 1 : 0;
  }
  if (!got.model) return false;
  auto model = std::make_shared<const Snapshot>(std::move(*got.model));
  receiver_.seed(model);
  if (receiver_.latest() != model) return false;  // a newer one came live meanwhile
  adopt(model);
  return true;
}

bool NodeLink::send_update(const std::vector<uint8_t>& msg) {
  bool sent = false;
  DecodeOptions header;
  header.header_only = true;
  const DecodeResult h = decode_update(msg, header);
  if (!h.ok()) throw std::invalid_argument("send_update: not an encoded update");
  if (link_->connected()) {
    try {
      link_->publish(update_subject(model_id_, h.value.header.node_id), msg);
      sent = true;
    } catch (const NatsError& e) {
      report(e.what());
    }
  }
  std::lock_guard<std::mutex> g(lock_);
  if (sent) {
    ++stats_.updates_sent;
    stats_.bytes_sent += msg.size();
  } else {
    ++stats_.updates_refused;
  }
  return sent;
}

void NodeLink::publish_metrics(const std::string& json) {
  try {
    link_->publish(metrics_subject(model_id_), std::vector<uint8_t>(json.begin(), json.end()));
  } catch (const NatsError& e) {
    report(std::string("metrics: ") + e.what());
  }
}

void NodeLink::on_acks(uint32_t node_id, AckHandler handler) {
  on_ack_ = std::move(handler);
  const std::string subject = ack_subject(model_id_, node_id);
  link_->subscribe(subject, [this](const std::string& subj, std::vector<uint8_t> payload) { on_ack_message(subj, payload); },
                   [this, subject](const std::string& what) { report(subject + ": " + what); },
                   1 << 20, 64 << 10);  // acks are a few hundred bytes
  link_->flush(link_->request_timeout_ms());
}

void NodeLink::on_ack_message(const std::string& subject, const std::vector<uint8_t>& payload) {
  size_t body = 0;
  const Signature sig = verify_payload(payload.data(), payload.size(), trust_.key, kSignedAck, model_id_, &body);
  std::optional<UpdateAck> ack;
  if (!trust_.key || sig == Signature::Valid) ack = parse_ack(std::string(payload.begin(), payload.begin() + std::ptrdiff_t(body)));
  if (!ack) {
    {
      std::lock_guard<std::mutex> g(lock_);
      ++stats_.acks_refused;
    }
    report(subject + ": acknowledgement refused (" +
           (trust_.key && sig != Signature::Valid ? std::string(signature_name(sig)) : std::string("not an acknowledgement")) + ")");
    return;
  }
  {
    std::lock_guard<std::mutex> g(lock_);
    ++stats_.acks_in;
  }
  on_ack_(*ack);
}

void NodeLink::flush(int timeout_ms) { link_->flush(timeout_ms); }

bool NodeLink::pull_model() {
  // From the model this node has, through the chain kept in JetStream when that is cheaper than the
  // keyframe: a slow downlink then takes the deltas it missed, not the whole model.
  return catch_up_to(nullptr);
}

NodeLinkStats NodeLink::stats() const {
  std::lock_guard<std::mutex> g(lock_);
  NodeLinkStats s = stats_;
  s.connected = link_->connected();
  return s;
}

void NodeLink::report(const std::string& what) {
  if (!on_event_) return;
  try {
    on_event_(what);
  } catch (...) {  // never into nats.c
  }
}

}  // namespace swarmlens
