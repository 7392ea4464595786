#include "framing.h"

#include <zlib.h>

#include <cstring>

namespace swarmlens {

uint32_t crc32_of(const uint8_t* data, size_t size) { return uint32_t(crc32(0L, data, uInt(size))); }

void begin_frame(std::vector<uint8_t>& out, const Magic& magic, uint8_t version) {
  ByteWriter w(out);
  w.bytes(magic, 4);
  w.put<uint8_t>(version);
}

void end_frame(std::vector<uint8_t>& out) { ByteWriter(out).put<uint32_t>(crc32_of(out.data(), out.size())); }

bool has_magic(const uint8_t* data, size_t size, const Magic& magic) {
  return size >= 4 && std::memcmp(data, magic, 4) == 0;
}

FrameCheck check_frame(const uint8_t* data, size_t size, const Magic& magic, uint8_t version, size_t min_body) {
  FrameCheck c;
  if (size < 4) c.error = FrameError::Truncated;
  else if (!has_magic(data, size, magic)) c.error = FrameError::BadMagic;
  else if (size < 5) c.error = FrameError::Truncated;
  else if ((c.version = data[4]) != version) c.error = FrameError::BadVersion;
  else if (size < 5 + min_body + 4) c.error = FrameError::Truncated;
  if (!c.ok()) return c;
  uint32_t crc = 0;
  std::memcpy(&crc, data + size - 4, 4);
  if (crc != crc32_of(data, size - 4)) c.error = FrameError::BadChecksum;
  else c.body = ByteReader(data + 5, size - 9);
  return c;
}

}  // namespace swarmlens
