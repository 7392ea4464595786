#include "int_code.h"

#include <algorithm>
#include <array>

namespace swarmlens {

namespace {

unsigned floor_log2(uint64_t v) { return 63u - unsigned(__builtin_clzll(v)); }  // v > 0

}  // namespace

bool IntCode::from_byte(uint8_t b, IntCode& out) {
  if (b >> 6) return false;
  out.kind = Kind(b >> 5);
  out.k = uint8_t(b & 31u);
  return true;
}

uint64_t IntCode::bits(uint64_t v) const {
  if (kind == Rice) return (v >> k) + 1 + k;
  const unsigned n = floor_log2(v + (uint64_t(1) << k));  // v + 2^k has n + 1 bits
  return 2 * n - k + 1;
}

void IntCode::write(BitWriter& w, uint64_t v) const {
  if (kind == Rice) {
    for (uint64_t q = v >> k; q > 0; --q) w.bit(1);
    w.bit(0);
    w.put(v, k);
    return;
  }
  const uint64_t y = v + (uint64_t(1) << k);
  const unsigned n = floor_log2(y);
  for (unsigned q = n - k; q > 0; --q) w.bit(1);  // the length beyond k, in unary
  w.bit(0);
  w.put(y, n);  // y without its leading 1
}

bool IntCode::read(BitReader& r, uint64_t max, uint64_t& v) const {
  uint64_t q = 0;
  if (kind == Rice) {
    uint64_t low = 0;
    if (!r.unary(q, max >> k) || !r.get(low, k)) return false;
    v = (q << k) | low;
    return v <= max;
  }
  const uint64_t limit = floor_log2(max + (uint64_t(1) << k)) - k;  // the longest a value <= max needs
  uint64_t low = 0;
  if (!r.unary(q, limit) || !r.get(low, unsigned(q + k))) return false;
  v = ((uint64_t(1) << (q + k)) | low) - (uint64_t(1) << k);
  return v <= max;
}

IntCode best_int_code(const std::vector<uint64_t>& values) {
  // Each code's length depends on v only through v >> k (Rice) or floor(log2(v + 2^k)) (exp-Golomb),
  // so one pass for each candidate order is exact; 2 x 32 passes over a delta's entries is cheap
  // next to computing it.
  IntCode best;
  uint64_t best_bits = UINT64_MAX;
  for (IntCode::Kind kind : {IntCode::Rice, IntCode::ExpGolomb}) {
    for (uint8_t k = 0; k < 32; ++k) {
      const IntCode c{kind, k};
      uint64_t total = 0;
      for (uint64_t v : values) {
        total += c.bits(v);
        if (total >= best_bits) break;
      }
      if (total < best_bits) best = c, best_bits = total;
    }
  }
  return best;
}

}  // namespace swarmlens
