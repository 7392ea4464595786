// Model snapshots on disk: the flat parameters with the layout they belong to and their version.
// Written atomically (temporary file + rename), checked on load.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace swarmlens {

// What a snapshot says of its model beyond the registry name and layout hash, so that whoever
// receives it knows what it takes and tells apart (format 2; a format-1 snapshot has none, and
// described() is false).
struct ModelDescription {
  int channels = 0, height = 0, width = 0;  // the input a sample's frame is scaled to
  int classes = 0;
  int window = 0;                           // frames per sample (1 unless temporal)
  std::vector<std::string> class_names;     // empty, or one per class
  bool described() const { return classes > 0; }
  bool operator==(const ModelDescription& o) const {
    return channels == o.channels && height == o.height && width == o.width && classes == o.classes &&
           window == o.window && class_names == o.class_names;
  }
};

struct Snapshot {
  Snapshot() = default;
  Snapshot(std::string model_name, uint64_t hash, uint64_t ver, std::vector<float> p,
           std::map<uint32_t, uint64_t> applied_seqs = {})
      : model(std::move(model_name)), layout_hash(hash), version(ver), params(std::move(p)),
        applied(std::move(applied_seqs)) {}

  std::string model;         // registry name, e.g. "cnn"
  uint64_t layout_hash = 0;
  uint64_t version = 0;
  std::vector<float> params;  // [num_params]
  // Per node id, the last update sequence these parameters include (set by the aggregator, so a
  // node can re-apply its own updates that are still in flight). Empty for a local snapshot.
  std::map<uint32_t, uint64_t> applied;
  ModelDescription description;  // what the model takes and tells apart (format 2)
};

// The snapshot format (docs/wire-format.md) as bytes: for files and for the model subject on NATS.
std::vector<uint8_t> encode_snapshot(const Snapshot& s);
// Throws std::runtime_error starting with `what` (a path, a subject) and naming the problem.
Snapshot decode_snapshot(const uint8_t* data, size_t size, const std::string& what);

// A model delta: the parameters that changed from one version to a later one, carried as their new
// values (so applying it reproduces the later snapshot bit for bit), with the later version's
// applied-sequence map. The aggregator sends these between full snapshots so the downlink is
// compressed too. Wire format "SWLD" (docs/wire-format.md).
struct ModelDelta {
  uint64_t layout_hash = 0;
  uint64_t base_version = 0, version = 0;
  uint32_t dim = 0;
  std::vector<uint32_t> index;  // ascending, < dim
  std::vector<float> value;     // the new values
  std::map<uint32_t, uint64_t> applied;
};

// Throws std::invalid_argument if the two snapshots are not of one layout.
ModelDelta make_delta(const Snapshot& base, const Snapshot& next);
std::vector<uint8_t> encode_delta(const ModelDelta& d);
// Throws std::runtime_error starting with `what` and naming the problem.
ModelDelta decode_delta(const uint8_t* data, size_t size, const std::string& what);
// The snapshot the delta leads to. Throws std::runtime_error if base is not the delta's base
// (another layout, size or version).
Snapshot apply_delta(const Snapshot& base, const ModelDelta& d);
// What a model-subject payload holds, by its magic.
enum class ModelMessage { Snapshot, Delta, Unknown };
ModelMessage model_message_kind(const uint8_t* data, size_t size);

void save_snapshot(const std::string& path, const Snapshot& s);
// Writes `bytes` to path through path.tmp and a rename, so a crash leaves the old file or the new
// one, never half of either. Throws std::runtime_error naming the path.
void write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes);
// Throws std::runtime_error ("cannot write <what> <path>: <reason>") unless write_file_atomically
// could write path now: its folder exists and takes a new file, and path is not a folder. For
// checking at start what would otherwise fail only at stop, with the work in it.
void check_writable(const std::string& path, const std::string& what);
// The whole file, or nullopt if it cannot be opened.
std::optional<std::vector<uint8_t>> read_file_bytes(const std::string& path);
// Throws std::runtime_error naming the path and the problem (missing, truncated, corrupt, ...).
Snapshot load_snapshot(const std::string& path);

}  // namespace swarmlens
