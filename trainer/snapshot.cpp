#include "snapshot.h"

#include <zlib.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include "bytes.h"

namespace swarmlens {

namespace {
constexpr uint8_t kMagic[4] = {'S', 'W', 'L', 'M'};
constexpr uint8_t kVersion = 1;
}  // namespace

std::vector<uint8_t> encode_snapshot(const Snapshot& s) {
  if (s.model.empty() || s.model.size() > 255) throw std::invalid_argument("snapshot: model name");
  std::vector<uint8_t> buf;
  ByteWriter w(buf);
  w.bytes(kMagic, 4);
  w.put<uint8_t>(kVersion);
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
  w.put<uint32_t>(uint32_t(crc32(crc32(0L, Z_NULL, 0), buf.data(), uInt(buf.size()))));
  return buf;
}

Snapshot decode_snapshot(const uint8_t* data, size_t size, const std::string& what) {
  auto bad = [&](const char* why) { return std::runtime_error(what + ": " + why); };
  if (size < 4 + 1 + 1 + 24 + 4 || !std::equal(kMagic, kMagic + 4, data)) throw bad("not a Swarmlens snapshot");
  if (data[4] != kVersion) throw bad("unsupported snapshot version");
  uint32_t crc = 0;
  std::memcpy(&crc, data + size - 4, 4);
  if (crc != uint32_t(crc32(crc32(0L, Z_NULL, 0), data, uInt(size - 4))))
    throw bad("checksum mismatch (corrupt or truncated)");
  ByteReader r(data + 5, size - 9);
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
  if (!r.get(nodes) || uint64_t(nodes) * 12 != r.remaining()) throw bad("applied-sequence section does not match the size");
  for (uint32_t i = 0; i < nodes; ++i) {
    uint32_t node = 0;
    uint64_t seq = 0;
    r.get(node);
    r.get(seq);
    s.applied[node] = seq;
  }
  for (float v : s.params)
    if (!std::isfinite(v)) throw bad("parameters hold NaN or Inf");
  return s;
}

void save_snapshot(const std::string& path, const Snapshot& s) {
  const auto buf = encode_snapshot(s);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(buf.data()), std::streamsize(buf.size()));
    f.flush();
    if (!f) throw std::runtime_error(tmp + ": write failed");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0)
    throw std::runtime_error(path + ": rename failed: " + std::strerror(errno));
}

Snapshot load_snapshot(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw std::runtime_error(path + ": cannot open snapshot");
  const std::vector<uint8_t> buf((std::istreambuf_iterator<char>(f)), {});
  return decode_snapshot(buf.data(), buf.size(), path);
}

}  // namespace swarmlens
