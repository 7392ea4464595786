#include "model_channel.h"

#include <cctype>

#include "camera_model.h"
#include "robust.h"

namespace swarmlens {

std::string retention_stream(const std::string& model_id) {
  std::string s = "SWARMLENS_";
  for (char c : model_id) s += std::isalnum(static_cast<unsigned char>(c)) ? char(std::toupper(c)) : '_';
  return s;
}

std::vector<uint8_t> verified_model_bytes(const uint8_t* data, size_t size, const ModelTrust& trust,
                                          const std::string& model_id, const std::string& what) {
  size_t body = 0;
  const Signature sig = verify_payload(data, size, trust.key, kSignedModel, model_id, &body);
  if (trust.key && sig != Signature::Valid)
    throw std::runtime_error(what + ": " + (sig == Signature::Unsigned ? "not signed" : "bad signature") +
                             " (the model key does not vouch for it)");
  return std::vector<uint8_t>(data, data + body);
}

void check_adoptable(const Snapshot& s, const ModelTrust& trust, const std::string& what) {
  if (trust.layout_hash)  // no version in the words: the same each time it comes
    if (const std::string why = model_mismatch(s, trust.layout_hash, trust.runs); !why.empty())
      throw std::runtime_error(what + ": " + why + ": refused (give this side the served model's name, input size and classes)");
  const std::string why = check_model(s.params, trust.max_norm);
  if (!why.empty()) throw std::runtime_error(what + ": model version " + std::to_string(s.version) + " refused: " + why);
}

std::optional<Snapshot> fetch_retained_model(NatsLink& link, const std::string& model_id, const ModelTrust& trust) {
  const std::string stream = retention_stream(model_id);
  auto full = link.fetch_retained(stream, retained_prefix(model_id, "full"));
  if (!full) return std::nullopt;
  const std::string what_full = stream + " (retained snapshot)", what_delta = stream + " (retained delta)";
  *full = verified_model_bytes(full->data(), full->size(), trust, model_id, what_full);
  Snapshot s = decode_snapshot(full->data(), full->size(), what_full);
  auto delta = link.fetch_retained(stream, retained_prefix(model_id, "delta"));
  if (delta) {
    *delta = verified_model_bytes(delta->data(), delta->size(), trust, model_id, what_delta);
    const ModelDelta d = decode_delta(delta->data(), delta->size(), what_delta);
    // A delta from an older full snapshot is stale (the newer full one holds more); one from a newer
    // snapshot means the full one was replaced while we read: take what we have, still a published model.
    if (d.base_version == s.version) s = apply_delta(s, d);
  }
  check_adoptable(s, trust, stream);
  return s;
}

std::shared_ptr<const Snapshot> ModelReceiver::receive(const uint8_t* signed_data, size_t signed_size,
                                                       const std::string& subject) {
  const std::vector<uint8_t> bytes = verified_model_bytes(signed_data, signed_size, trust_, model_id_, subject);
  const uint8_t* data = bytes.data();
  const size_t size = bytes.size();
  switch (model_message_kind(data, size)) {
    case ModelMessage::Snapshot: {
      auto s = std::make_shared<const Snapshot>(decode_snapshot(data, size, subject));
      check_adoptable(*s, trust_, subject);
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
      auto next = std::make_shared<const Snapshot>(apply_delta(*base_, d));
      check_adoptable(*next, trust_, subject);
      latest_ = next;
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
