// The downlink: how the aggregator's model reaches the nodes compressed, with error feedback on the
// server side (docs/wire-format.md, "The model stream").
//
// The model the nodes hold (the *published* model) lives on the fp16 grid: every parameter is a
// value fp16 can hold exactly. At each publish the aggregator moves the published model toward its
// own (the *server* model) by the largest differences only, each to the server value rounded to
// fp16, and sends those moves as steps along the grid; everything else stays in the server residual
// (server - published) and goes out in a later publish, when it has grown among the largest. So a
// node's model is exactly the server's model minus the server residual, and the broker and every
// node following the stream hold it bit for bit: both apply the same integer steps to the same
// fp16 values. A snapshot of the published model in fp16 (a keyframe) is lossless.
#pragma once

#include <cstdint>
#include <vector>

namespace swarmlens {

// The fp16 value nearest to v (round to nearest even), clamped to the largest finite fp16 (65504),
// with -0 as +0 (one value per grid point). v must be finite.
float fp16_grid(float v);
// Whether v is a finite fp16 value.
bool on_fp16_grid(float v);
// A grid value's position: monotone in the value, 0 for both zeros, |position| <= kFp16MaxOrdinal.
// v must be on the grid.
int32_t fp16_ordinal(float v);
inline constexpr int32_t kFp16MaxOrdinal = 0x7bff;  // 65504
float from_fp16_ordinal(int32_t ordinal);  // |ordinal| <= kFp16MaxOrdinal

struct DownlinkConfig {
  // Share of the parameters one published delta may move: the largest differences between the
  // server model and the published one. 0.1 (docs/benchmarks.md, "Both directions"): at 0.01 the
  // nodes' view lagged far behind in warm-up (the recurrent model ended 0.7675 against 0.9085, the
  // CNN 0.8948 against 0.8973), and in the steady state a publish moves fewer than 1% anyway.
  static constexpr double kDefaultDownlinkDensity = 0.1;
  double density = kDefaultDownlinkDensity;  // (0, 1]; 1 sends every difference the fp16 grid can carry
};

class DownlinkEncoder {
 public:
  explicit DownlinkEncoder(DownlinkConfig cfg = {});

  // Starts (or restarts) from the server model: the published model becomes it rounded to the grid,
  // as a keyframe carries it.
  void reset(const std::vector<float>& server);
  // Continues from a model the nodes already hold (read back from the stream). Throws
  // std::invalid_argument if a parameter is not on the fp16 grid.
  void adopt(std::vector<float> published);
  // The next delta: at most ceil(density * dim) entries, the largest |server - published| among
  // those whose rounding to the grid moves the published value, as ascending indices and their
  // steps along the grid; the published model moves by them. Both vectors are overwritten.
  void next(const std::vector<float>& server, std::vector<uint32_t>& index, std::vector<int32_t>& step);

  // Undoes the last next() (its index and step), when what it made could not be sent.
  void revert(const std::vector<uint32_t>& index, const std::vector<int32_t>& step);

  const std::vector<float>& published() const { return published_; }
  // L2 norm of server - published: what the nodes do not have yet.
  double residual_norm(const std::vector<float>& server) const;
  double density() const { return cfg_.density; }

 private:
  DownlinkConfig cfg_;
  std::vector<float> published_;
  std::vector<std::pair<float, uint32_t>> candidates_;  // reused between publishes
};

}  // namespace swarmlens
