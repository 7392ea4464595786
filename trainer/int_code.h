// Adaptive codes for runs of small non-negative integers (index gaps, steps along a grid): each run
// is written with the Golomb-Rice code or the exponential-Golomb code of some order k, whichever of
// them makes it shortest for these very values (exact sizes, not estimates). Rice is the better code
// for geometric values (the gaps between randomly placed entries); exp-Golomb costs a little more
// for those but keeps a heavy tail cheap (a few large values among many small ones).
#pragma once

#include <cstdint>
#include <vector>

#include "bytes.h"

namespace swarmlens {

struct IntCode {
  enum Kind : uint8_t { Rice = 0, ExpGolomb = 1 };
  Kind kind = Rice;
  uint8_t k = 0;  // order, 0..31

  // One byte on the wire: the kind in bit 5, k below it. False if the byte names no code.
  uint8_t byte() const { return uint8_t((kind << 5) | k); }
  static bool from_byte(uint8_t b, IntCode& out);

  uint64_t bits(uint64_t v) const;  // the length of v's codeword
  void write(BitWriter& w, uint64_t v) const;
  // One value; false if the stream ends first or the value would pass `max`.
  bool read(BitReader& r, uint64_t max, uint64_t& v) const;
};

// The code that writes `values` in the fewest bits.
IntCode best_int_code(const std::vector<uint64_t>& values);

}  // namespace swarmlens
