#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

#include <zlib.h>

#include "codec.h"

using namespace swarmlens;

namespace {

SparseVector random_sparse(uint32_t dim, double density, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::bernoulli_distribution pick(density);
  std::normal_distribution<float> val(0.0f, 0.01f);
  SparseVector s;
  s.dim = dim;
  for (uint32_t i = 0; i < dim; ++i)
    if (pick(rng)) s.index.push_back(i), s.value.push_back(val(rng));
  return s;
}

UpdateHeader header() {
  UpdateHeader h;
  h.model_id = "cnn-fmnist";
  h.layout_hash = 0x1234567890abcdefull;
  h.base_version = 42;
  h.node_id = 7;
  h.sequence = 9;
  h.samples = 640;
  return h;
}

// Rewrites the trailing CRC-32 after a deliberate edit, so the edit reaches field validation.
void fix_crc(std::vector<uint8_t>& b) {
  const auto c = uint32_t(crc32(crc32(0L, Z_NULL, 0), b.data(), uInt(b.size() - 4)));
  std::memcpy(b.data() + b.size() - 4, &c, 4);
}

// Offset of the index section: magic 4, version 1, codings 2, id length 1 + id, 8+8+4+8+8, dim 4,
// nnz 4, rice 1, index length 4.
size_t index_offset(const std::string& id) { return 4 + 1 + 2 + 1 + id.size() + 36 + 4 + 4 + 1 + 4; }

}  // namespace

TEST_CASE("codec round trip is exact for fp32 with every index coding", "[codec]") {
  const auto s = random_sparse(100000, 0.003, 1);
  for (auto coding : {IndexCoding::Varint, IndexCoding::Rice, IndexCoding::Bitmap}) {
    CodecConfig cfg{coding, ValueCoding::Fp32};
    auto bytes = encode_update(header(), s, cfg);
    auto d = decode_update(bytes);
    INFO(index_coding_name(coding));
    REQUIRE(d.ok());
    CHECK(d.value.index_coding == coding);
    CHECK(d.value.update.index == s.index);
    CHECK(d.value.update.value == s.value);
    CHECK(d.value.header.model_id == "cnn-fmnist");
    CHECK(d.value.header.layout_hash == 0x1234567890abcdefull);
    CHECK(d.value.header.base_version == 42);
    CHECK(d.value.header.node_id == 7);
    CHECK(d.value.header.sequence == 9);
    CHECK(d.value.header.samples == 640);
  }
}

TEST_CASE("codec dense coding carries every entry without indices", "[codec]") {
  std::vector<float> dense(1000);
  for (size_t i = 0; i < dense.size(); ++i) dense[i] = float(i) * 0.5f - 3.0f;
  auto s = from_dense(dense.data(), 1000);
  auto bytes = encode_update(header(), s, {IndexCoding::Dense, ValueCoding::Fp32});
  CHECK(bytes.size() == index_offset("cnn-fmnist") + 4000 + 4);
  auto d = decode_update(bytes);
  REQUIRE(d.ok());
  CHECK(d.value.update.value == dense);
}

TEST_CASE("sign coding: a bit a value and a mean magnitude per block of 64, reported back exactly", "[codec]") {
  const auto s = random_sparse(50000, 0.01, 3);
  std::vector<float> sent;
  const auto bytes = encode_update(header(), s, {IndexCoding::Varint, ValueCoding::Sign}, &sent);
  const auto fp16 = encode_update(header(), s, {IndexCoding::Varint, ValueCoding::Fp16});
  auto d = decode_update(bytes);
  REQUIRE(d.ok());
  CHECK(d.value.value_coding == ValueCoding::Sign);
  REQUIRE(d.value.update.value.size() == s.nnz());
  // The values cost nnz/8 + 2 nnz/64 bytes instead of 2 nnz.
  const size_t nnz = s.nnz();
  CHECK(fp16.size() - bytes.size() == 2 * nnz - ((nnz + 7) / 8 + (nnz + 63) / 64 * 2));
  for (size_t b = 0; b < nnz; b += kSignBlock) {
    const size_t e = std::min(nnz, b + kSignBlock);
    double mean = 0.0;
    for (size_t i = b; i < e; ++i) mean += std::fabs(s.value[i]);
    mean /= double(e - b);
    for (size_t i = b; i < e; ++i) {
      CHECK(d.value.update.value[i] == sent[i]);
      CHECK(std::signbit(d.value.update.value[i]) == std::signbit(s.value[i]));
      CHECK(std::fabs(std::fabs(d.value.update.value[i]) - mean) <= mean * 0.001 + 1e-7);
    }
  }
  // A negative or non-finite magnitude is refused.
  auto bad = bytes;
  const size_t values_at = bad.size() - 4 - ((nnz + 7) / 8 + (nnz + 63) / 64 * 2);
  bad[values_at + 1] = 0xfc;  // fp16 0xfcxx: -Inf or NaN
  const uint32_t crc = crc32(0L, bad.data(), uInt(bad.size() - 4));
  std::memcpy(bad.data() + bad.size() - 4, &crc, 4);
  CHECK(decode_update(bad).error == DecodeError::NonFinite);
}

TEST_CASE("codec fp16 and int8 errors are bounded and reported back exactly", "[codec]") {
  const auto s = random_sparse(50000, 0.01, 2);
  float maxabs = 0.0f;
  for (float v : s.value) maxabs = std::max(maxabs, std::fabs(v));
  for (auto vc : {ValueCoding::Fp16, ValueCoding::Int8}) {
    std::vector<float> sent;
    auto d = decode_update(encode_update(header(), s, {std::nullopt, vc}, &sent));
    REQUIRE(d.ok());
    REQUIRE(d.value.update.value.size() == s.nnz());
    for (size_t i = 0; i < s.nnz(); ++i) {
      CHECK(d.value.update.value[i] == sent[i]);  // the sender knows exactly what arrives
      const float err = std::fabs(d.value.update.value[i] - s.value[i]);
      if (vc == ValueCoding::Fp16)
        CHECK(err <= std::fabs(s.value[i]) * 0.0005f + 1e-7f);  // 11-bit mantissa
      else
        CHECK(err <= maxabs / 127.0f * 0.5f + 1e-9f);  // half a quantisation step
    }
  }
}

TEST_CASE("codec picks Golomb-Rice at 0.1% density and it beats varint", "[codec]") {
  const auto s = random_sparse(420000, 0.001, 3);
  auto automatic = encode_update(header(), s, {std::nullopt, ValueCoding::Fp16});
  auto varint = encode_update(header(), s, {IndexCoding::Varint, ValueCoding::Fp16});
  CHECK(decode_update(automatic).value.index_coding == IndexCoding::Rice);
  const double bits_per_nnz = 8.0 * double(varint.size() - automatic.size()) / double(s.nnz());
  INFO("rice saves " << bits_per_nnz << " bits per entry");
  CHECK(bits_per_nnz > 2.0);
  // Bitmap wins when dense.
  auto dense = random_sparse(10000, 0.3, 4);
  CHECK(decode_update(encode_update(header(), dense, {})).value.index_coding == IndexCoding::Bitmap);
}

TEST_CASE("codec handles the edges: one entry, the last index, an empty update", "[codec]") {
  SparseVector s;
  s.dim = 1u << 20;
  s.index = {s.dim - 1};
  s.value = {1.5f};
  for (auto c : {IndexCoding::Varint, IndexCoding::Rice, IndexCoding::Bitmap}) {
    auto d = decode_update(encode_update(header(), s, {c, ValueCoding::Fp32}));
    REQUIRE(d.ok());
    CHECK(d.value.update.index == s.index);
  }
  SparseVector empty;
  empty.dim = 10;
  CHECK(decode_update(encode_update(header(), empty, {})).ok());
}

TEST_CASE("codec_rejects_truncation_at_every_length", "[codec][reject]") {
  const auto s = random_sparse(5000, 0.02, 5);
  for (auto c : {IndexCoding::Varint, IndexCoding::Rice, IndexCoding::Bitmap}) {
    auto bytes = encode_update(header(), s, {c, ValueCoding::Int8});
    for (size_t n = 0; n < bytes.size(); ++n) {
      auto d = decode_update(bytes.data(), n);
      REQUIRE_FALSE(d.ok());
    }
  }
}

TEST_CASE("codec_rejects_bad_magic_version_checksum", "[codec][reject]") {
  const auto s = random_sparse(1000, 0.05, 6);
  const auto good = encode_update(header(), s, {});
  auto b = good;
  b[0] = 'X';
  CHECK(decode_update(b).error == DecodeError::BadMagic);
  b = good;
  b[4] = 2;
  CHECK(decode_update(b).error == DecodeError::BadVersion);
  b = good;
  b[b.size() / 2] ^= 0x10;
  CHECK(decode_update(b).error == DecodeError::BadChecksum);
  b = good;
  b.push_back(0);
  CHECK_FALSE(decode_update(b).ok());
}

TEST_CASE("codec_rejects_layout_mismatch", "[codec][reject]") {
  const auto s = random_sparse(1000, 0.05, 7);
  const auto bytes = encode_update(header(), s, {});
  DecodeOptions other_hash;
  other_hash.layout_hash = 1;
  CHECK(decode_update(bytes, other_hash).error == DecodeError::LayoutMismatch);
  DecodeOptions other_dim;
  other_dim.dim = 999;
  CHECK(decode_update(bytes, other_dim).error == DecodeError::LayoutMismatch);
  DecodeOptions same;
  same.layout_hash = header().layout_hash;
  same.dim = 1000;
  CHECK(decode_update(bytes, same).ok());
}

TEST_CASE("codec_rejects_indices_out_of_range_or_not_increasing", "[codec][reject]") {
  SparseVector s;
  s.dim = 100;
  s.index = {3, 10, 50};
  s.value = {1, 2, 3};
  auto b = encode_update(header(), s, {IndexCoding::Varint, ValueCoding::Fp32});
  const size_t off = index_offset(header().model_id);
  REQUIRE(b[off] == 3);  // varint deltas 3, 7, 40
  auto bad = b;
  bad[off + 1] = 0;  // delta 0: a repeated index
  fix_crc(bad);
  CHECK(decode_update(bad).error == DecodeError::IndexNotIncreasing);
  bad = b;
  bad[off + 2] = 120;  // 10 + 120 >= 100
  fix_crc(bad);
  CHECK(decode_update(bad).error == DecodeError::IndexOutOfRange);
  // A bitmap with a bit set past dim.
  s.dim = 12;
  s.index = {1, 11};
  s.value = {1, 2};
  b = encode_update(header(), s, {IndexCoding::Bitmap, ValueCoding::Fp32});
  b[index_offset(header().model_id) + 1] |= 0x80;  // bit 15
  fix_crc(b);
  CHECK_FALSE(decode_update(b).ok());
}

TEST_CASE("codec_rejects_nan_and_inf_values", "[codec][reject]") {
  SparseVector s;
  s.dim = 10;
  s.index = {1, 2};
  s.value = {1.0f, 2.0f};
  auto b = encode_update(header(), s, {IndexCoding::Varint, ValueCoding::Fp32});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::memcpy(b.data() + b.size() - 8, &nan, 4);
  fix_crc(b);
  CHECK(decode_update(b).error == DecodeError::NonFinite);
  // The encoder refuses them outright.
  s.value[0] = std::numeric_limits<float>::infinity();
  CHECK_THROWS_AS(encode_update(header(), s, {}), std::invalid_argument);
}

TEST_CASE("codec_rejects_hostile_header_fields", "[codec][reject]") {
  SparseVector s;
  s.dim = 10;
  s.index = {1};
  s.value = {1.0f};
  const auto good = encode_update(header(), s, {IndexCoding::Varint, ValueCoding::Fp32});
  auto b = good;
  b[5] = 9;  // index coding
  fix_crc(b);
  CHECK(decode_update(b).error == DecodeError::BadHeader);
  b = good;
  b[7] = 0;  // model id length
  fix_crc(b);
  CHECK_FALSE(decode_update(b).ok());
  b = good;
  b[8] = '\n';  // model id not printable
  fix_crc(b);
  CHECK(decode_update(b).error == DecodeError::BadHeader);
  // nnz larger than dim
  b = good;
  const size_t nnz_off = index_offset(header().model_id) - 4 - 1 - 4;
  const uint32_t huge = 1000;
  std::memcpy(b.data() + nnz_off, &huge, 4);
  fix_crc(b);
  CHECK(decode_update(b).error == DecodeError::BadHeader);
}

TEST_CASE("codec survives random garbage with a valid checksum", "[codec][reject]") {
  std::mt19937_64 rng(11);
  const auto s = random_sparse(2000, 0.05, 8);
  const auto good = encode_update(header(), s, {IndexCoding::Rice, ValueCoding::Fp16});
  int rejected = 0;
  for (int trial = 0; trial < 2000; ++trial) {
    auto b = good;
    for (int k = 0; k < 3; ++k) b[rng() % (b.size() - 4)] = uint8_t(rng());
    fix_crc(b);
    auto d = decode_update(b);
    if (!d.ok()) {
      ++rejected;
      continue;
    }
    CHECK(d.value.update.well_formed());  // whatever passes is at least well formed
  }
  CHECK(rejected > 0);
}
