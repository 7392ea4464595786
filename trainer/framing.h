// One frame for every Swarmlens file and message format: a 4-byte magic naming the format, a
// format version byte, the body, and the CRC-32 (zlib's) of everything before it, little-endian.
// Updates (SWLU), model snapshots (SWLM), model deltas (SWLD) and a node's compressor state (SWLR)
// are frames; the update journal (SWJ1) checks each record with the same CRC-32.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "bytes.h"

namespace swarmlens {

using Magic = char[4];

uint32_t crc32_of(const uint8_t* data, size_t size);

// Writes the magic and the version: the body follows.
void begin_frame(std::vector<uint8_t>& out, const Magic& magic, uint8_t version);
// Appends the CRC-32 of everything in `out`.
void end_frame(std::vector<uint8_t>& out);

enum class FrameError { None, Truncated, BadMagic, BadVersion, BadChecksum };
struct FrameCheck {
  FrameError error = FrameError::None;
  uint8_t version = 0;  // as found (with BadVersion: the unsupported one)
  ByteReader body{nullptr, 0};  // between the version and the CRC, when error is None
  bool ok() const { return error == FrameError::None; }
};
// Checks, in this order: the magic (Truncated if shorter than it, BadMagic), the version (Truncated
// if absent, BadVersion), a frame at least `min_body` bytes long (Truncated), the CRC (BadChecksum).
FrameCheck check_frame(const uint8_t* data, size_t size, const Magic& magic, uint8_t version, size_t min_body = 0);
// Whether `data` starts with `magic`.
bool has_magic(const uint8_t* data, size_t size, const Magic& magic);

}  // namespace swarmlens
