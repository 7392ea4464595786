// libFuzzer target: chunk reassembly (broker/chunks.h), fed what arrives from NATS: header values
// (text, from any client) and chunk payloads, in any order, over a clock the input moves. It must
// reject or reassemble, never crash or grow without bound; a reassembled payload has the size its
// header promised, and a valid header survives to_header/parse unchanged.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>

#include "chunks.h"

using namespace swarmlens;

namespace {
[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_chunks: invariant broken: %s\n", what);
  std::abort();
}
}  // namespace

// SWARMLENS_FUZZ_SEEDS=DIR: write a valid two-chunk payload (in order, and reversed) there.
extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* dir = std::getenv("SWARMLENS_FUZZ_SEEDS");
  if (!dir) return 0;
  const auto record = [](std::string& out, const ChunkInfo& c, size_t n) {
    const std::string h = c.to_header();
    out += char(h.size());
    out += h;
    out += char(n & 0xff);
    out += char(n >> 8);
    out += std::string(n, 'x');
    out += char(1);
  };
  std::string in_order, reversed;
  record(in_order, ChunkInfo{77, 0, 2, 10}, 6);
  record(in_order, ChunkInfo{77, 1, 2, 10}, 4);
  record(reversed, ChunkInfo{78, 1, 2, 10}, 4);
  record(reversed, ChunkInfo{78, 0, 2, 10}, 6);
  std::ofstream(std::string(dir) + "/in-order") << in_order;
  std::ofstream(std::string(dir) + "/reversed") << reversed;
  return 0;
}

// Input: records of [header length (1 byte)][header text][data length (2 bytes)][data][clock step (1 byte)].
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ChunkAssembler assembler(std::chrono::milliseconds(1000), /*max_pending=*/8, /*max_total=*/1 << 16);
  ChunkAssembler::Clock::time_point now{};
  size_t pos = 0;
  while (pos < size) {
    const size_t hlen = data[pos++];
    if (pos + hlen > size) break;
    const std::string header(reinterpret_cast<const char*>(data + pos), hlen);
    pos += hlen;
    if (pos + 2 > size) break;
    size_t dlen = size_t(data[pos]) | size_t(data[pos + 1]) << 8;
    pos += 2;
    if (dlen > size - pos) dlen = size - pos;
    const uint8_t* chunk = data + pos;
    pos += dlen;
    if (pos < size) now += std::chrono::milliseconds(data[pos++] * 10);
    const auto info = ChunkInfo::parse(header);
    if (!info) continue;
    const auto again = ChunkInfo::parse(info->to_header());
    if (!again || again->id != info->id || again->index != info->index || again->count != info->count ||
        again->total != info->total)
      fail("a parsed header does not survive to_header and parse");
    const auto r = assembler.add(*info, chunk, dlen, now);
    if (r.payload && r.payload->size() != info->total) fail("reassembled size differs from the header's total");
    if (assembler.pending() > 8) fail("more payloads in flight than the bound");
  }
  return 0;
}
