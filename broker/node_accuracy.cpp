#include "node_accuracy.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "node_report.h"
#include "node_trainer.h"

namespace swarmlens {

NodeAccuracy::Take NodeAccuracy::take(const uint8_t* data, size_t size, Clock::time_point now) {
  auto refuse = [&] {
    std::lock_guard<std::mutex> g(lock_);
    ++refused_;
    return Take::Refused;
  };
  nlohmann::json j;
  const ReportKind kind = parse_node_report(data, size, kMaxReportBytes, j);
  if (kind == ReportKind::Malformed) return refuse();
  if (kind == ReportKind::NotNode) return Take::NotHoldout;
  const auto acc = j.find("holdout_accuracy");
  if (acc == j.end()) return Take::NotHoldout;
  const auto node = j.find("node"), samples = j.find("holdout_samples");
  if (!acc->is_number() || node == j.end() || !node->is_number_unsigned() || samples == j.end() ||
      !samples->is_number_unsigned())
    return refuse();
  const double a = acc->get<double>();
  const uint64_t n = samples->get<uint64_t>(), id = node->get<uint64_t>();
  if (!std::isfinite(a) || a < 0.0 || a > 1.0 || n == 0 || n > NodeTrainerConfig::kHoldoutWindow || id > UINT32_MAX)
    return refuse();
  std::lock_guard<std::mutex> g(lock_);
  const auto it = nodes_.find(uint32_t(id));
  if (it == nodes_.end() && nodes_.size() >= kMaxNodes) {
    ++refused_;
    return Take::Refused;
  }
  nodes_[uint32_t(id)] = {a, n, now};
  return Take::Used;
}

NodeAccuracy::Summary NodeAccuracy::summary(Clock::time_point now) {
  std::lock_guard<std::mutex> g(lock_);
  Summary s;
  double weighted = 0.0;
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (now - it->second.at > max_age_) {
      it = nodes_.erase(it);
      continue;
    }
    weighted += it->second.accuracy * double(it->second.samples);
    s.samples += it->second.samples;
    ++s.nodes;
    ++it;
  }
  if (s.samples) s.accuracy = weighted / double(s.samples);
  return s;
}

uint64_t NodeAccuracy::refused() const {
  std::lock_guard<std::mutex> g(lock_);
  return refused_;
}

}  // namespace swarmlens
