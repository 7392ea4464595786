#include <catch2/catch.hpp>

#include <numeric>

#include "chunks.h"

using namespace swarmlens;

namespace {
std::vector<uint8_t> bytes(size_t n, uint8_t start) {
  std::vector<uint8_t> v(n);
  std::iota(v.begin(), v.end(), start);
  return v;
}
}  // namespace

TEST_CASE("chunk header round trip and chunks_rejects_malformed_headers", "[chunks]") {
  ChunkInfo c{42, 1, 3, 1000};
  auto p = ChunkInfo::parse(c.to_header());
  REQUIRE(p);
  CHECK(p->id == 42);
  CHECK(p->index == 1);
  CHECK(p->count == 3);
  CHECK(p->total == 1000);
  CHECK_FALSE(ChunkInfo::parse("42 3 3 1000"));  // index not below count
  CHECK_FALSE(ChunkInfo::parse("42 0 0 1000"));  // no chunks
  CHECK_FALSE(ChunkInfo::parse("42 0 3"));
  CHECK_FALSE(ChunkInfo::parse("42 0 3 1000 extra"));
  CHECK_FALSE(ChunkInfo::parse("x y z w"));
}

TEST_CASE("chunks reassemble in any order", "[chunks]") {
  ChunkAssembler a;
  const auto p0 = bytes(4, 0), p1 = bytes(4, 4), p2 = bytes(2, 8);
  CHECK_FALSE(a.add({7, 2, 3, 10}, p2.data(), p2.size()).payload);
  CHECK_FALSE(a.add({7, 0, 3, 10}, p0.data(), p0.size()).payload);
  auto r = a.add({7, 1, 3, 10}, p1.data(), p1.size());
  REQUIRE(r.payload);
  CHECK(*r.payload == bytes(10, 0));
  CHECK(r.error.empty());
  CHECK(a.pending() == 0);
}

TEST_CASE("chunks_rejects_inconsistent_duplicate_and_short_payloads", "[chunks][reject]") {
  ChunkAssembler a;
  const auto p = bytes(4, 0);
  a.add({1, 0, 2, 8}, p.data(), p.size());
  auto r = a.add({1, 1, 3, 8}, p.data(), p.size());  // count changed
  CHECK(r.error.find("inconsistent") != std::string::npos);
  CHECK_FALSE(r.payload);
  CHECK(a.pending() == 0);  // dropped whole, never half-delivered

  a.add({2, 0, 2, 8}, p.data(), p.size());
  r = a.add({2, 0, 2, 8}, p.data(), p.size());
  CHECK(r.error.find("duplicate") != std::string::npos);

  a.add({3, 0, 2, 9}, p.data(), p.size());
  r = a.add({3, 1, 2, 9}, p.data(), p.size());  // 8 bytes, 9 announced
  CHECK(r.error.find("short") != std::string::npos);
  CHECK_FALSE(r.payload);

  const auto big = bytes(16, 0);
  r = a.add({4, 0, 2, 8}, big.data(), big.size());  // more than the total
  CHECK(r.error.find("exceed") != std::string::npos);
}

TEST_CASE("chunks_rejects_a_payload_whose_chunks_stop_arriving", "[chunks][reject]") {
  ChunkAssembler a(std::chrono::milliseconds(100));
  const auto p = bytes(4, 0);
  const auto t0 = ChunkAssembler::Clock::now();
  a.add({5, 0, 2, 8}, p.data(), p.size(), t0);
  auto r = a.add({6, 0, 1, 4}, p.data(), p.size(), t0 + std::chrono::milliseconds(500));
  CHECK(r.error.find("missing chunk") != std::string::npos);
  REQUIRE(r.payload);  // the complete one still arrives
  CHECK(a.pending() == 0);
}
