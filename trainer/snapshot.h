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
  // On the model stream (docs/wire-format.md): the chain of deltas this model belongs to, and the
  // chain's byte offset just after it (where the next delta starts). 0 outside the stream.
  uint64_t chain_id = 0, chain_offset = 0;
};

// The snapshot format (docs/wire-format.md) as bytes: for files and for the model stream on NATS.
// fp16 = a keyframe: the parameters go out as fp16, and every one must be on the fp16 grid
// (downlink.h; std::invalid_argument otherwise), so the keyframe is exact.
std::vector<uint8_t> encode_snapshot(const Snapshot& s, bool fp16 = false);
// Throws std::runtime_error starting with `what` (a path, a subject) and naming the problem.
Snapshot decode_snapshot(const uint8_t* data, size_t size, const std::string& what);

// A model delta: one link of the model stream's chain (docs/wire-format.md), from one published
// model to the next. Both are on the fp16 grid; the delta moves the parameters it names by integer
// steps along the grid (downlink.h), so applying it reproduces the next model bit for bit. It also
// says where it sits in the chain and where the latest keyframe is, so that a node that missed
// deltas can tell whether reading them costs more than the keyframe. Wire format "SWLD" 2.
struct ModelDelta {
  uint64_t layout_hash = 0;
  uint64_t chain_id = 0;      // the chain it belongs to (a broker starting a new one picks a new id)
  uint64_t base_version = 0, version = 0;
  uint32_t dim = 0;
  uint64_t offset = 0;        // bytes of the chain before this delta
  uint64_t keyframe_version = 0, keyframe_offset = 0, keyframe_bytes = 0;  // the latest keyframe
  std::vector<uint32_t> index;  // ascending, < dim
  std::vector<int32_t> step;    // per index: the move along the fp16 grid, non-zero
  std::map<uint32_t, uint64_t> applied;  // the applied-sequence entries that changed since the base
  uint64_t bytes = 0;  // its encoded size (set by decode_delta; the encoder's caller sets it)
};

// The entries of `next` that are not in `base` or differ there: what a delta carries of the
// applied-sequence map.
std::map<uint32_t, uint64_t> applied_changes(const std::map<uint32_t, uint64_t>& base,
                                             const std::map<uint32_t, uint64_t>& next);

// Every parameter that differs between two models on the fp16 grid, and the applied-sequence
// entries that changed. Throws std::invalid_argument if the two are not of one layout or a
// parameter is off the grid.
ModelDelta make_delta(const Snapshot& base, const Snapshot& next);
std::vector<uint8_t> encode_delta(const ModelDelta& d);
// Throws std::runtime_error starting with `what` and naming the problem.
ModelDelta decode_delta(const uint8_t* data, size_t size, const std::string& what);
// The model the delta leads to (chain_offset = d.offset + d.bytes). Throws std::runtime_error if
// base is not the delta's base (another layout, size, chain or version) or a step leaves the grid.
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
