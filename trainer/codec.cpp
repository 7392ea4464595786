#include "codec.h"

#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <stdexcept>

#include "bytes.h"
#include "framing.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the wire format is little-endian");

namespace swarmlens {

namespace {

constexpr Magic kMagic = {'S', 'W', 'L', 'U'};
constexpr float kFp16Max = 65504.0f;

// Indices are delta coded: d0 = index[0], di = index[i] - index[i-1] (>= 1).
uint64_t delta_at(const SparseVector& s, size_t i) {
  return i == 0 ? s.index[0] : uint64_t(s.index[i]) - s.index[i - 1];
}

size_t varint_bytes(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) v >>= 7, ++n;
  return n;
}

uint64_t rice_bits(const SparseVector& s, unsigned k) {
  uint64_t bits = 0;
  for (size_t i = 0; i < s.nnz(); ++i) bits += (delta_at(s, i) >> k) + 1 + k;
  return bits;
}

// Golomb-Rice parameter near the optimum for geometric gaps (mean gap * ln 2), refined by +-1.
unsigned best_rice_k(const SparseVector& s, uint64_t* bits_out) {
  const double mean = double(s.dim) / double(std::max<size_t>(1, s.nnz()));
  const int guess = std::clamp(int(std::floor(std::log2(std::max(1.0, mean * 0.6931)))), 0, 31);
  unsigned best = unsigned(guess);
  uint64_t best_bits = rice_bits(s, best);
  for (int k : {guess - 1, guess + 1}) {
    if (k < 0 || k > 31) continue;
    const uint64_t b = rice_bits(s, unsigned(k));
    if (b < best_bits) best = unsigned(k), best_bits = b;
  }
  *bits_out = best_bits;
  return best;
}

void encode_indices(const SparseVector& s, IndexCoding coding, unsigned rice_k,
                    std::vector<uint8_t>& out) {
  switch (coding) {
    case IndexCoding::Varint: {
      ByteWriter w(out);
      for (size_t i = 0; i < s.nnz(); ++i) w.varint(delta_at(s, i));
      break;
    }
    case IndexCoding::Rice: {
      BitWriter w;
      for (size_t i = 0; i < s.nnz(); ++i) {
        const uint64_t d = delta_at(s, i);
        for (uint64_t q = d >> rice_k; q > 0; --q) w.bit(1);
        w.bit(0);
        w.put(d, rice_k);
      }
      out.insert(out.end(), w.bytes().begin(), w.bytes().end());
      break;
    }
    case IndexCoding::Bitmap: {
      const size_t base = out.size();
      out.resize(base + (size_t(s.dim) + 7) / 8, 0);
      for (uint32_t i : s.index) out[base + i / 8] |= uint8_t(1u << (i % 8));
      break;
    }
    case IndexCoding::Dense: break;
  }
}

IndexCoding choose_coding(const SparseVector& s, const CodecConfig& cfg, unsigned* rice_k) {
  uint64_t rbits = 0;
  *rice_k = best_rice_k(s, &rbits);
  if (cfg.index) return *cfg.index;
  if (s.nnz() == s.dim) return IndexCoding::Dense;
  size_t varint = 0;
  for (size_t i = 0; i < s.nnz(); ++i) varint += varint_bytes(delta_at(s, i));
  const uint64_t rice = (rbits + 7) / 8, bitmap = (uint64_t(s.dim) + 7) / 8;
  if (rice <= varint && rice <= bitmap) return IndexCoding::Rice;
  return varint <= bitmap ? IndexCoding::Varint : IndexCoding::Bitmap;
}

DecodeResult fail(DecodeError e, std::string detail) {
  DecodeResult r;
  r.error = e;
  r.detail = std::move(detail);
  return r;
}

DecodeError decode_indices(ByteReader r, IndexCoding coding, unsigned rice_k, uint32_t dim,
                           uint32_t nnz, std::vector<uint32_t>& index) {
  index.resize(nnz);
  uint64_t prev = 0;
  auto accept = [&](size_t i, uint64_t d) {
    if (i > 0 && d == 0) return DecodeError::IndexNotIncreasing;
    const uint64_t idx = (i == 0) ? d : prev + d;
    if (d >= dim || idx >= dim) return DecodeError::IndexOutOfRange;
    index[i] = uint32_t(idx);
    prev = idx;
    return DecodeError::None;
  };
  switch (coding) {
    case IndexCoding::Varint:
      for (size_t i = 0; i < nnz; ++i) {
        uint64_t d = 0;
        if (!r.varint(d)) return DecodeError::Truncated;
        if (auto e = accept(i, d); e != DecodeError::None) return e;
      }
      break;
    case IndexCoding::Rice: {
      BitReader b(r.data(), r.remaining());
      const uint64_t max_q = (uint64_t(dim) >> rice_k) + 1;
      for (size_t i = 0; i < nnz; ++i) {
        uint64_t q = 0;
        if (!b.unary(q, max_q)) return q > max_q ? DecodeError::IndexOutOfRange : DecodeError::Truncated;
        uint64_t low = 0;
        if (!b.get(low, rice_k)) return DecodeError::Truncated;
        if (auto e = accept(i, (q << rice_k) | low); e != DecodeError::None) return e;
      }
      if (b.remaining() >= 8) return DecodeError::TrailingBytes;
      return DecodeError::None;
    }
    case IndexCoding::Bitmap: {
      if (r.remaining() != (size_t(dim) + 7) / 8) return DecodeError::BadHeader;
      std::vector<uint8_t> bits(r.remaining());
      r.bytes(bits.data(), bits.size());
      size_t i = 0;
      for (uint32_t j = 0; j < dim; ++j) {
        if (!((bits[j / 8] >> (j % 8)) & 1u)) continue;
        if (i == nnz) return DecodeError::BadHeader;  // more bits set than nnz says
        index[i++] = j;
      }
      if (i != nnz) return DecodeError::BadHeader;
      for (uint32_t j = dim; j < bits.size() * 8; ++j)
        if ((bits[j / 8] >> (j % 8)) & 1u) return DecodeError::IndexOutOfRange;
      return DecodeError::None;
    }
    case IndexCoding::Dense:
      if (nnz != dim) return DecodeError::BadHeader;
      for (uint32_t j = 0; j < dim; ++j) index[j] = j;
      break;
  }
  return r.remaining() == 0 ? DecodeError::None : DecodeError::TrailingBytes;
}

}  // namespace

std::optional<ValueCoding> parse_value_coding(std::string_view n) {
  if (n == "fp32") return ValueCoding::Fp32;
  if (n == "fp16") return ValueCoding::Fp16;
  if (n == "int8") return ValueCoding::Int8;
  if (n == "sign") return ValueCoding::Sign;
  return std::nullopt;
}

const char* value_coding_name(ValueCoding v) {
  switch (v) {
    case ValueCoding::Fp32: return "fp32";
    case ValueCoding::Fp16: return "fp16";
    case ValueCoding::Int8: return "int8";
    case ValueCoding::Sign: return "sign";
  }
  return "?";
}

std::optional<IndexCoding> parse_index_coding(std::string_view n) {
  if (n == "varint") return IndexCoding::Varint;
  if (n == "rice") return IndexCoding::Rice;
  if (n == "bitmap") return IndexCoding::Bitmap;
  if (n == "dense") return IndexCoding::Dense;
  return std::nullopt;
}

const char* index_coding_name(IndexCoding c) {
  switch (c) {
    case IndexCoding::Varint: return "varint";
    case IndexCoding::Rice: return "rice";
    case IndexCoding::Bitmap: return "bitmap";
    case IndexCoding::Dense: return "dense";
  }
  return "?";
}

const char* decode_error_name(DecodeError e) {
  switch (e) {
    case DecodeError::None: return "ok";
    case DecodeError::Truncated: return "truncated";
    case DecodeError::BadMagic: return "bad_magic";
    case DecodeError::BadVersion: return "bad_version";
    case DecodeError::BadChecksum: return "bad_checksum";
    case DecodeError::BadHeader: return "bad_header";
    case DecodeError::IndexOutOfRange: return "index_out_of_range";
    case DecodeError::IndexNotIncreasing: return "index_not_increasing";
    case DecodeError::NonFinite: return "non_finite";
    case DecodeError::TrailingBytes: return "trailing_bytes";
    case DecodeError::LayoutMismatch: return "layout_mismatch";
  }
  return "?";
}

std::vector<uint8_t> encode_update(const UpdateHeader& h, const SparseVector& s,
                                   const CodecConfig& cfg, std::vector<float>* sent) {
  if (h.model_id.empty() || h.model_id.size() > kMaxModelIdLength)
    throw std::invalid_argument("encode_update: model id must be 1..64 bytes");
  if (!s.well_formed()) throw std::invalid_argument("encode_update: malformed sparse vector");
  for (float v : s.value)
    if (!std::isfinite(v)) throw std::invalid_argument("encode_update: NaN or Inf value");

  unsigned rice_k = 0;
  const IndexCoding coding = choose_coding(s, cfg, &rice_k);
  if (coding == IndexCoding::Dense && s.nnz() != s.dim)
    throw std::invalid_argument("encode_update: dense coding needs every entry");
  if (coding != IndexCoding::Rice) rice_k = 0;

  std::vector<uint8_t> index_bytes;
  encode_indices(s, coding, rice_k, index_bytes);

  std::vector<uint8_t> out;
  out.reserve(64 + h.model_id.size() + index_bytes.size() + s.nnz() * 4);
  begin_frame(out, kMagic, kWireVersion);
  ByteWriter w(out);
  w.put<uint8_t>(uint8_t(coding));
  w.put<uint8_t>(uint8_t(cfg.value));
  w.put<uint8_t>(uint8_t(h.model_id.size()));
  w.bytes(h.model_id.data(), h.model_id.size());
  w.put<uint64_t>(h.layout_hash);
  w.put<uint64_t>(h.base_version);
  w.put<uint32_t>(h.node_id);
  w.put<uint64_t>(h.sequence);
  w.put<uint64_t>(h.samples);
  w.put<uint32_t>(s.dim);
  w.put<uint32_t>(uint32_t(s.nnz()));
  w.put<uint8_t>(uint8_t(rice_k));
  w.put<uint32_t>(uint32_t(index_bytes.size()));
  w.bytes(index_bytes.data(), index_bytes.size());

  if (sent) sent->resize(s.nnz());
  switch (cfg.value) {
    case ValueCoding::Fp32:
      w.bytes(s.value.data(), s.nnz() * sizeof(float));
      if (sent) *sent = s.value;
      break;
    case ValueCoding::Fp16:
      for (size_t i = 0; i < s.nnz(); ++i) {
        const c10::Half half(std::clamp(s.value[i], -kFp16Max, kFp16Max));
        w.put<uint16_t>(half.x);
        if (sent) (*sent)[i] = float(half);
      }
      break;
    case ValueCoding::Int8: {
      float maxabs = 0.0f;
      for (float v : s.value) maxabs = std::max(maxabs, std::fabs(v));
      const float scale = maxabs > 0.0f ? maxabs / 127.0f : 1.0f;
      w.put<float>(scale);
      for (size_t i = 0; i < s.nnz(); ++i) {
        const auto q = int8_t(std::clamp(std::lround(s.value[i] / scale), -127L, 127L));
        w.put<int8_t>(q);
        if (sent) (*sent)[i] = float(q) * scale;
      }
      break;
    }
    case ValueCoding::Sign: {
      for (size_t b = 0; b < s.nnz(); b += kSignBlock) {  // a magnitude per block: its mean |value|
        const size_t e = std::min(s.nnz(), b + kSignBlock);
        double sum = 0.0;
        for (size_t i = b; i < e; ++i) sum += std::fabs(s.value[i]);
        const c10::Half mag(std::min(float(sum / double(e - b)), kFp16Max));
        w.put<uint16_t>(mag.x);
        if (sent)
          for (size_t i = b; i < e; ++i) (*sent)[i] = std::signbit(s.value[i]) ? -float(mag) : float(mag);
      }
      std::vector<uint8_t> signs((s.nnz() + 7) / 8, 0);
      for (size_t i = 0; i < s.nnz(); ++i)
        if (std::signbit(s.value[i])) signs[i / 8] |= uint8_t(1u << (i % 8));
      w.bytes(signs.data(), signs.size());
      break;
    }
  }
  end_frame(out);
  return out;
}

DecodeResult decode_update(const uint8_t* data, size_t size, const DecodeOptions& opts) {
  FrameCheck frame = check_frame(data, size, kMagic, kWireVersion);
  switch (frame.error) {
    case FrameError::None: break;
    case FrameError::Truncated:
      return fail(DecodeError::Truncated, size < 4 ? "shorter than the magic" : size < 5 ? "no format version" : "header cut short");
    case FrameError::BadMagic: return fail(DecodeError::BadMagic, "not an update");
    case FrameError::BadVersion:
      return fail(DecodeError::BadVersion, "format version " + std::to_string(frame.version) + ", expected " +
                                               std::to_string(kWireVersion));
    case FrameError::BadChecksum: return fail(DecodeError::BadChecksum, "CRC-32 mismatch");
  }
  ByteReader& r = frame.body;  // after version, before the checksum
  DecodeResult res;
  UpdateHeader& h = res.value.header;
  uint8_t coding = 0, vcoding = 0, id_len = 0, rice_k = 0;
  uint32_t dim = 0, nnz = 0, index_len = 0;
  if (!r.get(coding) || !r.get(vcoding) || !r.get(id_len))
    return fail(DecodeError::Truncated, "header cut short");
  if (coding > uint8_t(IndexCoding::Dense)) return fail(DecodeError::BadHeader, "index coding");
  if (vcoding > uint8_t(ValueCoding::Sign)) return fail(DecodeError::BadHeader, "value coding");
  if (id_len == 0 || id_len > kMaxModelIdLength)
    return fail(DecodeError::BadHeader, "model id length");
  h.model_id.resize(id_len);
  if (!r.bytes(h.model_id.data(), id_len)) return fail(DecodeError::Truncated, "model id");
  for (char c : h.model_id)
    if (c < 0x21 || c > 0x7e) return fail(DecodeError::BadHeader, "model id not printable ASCII");
  if (!r.get(h.layout_hash) || !r.get(h.base_version) || !r.get(h.node_id) ||
      !r.get(h.sequence) || !r.get(h.samples) || !r.get(dim) || !r.get(nnz) || !r.get(rice_k) ||
      !r.get(index_len))
    return fail(DecodeError::Truncated, "header cut short");
  if (dim == 0 || dim > opts.max_dim) return fail(DecodeError::BadHeader, "dimension");
  if (nnz > dim) return fail(DecodeError::BadHeader, "more entries than the dimension");
  if (rice_k > 31 || (rice_k != 0 && coding != uint8_t(IndexCoding::Rice)))
    return fail(DecodeError::BadHeader, "rice parameter");
  if ((opts.layout_hash && *opts.layout_hash != h.layout_hash) || (opts.dim && *opts.dim != dim))
    return fail(DecodeError::LayoutMismatch, "update is for another parameter layout");
  if (opts.header_only) return res;

  res.value.index_coding = IndexCoding(coding);
  res.value.value_coding = ValueCoding(vcoding);
  size_t payload = 0;
  switch (ValueCoding(vcoding)) {
    case ValueCoding::Fp32: payload = size_t(nnz) * 4; break;
    case ValueCoding::Fp16: payload = size_t(nnz) * 2; break;
    case ValueCoding::Int8: payload = size_t(nnz) + 4; break;
    case ValueCoding::Sign: payload = (size_t(nnz) + kSignBlock - 1) / kSignBlock * 2 + (size_t(nnz) + 7) / 8; break;
  }
  if (r.remaining() < index_len || r.remaining() - index_len < payload)
    return fail(DecodeError::Truncated, "index or value section cut short");
  if (r.remaining() - index_len > payload)
    return fail(DecodeError::TrailingBytes, "bytes after the value section");

  SparseVector& s = res.value.update;
  s.dim = dim;
  ByteReader idx_reader(nullptr, 0);
  r.sub(index_len, idx_reader);
  if (auto e = decode_indices(idx_reader, IndexCoding(coding), rice_k, dim, nnz, s.index);
      e != DecodeError::None)
    return fail(e, std::string("index section: ") + decode_error_name(e));

  s.value.resize(nnz);
  switch (ValueCoding(vcoding)) {
    case ValueCoding::Fp32:
      r.bytes(s.value.data(), size_t(nnz) * 4);
      break;
    case ValueCoding::Fp16:
      for (uint32_t i = 0; i < nnz; ++i) {
        uint16_t bits = 0;
        r.get(bits);
        s.value[i] = float(c10::Half(bits, c10::Half::from_bits()));
      }
      break;
    case ValueCoding::Int8: {
      float scale = 0.0f;
      r.get(scale);
      if (!std::isfinite(scale) || scale < 0.0f)
        return fail(DecodeError::NonFinite, "int8 scale not finite and non-negative");
      for (uint32_t i = 0; i < nnz; ++i) {
        int8_t q = 0;
        r.get(q);
        s.value[i] = float(q) * scale;
      }
      break;
    }
    case ValueCoding::Sign: {
      std::vector<float> mags((size_t(nnz) + kSignBlock - 1) / kSignBlock);
      for (float& m : mags) {
        uint16_t bits = 0;
        r.get(bits);
        m = float(c10::Half(bits, c10::Half::from_bits()));
        if (!std::isfinite(m) || std::signbit(m)) return fail(DecodeError::NonFinite, "sign block magnitude not finite and non-negative");
      }
      std::vector<uint8_t> signs((size_t(nnz) + 7) / 8);
      r.bytes(signs.data(), signs.size());
      for (uint32_t i = 0; i < nnz; ++i) {
        const float m = mags[i / kSignBlock];
        s.value[i] = (signs[i / 8] >> (i % 8)) & 1u ? -m : m;
      }
      break;
    }
  }
  for (float v : s.value)
    if (!std::isfinite(v)) return fail(DecodeError::NonFinite, "NaN or Inf value");
  return res;
}

}  // namespace swarmlens
