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
  try {
    if (auto kept = fetch_retained_model(*link_, model_id_, trust_)) {
      auto model = std::make_shared<const Snapshot>(std::move(*kept));
      receiver_.seed(model);
      if (receiver_.latest() == model) {
        {
          std::lock_guard<std::mutex> g(lock_);
          ++stats_.models_in;
          stats_.model_version = model->version;
        }
        if (on_model_) on_model_(model);
      }
    }
  } catch (const NatsError& e) {  // no JetStream: the node starts from its seed and the live models
    report(std::string("no retained model: ") + e.what());
  } catch (const std::exception& e) {  // forged, corrupt or exploding: refused, the live models follow
    refused_model(std::string("retained model refused: ") + e.what());
  }
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
    if (model) {
      ++stats_.models_in;
      stats_.model_version = model->version;
    }
  }
  if (model && on_model_) on_model_(model);
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
  // The retained delta first: when it builds on the full snapshot this node already has, that is
  // all the link has to carry (a slow downlink then takes kilobytes, not the whole model).
  const std::string stream = retention_stream(model_id_);
  std::shared_ptr<const Snapshot> model;
  size_t bytes = 0;
  try {
    auto delta = link_->fetch_retained(stream, retained_prefix(model_id_, "delta"));
    const uint64_t skipped = receiver_.skipped_deltas();
    if (delta) {
      bytes += delta->size();
      model = receiver_.receive(delta->data(), delta->size(), stream + " (retained delta)");
    }
    if (!model && (!delta || receiver_.skipped_deltas() != skipped || !receiver_.latest())) {
      auto full = link_->fetch_retained(stream, retained_prefix(model_id_, "full"));
      if (full) {
        bytes += full->size();
        model = receiver_.receive(full->data(), full->size(), stream + " (retained snapshot)");
        if (delta) {
          if (auto newer = receiver_.receive(delta->data(), delta->size(), stream + " (retained delta)")) model = newer;
        }
      }
    }
  } catch (const NatsError& e) {
    report(std::string("cannot pull the model: ") + e.what());
    return false;
  } catch (const std::exception& e) {
    refused_model(std::string("pulled model refused: ") + e.what());
    return false;
  }
  {
    std::lock_guard<std::mutex> g(lock_);
    stats_.bytes_in += bytes;
    if (model) {
      ++stats_.models_in;
      stats_.model_version = model->version;
    }
  }
  if (!model) return false;
  if (on_model_) on_model_(model);
  return true;
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
