#include "snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <c10/util/Half.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <stdexcept>

#include "bytes.h"
#include "downlink.h"
#include "int_code.h"
#include "framing.h"

namespace swarmlens {

namespace {
constexpr Magic kMagic = {'S', 'W', 'L', 'M'};
constexpr uint8_t kVersion = 1;          // snapshots without a model description
constexpr uint8_t kDescribedVersion = 2; // snapshots with one
constexpr uint8_t kStreamVersion = 3;    // snapshots with a value type (fp32, fp16) and a chain position
constexpr uint8_t kDeltaVersion = 3;     // deltas: steps along the fp16 grid, gaps and steps in adaptive codes
constexpr uint8_t kDeltaVarintVersion = 2;  // the same with varints: still read (a chain kept from before)
constexpr uint32_t kMaxClasses = 100000;
constexpr size_t kMaxClassName = 255;

// The body of a good frame of `kind` ("snapshot", "model delta"); else a runtime_error naming `what`.
ByteReader checked_body(const FrameCheck& f, const std::string& what, const std::string& kind) {
  auto bad = [&](const std::string& why) { return std::runtime_error(what + ": " + why); };
  if (f.error == FrameError::Truncated || f.error == FrameError::BadMagic) throw bad("not a Swarmlens " + kind);
  if (f.error == FrameError::BadVersion) throw bad("unsupported " + kind + " version");
  if (f.error == FrameError::BadChecksum) throw bad("checksum mismatch (corrupt or truncated)");
  return f.body;
}
}  // namespace

std::vector<uint8_t> encode_snapshot(const Snapshot& s, bool fp16) {
  if (s.model.empty() || s.model.size() > 255) throw std::invalid_argument("snapshot: model name");
  const ModelDescription& d = s.description;
  if (d.described() && (uint32_t(d.classes) > kMaxClasses || (!d.class_names.empty() && d.class_names.size() != size_t(d.classes))))
    throw std::invalid_argument("snapshot: class names do not match the class count");
  std::vector<uint8_t> buf;
  begin_frame(buf, kMagic, kStreamVersion);
  ByteWriter w(buf);
  w.put<uint8_t>(uint8_t(s.model.size()));
  w.bytes(s.model.data(), s.model.size());
  w.put<uint64_t>(s.layout_hash);
  w.put<uint64_t>(s.version);
  w.put<uint64_t>(s.params.size());
  w.put<uint8_t>(fp16 ? 1 : 0);
  if (fp16) {
    for (size_t i = 0; i < s.params.size(); ++i) {
      if (!on_fp16_grid(s.params[i]))
        throw std::invalid_argument("snapshot: parameter " + std::to_string(i) + " is not on the fp16 grid");
      w.put<uint16_t>(c10::Half(s.params[i]).x);
    }
  } else {
    w.bytes(s.params.data(), s.params.size() * sizeof(float));
  }
  w.put<uint32_t>(uint32_t(s.applied.size()));
  for (const auto& [node, seq] : s.applied) {
    w.put<uint32_t>(node);
    w.put<uint64_t>(seq);
  }
  w.put<uint16_t>(uint16_t(d.channels));
  w.put<uint16_t>(uint16_t(d.height));
  w.put<uint16_t>(uint16_t(d.width));
  w.put<uint16_t>(uint16_t(d.window));
  w.put<uint32_t>(uint32_t(d.classes));
  w.put<uint32_t>(uint32_t(d.class_names.size()));
  for (const std::string& n : d.class_names) {
    const size_t len = std::min(n.size(), kMaxClassName);
    w.put<uint8_t>(uint8_t(len));
    w.bytes(n.data(), len);
  }
  w.put<uint64_t>(s.chain_id);
  w.put<uint64_t>(s.chain_offset);
  end_frame(buf);
  return buf;
}

namespace {

// Makes the decoders' error: what was being read, and why it was refused.
using BadInput = std::function<std::runtime_error(const char*)>;

// Format 2's model description, after the applied-sequence section.
ModelDescription read_description(ByteReader& r, const BadInput& bad) {
  ModelDescription d;
  uint16_t c = 0, h = 0, w = 0, win = 0;
  uint32_t classes = 0, names = 0;
  if (!r.get(c) || !r.get(h) || !r.get(w) || !r.get(win) || !r.get(classes) || !r.get(names)) throw bad("truncated model description");
  if (classes > kMaxClasses || (names != 0 && names != classes)) throw bad("class names do not match the class count");
  if (classes != 0 && (c == 0 || h == 0 || w == 0 || win == 0)) throw bad("model description without an input size");
  d.channels = c;
  d.height = h;
  d.width = w;
  d.window = win;
  d.classes = int(classes);
  if (names > r.remaining()) throw bad("truncated class names");
  d.class_names.resize(names);
  for (std::string& n : d.class_names) {
    uint8_t len = 0;
    if (!r.get(len)) throw bad("truncated class names");
    n.resize(len);
    if (!r.bytes(n.data(), len)) throw bad("truncated class names");
  }
  return d;
}

}  // namespace

Snapshot decode_snapshot(const uint8_t* data, size_t size, const std::string& what) {
  auto bad = [&](const char* why) { return std::runtime_error(what + ": " + why); };
  FrameCheck f = check_frame(data, size, kMagic, kStreamVersion, 1 + 24);
  for (uint8_t older : {kDescribedVersion, kVersion})
    if (f.error == FrameError::BadVersion && f.version == older) f = check_frame(data, size, kMagic, older, 1 + 24);
  const bool described = f.ok() && f.version >= kDescribedVersion, streamed = f.ok() && f.version == kStreamVersion;
  ByteReader r = checked_body(f, what, "snapshot");
  Snapshot s;
  uint8_t name_len = 0;
  uint64_t count = 0;
  if (!r.get(name_len)) throw bad("truncated");
  s.model.resize(name_len);
  if (!r.bytes(s.model.data(), name_len) || !r.get(s.layout_hash) || !r.get(s.version) || !r.get(count))
    throw bad("truncated");
  uint8_t value_type = 0;
  if (streamed && (!r.get(value_type) || value_type > 1)) throw bad("unknown parameter type");
  const size_t value_bytes = value_type == 1 ? sizeof(uint16_t) : sizeof(float);
  if (count > r.remaining() / value_bytes) throw bad("parameter count does not match the size");
  s.params.resize(count);
  if (value_type == 1) {
    for (float& v : s.params) {
      uint16_t h = 0;
      r.get(h);
      v = float(c10::Half(h, c10::Half::from_bits()));
    }
  } else {
    r.bytes(s.params.data(), count * sizeof(float));
  }
  uint32_t nodes = 0;
  if (!r.get(nodes) || uint64_t(nodes) * 12 > r.remaining()) throw bad("applied-sequence section does not match the size");
  for (uint32_t i = 0; i < nodes; ++i) {
    uint32_t node = 0;
    uint64_t seq = 0;
    r.get(node);
    r.get(seq);
    s.applied[node] = seq;
  }
  if (described) s.description = read_description(r, [&](const char* why) { return bad(why); });
  if (streamed && (!r.get(s.chain_id) || !r.get(s.chain_offset))) throw bad("truncated chain position");
  if (r.remaining() != 0) throw bad("trailing bytes after the snapshot");
  for (float v : s.params)
    if (!std::isfinite(v)) throw bad("parameters hold NaN or Inf");
  return s;
}

namespace {
constexpr Magic kDeltaMagic = {'S', 'W', 'L', 'D'};
}  // namespace

ModelDelta make_delta(const Snapshot& base, const Snapshot& next) {
  if (base.layout_hash != next.layout_hash || base.params.size() != next.params.size())
    throw std::invalid_argument("delta: snapshots of different layouts");
  ModelDelta d;
  d.layout_hash = next.layout_hash;
  d.chain_id = next.chain_id;
  d.base_version = base.version;
  d.version = next.version;
  d.dim = uint32_t(next.params.size());
  for (uint32_t i = 0; i < d.dim; ++i) {
    if (!on_fp16_grid(base.params[i]) || !on_fp16_grid(next.params[i]))
      throw std::invalid_argument("delta: parameter " + std::to_string(i) + " is not on the fp16 grid");
    const int32_t step = fp16_ordinal(next.params[i]) - fp16_ordinal(base.params[i]);
    if (step != 0) {
      d.index.push_back(i);
      d.step.push_back(step);
    }
  }
  d.applied = applied_changes(base.applied, next.applied);
  return d;
}

std::map<uint32_t, uint64_t> applied_changes(const std::map<uint32_t, uint64_t>& base,
                                             const std::map<uint32_t, uint64_t>& next) {
  std::map<uint32_t, uint64_t> changed;
  for (const auto& [node, seq] : next) {
    const auto it = base.find(node);
    if (it == base.end() || it->second != seq) changed[node] = seq;
  }
  return changed;
}

namespace {

// Steps are never zero: zigzag(step) - 1, so +1 -> 1, -1 -> 0, +2 -> 3, -2 -> 2 ...
uint64_t step_code(int32_t step) { return step < 0 ? (uint64_t(-int64_t(step)) << 1) - 2 : (uint64_t(step) << 1) - 1; }
int32_t step_from_code(uint64_t z) { return (z & 1) ? int32_t((z + 1) >> 1) : -int32_t((z + 2) >> 1); }
constexpr uint64_t kMaxStepCode = 4 * uint64_t(kFp16MaxOrdinal);  // |step| <= 2 x the largest ordinal

// The entries, in either format: n gaps (next_gap), each index checked and accumulated, then n
// step codes (next_step).
template <typename NextGap, typename NextStep>
void read_entries(ModelDelta& d, uint64_t count, const BadInput& bad, NextGap next_gap, NextStep next_step) {
  uint64_t pos = 0;
  for (uint64_t k = 0; k < count; ++k) {
    const uint64_t gap = next_gap();
    pos = k == 0 ? gap : pos + gap + 1;
    if (pos >= d.dim) throw bad("index out of range");
    d.index[k] = uint32_t(pos);
  }
  for (uint64_t k = 0; k < count; ++k) d.step[k] = step_from_code(next_step());
}

// Format 2's entries: gaps and zigzag steps (the step code + 1, never 0) as varints.
void read_varint_entries(ByteReader& r, ModelDelta& d, uint64_t count, const BadInput& bad) {
  read_entries(
      d, count, bad,
      [&] {
        uint64_t gap = 0;
        if (!r.varint(gap)) throw bad("truncated indices");
        return gap;
      },
      [&] {
        uint64_t z = 0;
        if (!r.varint(z)) throw bad("truncated steps");
        if (z == 0 || z > kMaxStepCode) throw bad("a step of zero or beyond the fp16 range");
        return z - 1;
      });
}

// Format 3's entries: a byte naming each run's code (int_code.h), the bit section's length, then
// every gap and every step code in those codes.
void read_coded_entries(ByteReader& r, ModelDelta& d, uint64_t count, const BadInput& bad) {
  uint8_t gap_byte = 0, step_byte = 0;
  uint64_t section = 0;
  IntCode gaps, steps;
  if (!r.get(gap_byte) || !r.get(step_byte) || !r.varint(section)) throw bad("truncated entries");
  if (!IntCode::from_byte(gap_byte, gaps) || !IntCode::from_byte(step_byte, steps)) throw bad("unknown entry code");
  ByteReader body(nullptr, 0);
  if (section > r.remaining() || !r.sub(size_t(section), body)) throw bad("truncated entries");
  BitReader bits(body.data(), body.remaining());
  read_entries(
      d, count, bad,
      [&] {
        uint64_t gap = 0;
        if (!gaps.read(bits, d.dim, gap)) throw bad("truncated or out-of-range indices");
        return gap;
      },
      [&] {
        uint64_t z = 0;
        if (!steps.read(bits, kMaxStepCode - 1, z)) throw bad("truncated steps, or a step beyond the fp16 range");
        return z;
      });
  if (bits.remaining() >= 8) throw bad("trailing bytes in the entries");
}

}  // namespace

std::vector<uint8_t> encode_delta(const ModelDelta& d) {
  std::vector<uint8_t> buf;
  begin_frame(buf, kDeltaMagic, kDeltaVersion);
  ByteWriter w(buf);
  for (uint64_t v : {d.layout_hash, d.chain_id, d.base_version, d.version}) w.put<uint64_t>(v);
  w.put<uint32_t>(d.dim);
  for (uint64_t v : {d.offset, d.keyframe_version, d.keyframe_offset, d.keyframe_bytes}) w.put<uint64_t>(v);
  w.varint(d.index.size());
  std::vector<uint64_t> gap(d.index.size()), step(d.step.size());
  for (size_t k = 0; k < d.index.size(); ++k) {  // ascending: the gaps between them
    gap[k] = k == 0 ? d.index[0] : d.index[k] - d.index[k - 1] - 1;
    step[k] = step_code(d.step[k]);
  }
  const IntCode gap_code = best_int_code(gap), step_code_ = best_int_code(step);
  BitWriter bits;
  for (uint64_t v : gap) gap_code.write(bits, v);
  for (uint64_t v : step) step_code_.write(bits, v);
  w.put<uint8_t>(gap_code.byte());
  w.put<uint8_t>(step_code_.byte());
  w.varint(bits.bytes().size());
  buf.insert(buf.end(), bits.bytes().begin(), bits.bytes().end());
  w.varint(d.applied.size());
  for (const auto& [node, seq] : d.applied) {
    w.varint(node);
    w.varint(seq);
  }
  end_frame(buf);
  return buf;
}

ModelDelta decode_delta(const uint8_t* data, size_t size, const std::string& what) {
  const BadInput bad = [&](const char* why) { return std::runtime_error(what + ": " + why); };
  FrameCheck f = check_frame(data, size, kDeltaMagic, kDeltaVersion, 68);
  if (f.error == FrameError::BadVersion && f.version == kDeltaVarintVersion)
    f = check_frame(data, size, kDeltaMagic, kDeltaVarintVersion, 68);
  if (f.error == FrameError::BadVersion && f.version == 1)
    throw bad("a model delta of format 1 (fp32, from a broker before 0.2): this node reads formats 2 and 3");
  ByteReader r = checked_body(f, what, "model delta");
  ModelDelta d;
  uint64_t count = 0;
  if (!r.get(d.layout_hash) || !r.get(d.chain_id) || !r.get(d.base_version) || !r.get(d.version) || !r.get(d.dim) ||
      !r.get(d.offset) || !r.get(d.keyframe_version) || !r.get(d.keyframe_offset) || !r.get(d.keyframe_bytes) ||
      !r.varint(count))
    throw bad("truncated");
  if (d.version <= d.base_version) throw bad("version does not follow its base");
  // Every entry takes at least two bits in either format: a bound on what the count can allocate.
  if (count > d.dim || count > 4 * uint64_t(r.remaining())) throw bad("more entries than parameters");
  d.index.resize(count);
  d.step.resize(count);
  if (f.version == kDeltaVarintVersion) read_varint_entries(r, d, count, bad);
  else read_coded_entries(r, d, count, bad);
  uint64_t nodes = 0;
  if (!r.varint(nodes) || nodes > r.remaining()) throw bad("truncated applied-sequence section");
  for (uint64_t i = 0; i < nodes; ++i) {
    uint64_t node = 0, seq = 0;
    if (!r.varint(node) || !r.varint(seq) || node > UINT32_MAX) throw bad("truncated applied-sequence section");
    d.applied[uint32_t(node)] = seq;
  }
  if (r.remaining() != 0) throw bad("trailing bytes");
  d.bytes = size;
  return d;
}

Snapshot apply_delta(const Snapshot& base, const ModelDelta& d) {
  if (base.layout_hash != d.layout_hash || base.params.size() != d.dim)
    throw std::runtime_error("model delta is for another model layout");
  if (base.chain_id != d.chain_id)
    throw std::runtime_error("model delta is of another chain than the model it would apply to");
  if (base.version != d.base_version)
    throw std::runtime_error("model delta is from version " + std::to_string(d.base_version) + ", the model is at " +
                             std::to_string(base.version));
  Snapshot s(base.model, base.layout_hash, d.version, base.params, base.applied);
  for (const auto& [node, seq] : d.applied) s.applied[node] = seq;
  s.description = base.description;
  s.chain_id = d.chain_id;
  s.chain_offset = d.offset + d.bytes;
  for (size_t k = 0; k < d.index.size(); ++k) {
    float& v = s.params[d.index[k]];
    if (!on_fp16_grid(v)) throw std::runtime_error("model delta applies to a model that is not on the fp16 grid");
    const int64_t to = int64_t(fp16_ordinal(v)) + d.step[k];
    if (to < -kFp16MaxOrdinal || to > kFp16MaxOrdinal) throw std::runtime_error("model delta leads out of the fp16 range");
    v = from_fp16_ordinal(int32_t(to));
  }
  return s;
}

ModelMessage model_message_kind(const uint8_t* data, size_t size) {
  if (has_magic(data, size, kMagic)) return ModelMessage::Snapshot;
  if (has_magic(data, size, kDeltaMagic)) return ModelMessage::Delta;
  return ModelMessage::Unknown;
}

void write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
    f.flush();
    if (!f) throw std::runtime_error(tmp + ": write failed: " + std::strerror(errno));
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error(path + ": rename failed: " + std::strerror(errno));
}

void check_writable(const std::string& path, const std::string& what) {
  const auto fail = [&](const std::string& why) { throw std::runtime_error("cannot write " + what + " " + path + ": " + why); };
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) fail("it is a folder");
  const std::string tmp = path + ".tmp";
  // The temporary file write_file_atomically renames: made and removed again (one left over by a
  // crash is only opened, and stays).
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  const bool made = fd >= 0;
  if (!made && errno == EEXIST) fd = ::open(tmp.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail(std::strerror(errno));
  ::close(fd);
  if (made) ::unlink(tmp.c_str());
}

std::optional<std::vector<uint8_t>> read_file_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) return std::nullopt;
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), {});
}

void save_snapshot(const std::string& path, const Snapshot& s) { write_file_atomically(path, encode_snapshot(s)); }

Snapshot load_snapshot(const std::string& path) {
  const auto buf = read_file_bytes(path);
  if (!buf) throw std::runtime_error(path + ": cannot open snapshot");
  return decode_snapshot(buf->data(), buf->size(), path);
}

}  // namespace swarmlens
