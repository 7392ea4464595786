// The baselines as one node sees them (trainer/methods.h) and the frame every format shares
// (trainer/framing.h).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "codec.h"
#include "framing.h"
#include "gaussian.h"
#include "methods.h"

using namespace swarmlens;

namespace {

constexpr uint32_t kDim = 2000;

MethodNode node(Method m, uint64_t trigger_age = 0) {
  MethodConfig c;
  c.method = m;
  c.lr = 0.1;
  c.momentum = 0.0;
  c.fedavg_steps = 3;
  c.compression.sparsify.density = 0.01;
  c.compression.sparsify.momentum = 0.0;
  c.compression.trigger.max_age_steps = trigger_age;
  return MethodNode(c, kDim, NodeIdentity{"m", 42, 7});
}

DecodedUpdate decoded(const std::vector<uint8_t>& msg) {
  DecodeOptions o;
  o.layout_hash = 42;
  o.dim = kDim;
  const DecodeResult r = decode_update(msg, o);
  REQUIRE(r.ok());
  return r.value;
}

}  // namespace

TEST_CASE("method names round-trip, and unknown ones are refused", "[methods]") {
  for (Method m : {Method::Dense, Method::TopK, Method::TwoStep, Method::FedAvg}) CHECK(parse_method(method_name(m)) == m);
  CHECK_FALSE(parse_method("sgd"));
}

TEST_CASE("dense sends every gradient entry as fp32, every step, with rising sequences", "[methods]") {
  MethodNode n = node(Method::Dense);
  const std::vector<float> global(kDim, 0.5f), g = gaussian(kDim, 1);
  CHECK(n.weights(global) == global.data());  // trains on the global model itself
  CHECK(n.compressor() == nullptr);
  for (uint64_t step = 1; step <= 3; ++step) {
    const auto msg = n.step(g.data(), 32, 9);
    REQUIRE(msg);
    const DecodedUpdate d = decoded(*msg);
    CHECK(d.header.sequence == step);
    CHECK(d.header.base_version == 9);
    CHECK(d.header.samples == 32);
    CHECK(d.header.node_id == 7);
    REQUIRE(d.update.nnz() == kDim);
    for (uint32_t i = 0; i < kDim; ++i) REQUIRE(d.update.value[i] == g[i]);
  }
}

TEST_CASE("top-k sends its selection every step; two-step holds it until the trigger fires", "[methods]") {
  const std::vector<float> global(kDim, 0.0f);
  MethodNode topk = node(Method::TopK, /*trigger_age ignored:*/ 5), twostep = node(Method::TwoStep, 3);
  REQUIRE(topk.compressor());
  REQUIRE(twostep.compressor());
  int topk_sent = 0, twostep_sent = 0;
  for (uint64_t s = 0; s < 6; ++s) {
    const auto g = gaussian(kDim, 10 + s);
    if (auto m = topk.step(g.data(), 32, 0)) {
      ++topk_sent;
      CHECK(decoded(*m).update.nnz() == kDim / 100);  // the density, no warm-up
    }
    if (auto m = twostep.step(g.data(), 32, 0)) {
      ++twostep_sent;
      CHECK(decoded(*m).header.samples == 3 * 32);  // three steps merged
    }
  }
  CHECK(topk_sent == 6);
  CHECK(twostep_sent == 2);
}

TEST_CASE("FedAvg steps its own weights and sends global - own at the round's end", "[methods]") {
  MethodNode n = node(Method::FedAvg);
  const std::vector<float> global = gaussian(kDim, 3);
  const float* w = n.weights(global);
  CHECK(w != global.data());  // a copy
  std::vector<float> expect = global;
  for (int s = 0; s < 3; ++s) {
    const auto g = gaussian(kDim, 20 + s);
    CHECK_FALSE(n.step(g.data(), 32, 4));  // local steps send nothing
    for (uint32_t i = 0; i < kDim; ++i) expect[i] -= 0.1f * g[i];
  }
  const DecodedUpdate d = decoded(n.end_round(global, 4, 96));
  CHECK(d.header.samples == 96);
  REQUIRE(d.update.nnz() == kDim);
  for (uint32_t i = 0; i < kDim; ++i) REQUIRE(d.update.value[i] == Approx(global[i] - expect[i]).margin(1e-5));
  // The next round starts from the global model it is given.
  const std::vector<float> next(kDim, 2.0f);
  CHECK(n.weights(next)[0] == 2.0f);
  CHECK_THROWS_AS(node(Method::Dense).end_round(global, 0, 1), std::logic_error);
}

TEST_CASE("a frame is refused by the first thing wrong with it", "[framing]") {
  const Magic magic = {'T', 'E', 'S', 'T'};
  std::vector<uint8_t> f;
  begin_frame(f, magic, 3);
  f.insert(f.end(), {1, 2, 3, 4, 5});
  end_frame(f);
  FrameCheck ok = check_frame(f.data(), f.size(), magic, 3, 5);
  REQUIRE(ok.ok());
  CHECK(ok.body.remaining() == 5);
  CHECK(check_frame(f.data(), 3, magic, 3).error == FrameError::Truncated);
  const Magic other = {'T', 'E', 'S', 'X'};
  CHECK(check_frame(f.data(), f.size(), other, 3).error == FrameError::BadMagic);
  FrameCheck v = check_frame(f.data(), f.size(), magic, 4);
  CHECK(v.error == FrameError::BadVersion);
  CHECK(v.version == 3);
  CHECK(check_frame(f.data(), f.size(), magic, 3, 6).error == FrameError::Truncated);  // body shorter than asked
  auto bad = f;
  bad[6] ^= 0x10;
  CHECK(check_frame(bad.data(), bad.size(), magic, 3).error == FrameError::BadChecksum);
  CHECK(has_magic(f.data(), f.size(), magic));
  CHECK_FALSE(has_magic(f.data(), 2, magic));
}
