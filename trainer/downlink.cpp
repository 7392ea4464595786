#include "downlink.h"

#include <c10/util/Half.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

namespace swarmlens {

namespace {
constexpr float kFp16Max = 65504.0f;

uint16_t half_bits(float v) { return c10::Half(v).x; }
float from_half_bits(uint16_t bits) { return float(c10::Half(bits, c10::Half::from_bits())); }
}  // namespace

float fp16_grid(float v) {
  const float g = from_half_bits(half_bits(std::clamp(v, -kFp16Max, kFp16Max)));
  return g == 0.0f ? 0.0f : g;  // -0 as +0
}

bool on_fp16_grid(float v) { return std::isfinite(v) && std::fabs(v) <= kFp16Max && from_half_bits(half_bits(v)) == v; }

int32_t fp16_ordinal(float v) {
  const uint16_t b = half_bits(v);
  return (b & 0x8000) ? -int32_t(b & 0x7fff) : int32_t(b);
}

float from_fp16_ordinal(int32_t o) { return o < 0 ? from_half_bits(uint16_t(0x8000 | -o)) : from_half_bits(uint16_t(o)); }

DownlinkEncoder::DownlinkEncoder(DownlinkConfig cfg) : cfg_(cfg) {
  if (!(cfg_.density > 0.0 && cfg_.density <= 1.0))
    throw std::invalid_argument("downlink density " + std::to_string(cfg_.density) + " is outside (0, 1]");
}

void DownlinkEncoder::reset(const std::vector<float>& server) {
  published_.resize(server.size());
  std::transform(server.begin(), server.end(), published_.begin(), fp16_grid);
}

void DownlinkEncoder::adopt(std::vector<float> published) {
  for (size_t i = 0; i < published.size(); ++i)
    if (!on_fp16_grid(published[i]))
      throw std::invalid_argument("the model to continue from is not on the fp16 grid (parameter " + std::to_string(i) + ")");
  published_ = std::move(published);
}

void DownlinkEncoder::next(const std::vector<float>& server, std::vector<uint32_t>& index, std::vector<int32_t>& step) {
  if (server.size() != published_.size()) throw std::invalid_argument("downlink: the server model changed size");
  candidates_.clear();
  for (uint32_t i = 0; i < uint32_t(server.size()); ++i)
    if (fp16_grid(server[i]) != published_[i]) candidates_.emplace_back(std::fabs(server[i] - published_[i]), i);
  const size_t k = size_t(std::ceil(cfg_.density * double(server.size())));
  if (candidates_.size() > k) {
    std::nth_element(candidates_.begin(), candidates_.begin() + std::ptrdiff_t(k), candidates_.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); });
    candidates_.resize(k);
  }
  index.resize(candidates_.size());
  std::transform(candidates_.begin(), candidates_.end(), index.begin(), [](const auto& c) { return c.second; });
  std::sort(index.begin(), index.end());
  step.resize(index.size());
  for (size_t j = 0; j < index.size(); ++j) {
    const uint32_t i = index[j];
    const int32_t from = fp16_ordinal(published_[i]);
    step[j] = fp16_ordinal(fp16_grid(server[i])) - from;
    published_[i] = from_fp16_ordinal(from + step[j]);  // as a node computes it
  }
}

void DownlinkEncoder::revert(const std::vector<uint32_t>& index, const std::vector<int32_t>& step) {
  for (size_t j = 0; j < index.size() && j < step.size(); ++j)
    published_[index[j]] = from_fp16_ordinal(fp16_ordinal(published_[index[j]]) - step[j]);
}

double DownlinkEncoder::residual_norm(const std::vector<float>& server) const {
  double s = 0.0;
  for (size_t i = 0; i < server.size() && i < published_.size(); ++i) {
    const double d = double(server[i]) - double(published_[i]);
    s += d * d;
  }
  return std::sqrt(s);
}

}  // namespace swarmlens
