// The update wire codec (format version 1), specified in docs/wire-format.md.
// encode() turns a sparse update into bytes; decode() validates every field and returns an error,
// never crashes or reads out of bounds.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sparse.h"

namespace swarmlens {

inline constexpr uint8_t kWireVersion = 1;
inline constexpr size_t kMaxModelIdLength = 64;

enum class IndexCoding : uint8_t { Varint = 0, Rice = 1, Bitmap = 2, Dense = 3 };
// Sign: one bit per value and, per block of kSignBlock values in index order, one fp16 magnitude
// (the block's mean |value|): about 0.16 bytes a value; what it leaves goes back into the sender's
// residual (error feedback), as with fp16 and int8.
enum class ValueCoding : uint8_t { Fp32 = 0, Fp16 = 1, Int8 = 2, Sign = 3 };
inline constexpr size_t kSignBlock = 64;

struct CodecConfig {
  std::optional<IndexCoding> index;  // unset: pick the smallest for each message
  ValueCoding value = ValueCoding::Fp16;
};

std::optional<ValueCoding> parse_value_coding(std::string_view name);
const char* value_coding_name(ValueCoding v);
std::optional<IndexCoding> parse_index_coding(std::string_view name);
const char* index_coding_name(IndexCoding c);

struct UpdateHeader {
  std::string model_id;       // 1..64 printable ASCII bytes
  uint64_t layout_hash = 0;   // Model::layout_hash() of the parameter layout
  uint64_t base_version = 0;  // global model version the update was computed against
  uint32_t node_id = 0;
  uint64_t sequence = 0;      // per node, increasing
  uint64_t samples = 0;       // training samples behind the update
};

// Encodes `update` (must be well formed). If `sent` is given it receives the values exactly as the
// receiver will decode them (after fp16/int8 quantisation), so the caller can feed the error back.
std::vector<uint8_t> encode_update(const UpdateHeader& header, const SparseVector& update,
                                   const CodecConfig& cfg, std::vector<float>* sent = nullptr);

enum class DecodeError {
  None,
  Truncated,
  BadMagic,
  BadVersion,
  BadChecksum,
  BadHeader,          // a header field out of its range
  IndexOutOfRange,
  IndexNotIncreasing,
  NonFinite,          // NaN or Inf value or scale
  TrailingBytes,
  LayoutMismatch,     // hash or dimension differs from what the receiver expects
};
const char* decode_error_name(DecodeError e);

struct DecodeOptions {
  std::optional<uint64_t> layout_hash;  // reject anything else
  std::optional<uint32_t> dim;          // reject anything else
  uint32_t max_dim = 1u << 28;          // bound on allocations driven by the wire
  bool header_only = false;             // check the frame and header, skip the entries (no values)
};

struct DecodedUpdate {
  UpdateHeader header;
  SparseVector update;
  IndexCoding index_coding = IndexCoding::Varint;
  ValueCoding value_coding = ValueCoding::Fp32;
};

struct DecodeResult {
  DecodeError error = DecodeError::None;
  std::string detail;  // human-readable, for logs and bus messages
  DecodedUpdate value;
  bool ok() const { return error == DecodeError::None; }
};

DecodeResult decode_update(const uint8_t* data, size_t size, const DecodeOptions& opts = {});
inline DecodeResult decode_update(const std::vector<uint8_t>& b, const DecodeOptions& opts = {}) {
  return decode_update(b.data(), b.size(), opts);
}

}  // namespace swarmlens
