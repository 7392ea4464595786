// Little-endian byte and bit streams. Readers are bounds-checked: every read reports failure instead
// of reading past the end, so decoders can treat each byte as hostile.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace swarmlens {

class ByteWriter {
 public:
  explicit ByteWriter(std::vector<uint8_t>& out) : out_(out) {}
  template <typename T>
  void put(T v) {  // integral or float, little-endian host (checked in codec.cpp)
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out_.insert(out_.end(), b, b + sizeof(T));
  }
  void bytes(const void* p, size_t n) {
    if (n == 0) return;  // p may be null (an empty vector's data())
    auto* c = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), c, c + n);
  }
  void varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(uint8_t(v) | 0x80);
      v >>= 7;
    }
    out_.push_back(uint8_t(v));
  }
  size_t size() const { return out_.size(); }

 private:
  std::vector<uint8_t>& out_;
};

class ByteReader {
 public:
  ByteReader(const uint8_t* p, size_t n) : p_(p), n_(n) {}
  template <typename T>
  bool get(T& v) {
    if (n_ - pos_ < sizeof(T)) return false;
    std::memcpy(&v, p_ + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  bool bytes(void* dst, size_t n) {
    if (n_ - pos_ < n) return false;
    if (n == 0) return true;  // dst may be null (an empty vector's data())
    std::memcpy(dst, p_ + pos_, n);
    pos_ += n;
    return true;
  }
  // LEB128, at most 10 bytes and no overflow past 64 bits.
  bool varint(uint64_t& v) {
    v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= n_) return false;
      const uint8_t b = p_[pos_++];
      if (shift == 63 && (b & 0x7e)) return false;
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return true;
    }
    return false;
  }
  // A sub-reader over the next n bytes (and skips them here).
  bool sub(size_t n, ByteReader& out) {
    if (n_ - pos_ < n) return false;
    out = ByteReader(p_ + pos_, n);
    pos_ += n;
    return true;
  }
  size_t pos() const { return pos_; }
  size_t remaining() const { return n_ - pos_; }
  const uint8_t* data() const { return p_ + pos_; }  // the unread bytes

 private:
  const uint8_t* p_;
  size_t n_;
  size_t pos_ = 0;
};

// Bits are written LSB-first within each byte.
class BitWriter {
 public:
  void put(uint64_t v, unsigned bits) {
    for (unsigned i = 0; i < bits; ++i) bit((v >> i) & 1u);
  }
  void bit(unsigned b) {
    if (used_ == 0) buf_.push_back(0);
    if (b) buf_.back() |= uint8_t(1u << used_);
    used_ = (used_ + 1) & 7u;
  }
  const std::vector<uint8_t>& bytes() const { return buf_; }

 private:
  std::vector<uint8_t> buf_;
  unsigned used_ = 0;
};

class BitReader {
 public:
  BitReader(const uint8_t* p, size_t n) : p_(p), nbytes_(n), nbits_(uint64_t(n) * 8) {}
  bool bit(unsigned& b) {
    if (pos_ >= nbits_) return false;
    b = (p_[pos_ >> 3] >> (pos_ & 7u)) & 1u;
    ++pos_;
    return true;
  }
  // `bits` (<= 64) bits, LSB first. Reads a 64-bit window at a time.
  bool get(uint64_t& v, unsigned bits) {
    if (nbits_ - pos_ < bits) return false;
    const unsigned shift = unsigned(pos_ & 7u);
    if (bits + shift <= 64) {
      const uint64_t w = window() >> shift;
      v = bits == 64 ? w : w & ((uint64_t(1) << bits) - 1);
    } else {
      v = 0;
      for (unsigned i = 0; i < bits; ++i) v |= uint64_t((p_[(pos_ + i) >> 3] >> ((pos_ + i) & 7u)) & 1u) << i;
    }
    pos_ += bits;
    return true;
  }
  // A unary count: the number of 1 bits before the next 0 (which is consumed). False if the stream
  // ends first or the count passes max.
  bool unary(uint64_t& q, uint64_t max) {
    q = 0;
    for (;;) {
      if (pos_ >= nbits_) return false;
      const unsigned shift = unsigned(pos_ & 7u);
      const uint64_t valid = std::min<uint64_t>(64 - shift, nbits_ - pos_);
      const uint64_t zeros = ~(window() >> shift);  // a 1 where the stream has a 0
      const uint64_t ones = zeros ? uint64_t(__builtin_ctzll(zeros)) : 64;
      if (ones < valid) {
        q += ones;
        pos_ += ones + 1;
        return q <= max;
      }
      q += valid;
      pos_ += valid;
      if (q > max) return false;
    }
  }
  uint64_t remaining() const { return nbits_ - pos_; }

 private:
  uint64_t window() const {  // the 8 bytes from pos_'s byte, zero past the end
    const size_t at = size_t(pos_ >> 3);
    uint64_t w = 0;
    if (nbytes_ - at >= 8) std::memcpy(&w, p_ + at, 8);  // one load
    else std::memcpy(&w, p_ + at, nbytes_ - at);
    return w;
  }
  const uint8_t* p_;
  size_t nbytes_;
  uint64_t nbits_;
  uint64_t pos_ = 0;
};

}  // namespace swarmlens
