#include "snapshot.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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
#include "framing.h"

namespace swarmlens {

namespace {
constexpr Magic kMagic = {'S', 'W', 'L', 'M'};
constexpr uint8_t kVersion = 1;          // deltas; snapshots without a model description
constexpr uint8_t kDescribedVersion = 2; // snapshots with one
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

std::vector<uint8_t> encode_snapshot(const Snapshot& s) {
  if (s.model.empty() || s.model.size() > 255) throw std::invalid_argument("snapshot: model name");
  const ModelDescription& d = s.description;
  if (d.described() && (uint32_t(d.classes) > kMaxClasses || (!d.class_names.empty() && d.class_names.size() != size_t(d.classes))))
    throw std::invalid_argument("snapshot: class names do not match the class count");
  std::vector<uint8_t> buf;
  begin_frame(buf, kMagic, kDescribedVersion);
  ByteWriter w(buf);
  w.put<uint8_t>(uint8_t(s.model.size()));
  w.bytes(s.model.data(), s.model.size());
  w.put<uint64_t>(s.layout_hash);
  w.put<uint64_t>(s.version);
  w.put<uint64_t>(s.params.size());
  w.bytes(s.params.data(), s.params.size() * sizeof(float));
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
  end_frame(buf);
  return buf;
}

namespace {

// Format 2's model description, after the applied-sequence section.
ModelDescription read_description(ByteReader& r, const std::function<std::runtime_error(const char*)>& bad) {
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
  FrameCheck f = check_frame(data, size, kMagic, kDescribedVersion, 1 + 24);
  if (f.error == FrameError::BadVersion && f.version == kVersion) f = check_frame(data, size, kMagic, kVersion, 1 + 24);
  const bool described = f.ok() && f.version == kDescribedVersion;
  ByteReader r = checked_body(f, what, "snapshot");
  Snapshot s;
  uint8_t name_len = 0;
  uint64_t count = 0;
  if (!r.get(name_len)) throw bad("truncated");
  s.model.resize(name_len);
  if (!r.bytes(s.model.data(), name_len) || !r.get(s.layout_hash) || !r.get(s.version) || !r.get(count))
    throw bad("truncated");
  if (count > r.remaining() / sizeof(float)) throw bad("parameter count does not match the size");
  s.params.resize(count);
  r.bytes(s.params.data(), count * sizeof(float));
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
  d.base_version = base.version;
  d.version = next.version;
  d.dim = uint32_t(next.params.size());
  for (uint32_t i = 0; i < d.dim; ++i) {
    // Bitwise comparison: a changed sign of zero or any changed bit is sent, so the result is exact.
    if (std::memcmp(&base.params[i], &next.params[i], sizeof(float)) != 0) {
      d.index.push_back(i);
      d.value.push_back(next.params[i]);
    }
  }
  d.applied = next.applied;
  return d;
}

std::vector<uint8_t> encode_delta(const ModelDelta& d) {
  std::vector<uint8_t> buf;
  begin_frame(buf, kDeltaMagic, kVersion);
  ByteWriter w(buf);
  w.put<uint64_t>(d.layout_hash);
  w.put<uint64_t>(d.base_version);
  w.put<uint64_t>(d.version);
  w.put<uint32_t>(d.dim);
  w.varint(d.index.size());
  uint32_t prev = 0;
  for (size_t k = 0; k < d.index.size(); ++k) {  // ascending: gaps as varints
    w.varint(k == 0 ? d.index[0] : d.index[k] - prev - 1);
    prev = d.index[k];
  }
  w.bytes(d.value.data(), d.value.size() * sizeof(float));
  w.varint(d.applied.size());
  for (const auto& [node, seq] : d.applied) {
    w.varint(node);
    w.varint(seq);
  }
  end_frame(buf);
  return buf;
}

ModelDelta decode_delta(const uint8_t* data, size_t size, const std::string& what) {
  auto bad = [&](const char* why) { return std::runtime_error(what + ": " + why); };
  ByteReader r = checked_body(check_frame(data, size, kDeltaMagic, kVersion, 28), what, "model delta");
  ModelDelta d;
  uint64_t count = 0;
  if (!r.get(d.layout_hash) || !r.get(d.base_version) || !r.get(d.version) || !r.get(d.dim) || !r.varint(count))
    throw bad("truncated");
  if (d.version <= d.base_version) throw bad("version does not follow its base");
  if (count > d.dim || count > r.remaining()) throw bad("more entries than parameters");
  d.index.resize(count);
  uint64_t pos = 0;
  for (uint64_t k = 0; k < count; ++k) {
    uint64_t gap = 0;
    if (!r.varint(gap)) throw bad("truncated indices");
    pos = k == 0 ? gap : pos + gap + 1;
    if (pos >= d.dim) throw bad("index out of range");
    d.index[k] = uint32_t(pos);
  }
  d.value.resize(count);
  if (!r.bytes(d.value.data(), count * sizeof(float))) throw bad("truncated values");
  for (float v : d.value)
    if (!std::isfinite(v)) throw bad("values hold NaN or Inf");
  uint64_t nodes = 0;
  if (!r.varint(nodes) || nodes > r.remaining()) throw bad("truncated applied-sequence section");
  for (uint64_t i = 0; i < nodes; ++i) {
    uint64_t node = 0, seq = 0;
    if (!r.varint(node) || !r.varint(seq) || node > UINT32_MAX) throw bad("truncated applied-sequence section");
    d.applied[uint32_t(node)] = seq;
  }
  if (r.remaining() != 0) throw bad("trailing bytes");
  return d;
}

Snapshot apply_delta(const Snapshot& base, const ModelDelta& d) {
  if (base.layout_hash != d.layout_hash || base.params.size() != d.dim)
    throw std::runtime_error("model delta is for another model layout");
  if (base.version != d.base_version)
    throw std::runtime_error("model delta is from version " + std::to_string(d.base_version) + ", the model is at " +
                             std::to_string(base.version));
  Snapshot s(base.model, base.layout_hash, d.version, base.params, d.applied);
  s.description = base.description;
  for (size_t k = 0; k < d.index.size(); ++k) s.params[d.index[k]] = d.value[k];
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
