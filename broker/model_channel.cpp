#include "model_channel.h"

#include <cctype>

namespace swarmlens {

std::string retention_stream(const std::string& model_id) {
  std::string s = "SWARMLENS_";
  for (char c : model_id) s += std::isalnum(static_cast<unsigned char>(c)) ? char(std::toupper(c)) : '_';
  return s;
}

std::optional<Snapshot> fetch_retained_model(NatsLink& link, const std::string& model_id) {
  const std::string stream = retention_stream(model_id);
  auto full = link.fetch_retained(stream, retained_prefix(model_id, "full"));
  if (!full) return std::nullopt;
  Snapshot s = decode_snapshot(full->data(), full->size(), stream + " (retained snapshot)");
  auto delta = link.fetch_retained(stream, retained_prefix(model_id, "delta"));
  if (delta) {
    const ModelDelta d = decode_delta(delta->data(), delta->size(), stream + " (retained delta)");
    // A delta from an older full snapshot is stale (the newer full one holds more); one from a newer
    // snapshot means the full one was replaced while we read: take what we have, still a published model.
    if (d.base_version == s.version) s = apply_delta(s, d);
  }
  return s;
}

std::shared_ptr<const Snapshot> ModelReceiver::receive(const uint8_t* data, size_t size, const std::string& subject) {
  switch (model_message_kind(data, size)) {
    case ModelMessage::Snapshot: {
      auto s = std::make_shared<const Snapshot>(decode_snapshot(data, size, subject));
      std::lock_guard<std::mutex> g(lock_);
      if (latest_ && latest_->version >= s->version) return nullptr;
      base_ = s;
      latest_ = s;
      return s;
    }
    case ModelMessage::Delta: {
      const ModelDelta d = decode_delta(data, size, subject);
      std::lock_guard<std::mutex> g(lock_);
      if (latest_ && latest_->version >= d.version) return nullptr;
      if (!base_ || base_->version != d.base_version) {  // its full snapshot never reached us: wait for the next
        ++skipped_;
        return nullptr;
      }
      latest_ = std::make_shared<const Snapshot>(apply_delta(*base_, d));
      return latest_;
    }
    case ModelMessage::Unknown: break;
  }
  throw std::runtime_error(subject + ": neither a model snapshot nor a model delta");
}

void ModelReceiver::seed(std::shared_ptr<const Snapshot> model) {
  std::lock_guard<std::mutex> g(lock_);
  if (latest_ && model && latest_->version >= model->version) return;
  base_ = model;
  latest_ = model;
}

std::shared_ptr<const Snapshot> ModelReceiver::latest() const {
  std::lock_guard<std::mutex> g(lock_);
  return latest_;
}

uint64_t ModelReceiver::skipped_deltas() const {
  std::lock_guard<std::mutex> g(lock_);
  return skipped_;
}

}  // namespace swarmlens
