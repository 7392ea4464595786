#include "node_board.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "node_report.h"

namespace swarmlens {

namespace {

// A count the node claims: absent is 0; present, a non-negative integer.
bool read_count(const nlohmann::json& j, const char* key, uint64_t& out) {
  const auto it = j.find(key);
  if (it == j.end()) return true;
  if (!it->is_number_unsigned()) return false;
  out = it->get<uint64_t>();
  return true;
}

}  // namespace

NodeBoard::Take NodeBoard::take(const uint8_t* data, size_t size, double now) {
  auto refuse = [&] {
    std::lock_guard<std::mutex> g(lock_);
    ++refused_;
    return Take::Refused;
  };
  nlohmann::json j;
  const ReportKind kind = parse_node_report(data, size, kMaxReportBytes, j);
  if (kind == ReportKind::Malformed) return refuse();
  if (kind == ReportKind::NotNode) return Take::NotNode;
  const auto node = j.find("node"), state = j.find("state");
  if (node == j.end() || !node->is_number_unsigned() || node->get<uint64_t>() > UINT32_MAX) return refuse();
  NodeReport r;
  if (state == j.end() || !state->is_string()) return refuse();
  r.state = state->get<std::string>();
  if (r.state != "training" && r.state != "paused-load" && r.state != "outside-schedule" && r.state != "diverged")
    return refuse();
  uint64_t samples = 0, dropped = 0;
  if (!read_count(j, "steps", r.steps) || !read_count(j, "samples", samples) || !read_count(j, "dropped", dropped) ||
      !read_count(j, "skipped_batches", r.skipped_batches) || !read_count(j, "bytes_sent", r.bytes_up) ||
      !read_count(j, "bytes_in", r.bytes_down) || !read_count(j, "model_version", r.model_version) ||
      !read_count(j, "updates_delivered", r.updates_delivered) || !read_count(j, "updates_refused", r.updates_refused))
    return refuse();
  r.frames = samples + dropped;
  if (const auto acc = j.find("holdout_accuracy"); acc != j.end()) {
    if (!acc->is_number() || !std::isfinite(acc->get<double>()) || acc->get<double>() < 0 || acc->get<double>() > 1)
      return refuse();
    r.holdout_accuracy = acc->get<double>();
  }
  r.seen = now;
  std::lock_guard<std::mutex> g(lock_);
  const uint32_t id = uint32_t(node->get<uint64_t>());
  const auto it = nodes_.find(id);
  if (it == nodes_.end() && nodes_.size() >= kMaxNodes) {
    ++refused_;
    return Take::Refused;
  }
  nodes_[id] = std::move(r);
  return Take::Used;
}

std::map<uint32_t, NodeReport> NodeBoard::nodes() const {
  std::lock_guard<std::mutex> g(lock_);
  return nodes_;
}

uint64_t NodeBoard::refused() const {
  std::lock_guard<std::mutex> g(lock_);
  return refused_;
}

}  // namespace swarmlens
