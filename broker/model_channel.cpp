#include "model_channel.h"

#include <cctype>
#include <cstdio>

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

std::string chain_prefix(const std::string& model_id, uint64_t chain_id, uint64_t base_version) {
  char id[17];
  std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(chain_id));
  return "swarmlens." + model_id + ".chain." + id + "." + std::to_string(base_version);
}

namespace {

// Reads the model stream kept in JetStream for catch_up, counting what it reads.
class KeptStream {
 public:
  KeptStream(NatsLink& link, const std::string& model_id, const ModelTrust& trust, CatchUp& out)
      : link_(link), id_(model_id), trust_(trust), out_(out) {}

  std::optional<ModelDelta> head() {
    auto bytes = read(retention_stream(id_), retained_prefix(id_, "delta"));
    if (!bytes) return std::nullopt;
    return decode_delta(bytes->data(), bytes->size(), retention_stream(id_) + " (latest delta)");
  }
  std::optional<Snapshot> keyframe() {
    auto bytes = read(retention_stream(id_), retained_prefix(id_, "full"));
    if (!bytes) return std::nullopt;
    out_.keyframe = true;
    return decode_snapshot(bytes->data(), bytes->size(), retention_stream(id_) + " (keyframe)");
  }
  // `from` moved along the kept chain up to version `to`; nullopt when a delta is missing.
  std::optional<Snapshot> walk(Snapshot from, uint64_t to) {
    while (from.version < to) {
      const std::string prefix = chain_prefix(id_, from.chain_id, from.version);
      auto bytes = read(chain_stream(id_), prefix);
      if (!bytes) return std::nullopt;
      const ModelDelta d = decode_delta(bytes->data(), bytes->size(), chain_stream(id_) + " (" + prefix + ")");
      if (d.version > to) return std::nullopt;  // another chain's history under the same name: not ours
      from = apply_delta(from, d);
      ++out_.deltas;
    }
    return from;
  }

 private:
  std::optional<std::vector<uint8_t>> read(const std::string& stream, const std::string& prefix) {
    auto bytes = link_.fetch_retained(stream, prefix);
    if (!bytes) return std::nullopt;
    out_.bytes += bytes->size();
    return verified_model_bytes(bytes->data(), bytes->size(), trust_, id_, stream + " (" + prefix + ")");
  }
  NatsLink& link_;
  const std::string& id_;
  const ModelTrust& trust_;
  CatchUp& out_;
};

}  // namespace

CatchUp catch_up(NatsLink& link, const std::string& model_id, const ModelTrust& trust, const Snapshot* have,
                 const ModelDelta* head) {
  CatchUp out;
  KeptStream kept(link, model_id, trust, out);
  std::optional<ModelDelta> latest;
  if (head) latest = *head;
  else latest = kept.head();
  auto finish = [&](std::optional<Snapshot> m) {
    if (m && latest && m->chain_id == latest->chain_id && m->version == latest->base_version) m = apply_delta(*m, *latest);
    if (m && have && m->version <= have->version) m.reset();  // nothing newer
    if (m) check_adoptable(*m, trust, retention_stream(model_id));
    out.model = std::move(m);
    return out;
  };
  if (have && latest && have->chain_id == latest->chain_id) {
    if (have->version >= latest->version) return finish(std::nullopt);
    // The chain from here, or the keyframe and the chain from it: the head says what each costs.
    const uint64_t chain = latest->offset - std::min(latest->offset, have->chain_offset);
    const uint64_t via_keyframe = latest->keyframe_bytes + latest->offset - std::min(latest->offset, latest->keyframe_offset);
    if (latest->keyframe_version <= have->version || chain <= via_keyframe)
      if (auto m = kept.walk(*have, latest->base_version)) return finish(std::move(m));
  }
  std::optional<Snapshot> key = kept.keyframe();
  if (!key) return finish(std::nullopt);
  if (!latest || key->chain_id != latest->chain_id || key->version > latest->base_version) return finish(std::move(key));
  if (auto m = kept.walk(*key, latest->base_version)) return finish(std::move(m));
  return finish(std::move(key));  // the chain after it is gone: still a published model
}

std::optional<Snapshot> fetch_retained_model(NatsLink& link, const std::string& model_id, const ModelTrust& trust) {
  return catch_up(link, model_id, trust, nullptr).model;
}

std::optional<Snapshot> fetch_server_checkpoint(NatsLink& link, const std::string& model_id, const ModelTrust& trust) {
  auto bytes = link.fetch_retained(retention_stream(model_id), retained_prefix(model_id, "server"));
  if (!bytes) return std::nullopt;
  const std::string what = retention_stream(model_id) + " (server checkpoint)";
  const std::vector<uint8_t> v = verified_model_bytes(bytes->data(), bytes->size(), trust, model_id, what);
  Snapshot s = decode_snapshot(v.data(), v.size(), what);
  check_adoptable(s, trust, what);
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
      latest_ = s;
      return s;
    }
    case ModelMessage::Delta: {
      ModelDelta d = decode_delta(data, size, subject);
      std::lock_guard<std::mutex> g(lock_);
      if (latest_ && latest_->version >= d.version) return nullptr;
      if (!latest_ || latest_->chain_id != d.chain_id || latest_->version != d.base_version) {
        gap_ = std::move(d);  // missed deltas, or a new chain: the owner catches up to this one
        return nullptr;
      }
      auto next = std::make_shared<const Snapshot>(apply_delta(*latest_, d));
      check_adoptable(*next, trust_, subject);
      latest_ = next;
      return latest_;
    }
    case ModelMessage::Unknown: break;
  }
  throw std::runtime_error(subject + ": neither a model snapshot nor a model delta");
}

std::optional<ModelDelta> ModelReceiver::take_gap() {
  std::lock_guard<std::mutex> g(lock_);
  std::optional<ModelDelta> d = std::move(gap_);
  gap_.reset();
  if (d && latest_ && latest_->version >= d->version) return std::nullopt;  // caught up meanwhile
  return d;
}

void ModelReceiver::seed(std::shared_ptr<const Snapshot> model) {
  std::lock_guard<std::mutex> g(lock_);
  if (latest_ && model && latest_->version >= model->version) return;
  latest_ = model;
}

std::shared_ptr<const Snapshot> ModelReceiver::latest() const {
  std::lock_guard<std::mutex> g(lock_);
  return latest_;
}

}  // namespace swarmlens
