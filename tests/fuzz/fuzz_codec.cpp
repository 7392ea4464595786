// libFuzzer target: everything a receiver decodes from the wire (docs/wire-format.md): update
// messages (SWLU), model snapshots (SWLM) and model deltas (SWLD). Decoding must reject or
// succeed, never crash, read out of bounds or overflow (ASan/UBSan); what it accepts must hold its
// invariants and survive a re-encode unchanged.
#include <zlib.h>

#include <cmath>
#include <cstring>
#include <vector>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <string>

#include "codec.h"
#include "downlink.h"
#include "snapshot.h"

using namespace swarmlens;

namespace {

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "fuzz_codec: invariant broken: %s\n", what);
  std::abort();
}

// SWARMLENS_FUZZ_SEEDS=DIR: write valid messages of every coding there, as a starting corpus.
void write_seeds(const std::string& dir) {
  SparseVector u;
  u.dim = 1000;
  for (uint32_t i = 0; i < 1000; i += 7) {
    u.index.push_back(i);
    u.value.push_back(float(i % 13) - 6.5f);
  }
  int n = 0;
  for (auto idx : {IndexCoding::Varint, IndexCoding::Rice, IndexCoding::Bitmap, IndexCoding::Dense}) {
    for (auto val : {ValueCoding::Fp32, ValueCoding::Fp16, ValueCoding::Int8, ValueCoding::Sign}) {
      SparseVector full;  // dense coding carries every entry
      full.dim = 64;
      for (uint32_t i = 0; i < 64; ++i) {
        full.index.push_back(i);
        full.value.push_back(float(i) / 8 - 4);
      }
      const auto msg = encode_update(UpdateHeader{"fuzz", 42, 3, 7, 9, 32}, idx == IndexCoding::Dense ? full : u,
                                     CodecConfig{idx, val});
      std::ofstream(dir + "/update-" + std::to_string(n++)).write(reinterpret_cast<const char*>(msg.data()), long(msg.size()));
    }
  }
  Snapshot s("cnn", 42, 5, std::vector<float>(64, 0.25f), {{1, 3}, {2, 8}});
  const auto snap = encode_snapshot(s);
  std::ofstream(dir + "/snapshot").write(reinterpret_cast<const char*>(snap.data()), long(snap.size()));
  Snapshot t = s;
  t.version = 9;
  t.params[3] = 1.5f;
  const auto delta = encode_delta(make_delta(s, t));
  std::ofstream(dir + "/delta").write(reinterpret_cast<const char*>(delta.data()), long(delta.size()));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  if (const char* dir = std::getenv("SWARMLENS_FUZZ_SEEDS")) write_seeds(dir);
  return 0;
}

void check(const uint8_t* data, size_t size);

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  check(data, size);
  // A mutation almost never keeps the CRC-32 right, which would stop every input at the checksum:
  // decode each input a second time with its checksum made to match, so the parsers behind it are
  // fuzzed too (the update, snapshot and delta formats all end in a CRC-32 of what precedes it).
  if (size >= 9) {
    std::vector<uint8_t> fixed(data, data + size);
    const uint32_t crc = uint32_t(crc32(0L, fixed.data(), uInt(size - 4)));
    std::memcpy(fixed.data() + size - 4, &crc, 4);
    check(fixed.data(), fixed.size());
  }
  return 0;
}

void check(const uint8_t* data, size_t size) {
  DecodeOptions opts;
  opts.max_dim = 1u << 20;  // a receiver's bound on wire-driven allocations
  const DecodeResult r = decode_update(data, size, opts);
  if (r.ok()) {
    const SparseVector& u = r.value.update;
    if (u.index.size() != u.value.size()) fail("index and value counts differ");
    for (size_t i = 0; i < u.index.size(); ++i) {
      if (u.index[i] >= u.dim) fail("index out of range accepted");
      if (i && u.index[i] <= u.index[i - 1]) fail("indices not increasing accepted");
      if (!std::isfinite(u.value[i])) fail("non-finite value accepted");
    }
    // fp32 re-encoding is exact: what was accepted decodes again to the same update.
    const auto again = encode_update(r.value.header, u, CodecConfig{IndexCoding::Varint, ValueCoding::Fp32});
    const DecodeResult r2 = decode_update(again.data(), again.size(), opts);
    if (!r2.ok()) fail("a re-encoded accepted update is rejected");
    if (r2.value.update.index != u.index || r2.value.update.value != u.value) fail("re-encoded update differs");
    if (r2.value.header.sequence != r.value.header.sequence || r2.value.header.model_id != r.value.header.model_id)
      fail("re-encoded header differs");
  } else if (r.detail.empty()) {
    fail("a rejection without a reason");
  }
  try {
    const Snapshot s = decode_snapshot(data, size, "fuzz");
    for (float v : s.params)
      if (!std::isfinite(v)) fail("non-finite snapshot parameter accepted");
  } catch (const std::runtime_error&) {
  }
  try {
    const ModelDelta d = decode_delta(data, size, "fuzz");
    if (d.index.size() != d.step.size()) fail("delta index and step counts differ");
    for (int32_t step : d.step)
      if (step == 0 || step > 2 * kFp16MaxOrdinal || step < -2 * kFp16MaxOrdinal) fail("delta step out of range accepted");
    for (size_t i = 0; i < d.index.size(); ++i) {
      if (d.index[i] >= d.dim) fail("delta index out of range accepted");
      if (i && d.index[i] <= d.index[i - 1]) fail("delta indices not increasing accepted");
    }
  } catch (const std::runtime_error&) {
  }
}
