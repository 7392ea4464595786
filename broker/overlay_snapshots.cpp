#include "overlay_snapshots.h"

#include <algorithm>

namespace swarmlens {

namespace {

std::optional<uint32_t> node_id(const std::string& digits) {
  if (digits.empty() || digits.size() > 10 || digits.find_first_not_of("0123456789") != std::string::npos)
    return std::nullopt;
  const uint64_t n = std::stoull(digits);
  if (n > UINT32_MAX) return std::nullopt;
  return uint32_t(n);
}

}  // namespace

std::optional<uint32_t> OverlaySnapshots::node_of(const std::string& subject) {
  const auto dot = subject.rfind('.');
  if (dot == std::string::npos || dot < 9 || subject.compare(dot - 9, 9, ".snapshot") != 0) return std::nullopt;
  return node_id(subject.substr(dot + 1));
}

std::optional<uint32_t> OverlaySnapshots::node_of_file(const std::string& name) {
  if (name.size() < 5 || name.compare(name.size() - 4, 4, ".jpg") != 0) return std::nullopt;
  return node_id(name.substr(0, name.size() - 4));
}

bool OverlaySnapshots::take(uint32_t node, std::vector<uint8_t> jpeg, double now) {
  std::lock_guard<std::mutex> g(lock_);
  const bool is_jpeg = jpeg.size() >= 4 && jpeg[0] == 0xFF && jpeg[1] == 0xD8 && jpeg[2] == 0xFF;
  const auto it = nodes_.find(node);
  if (jpeg.size() > kMaxBytes || !is_jpeg || (it != nodes_.end() && now - it->second.at < kMinInterval)) {
    ++refused_;
    return false;
  }
  if (it == nodes_.end() && nodes_.size() >= kMaxNodes) {  // the one heard from longest ago makes room
    const auto oldest = std::min_element(nodes_.begin(), nodes_.end(),
                                         [](const auto& a, const auto& b) { return a.second.at < b.second.at; });
    nodes_.erase(oldest);
  }
  nodes_[node] = {std::make_shared<const std::vector<uint8_t>>(std::move(jpeg)), now};
  return true;
}

std::shared_ptr<const std::vector<uint8_t>> OverlaySnapshots::get(uint32_t node) const {
  std::lock_guard<std::mutex> g(lock_);
  const auto it = nodes_.find(node);
  return it == nodes_.end() ? nullptr : it->second.jpeg;
}

std::map<uint32_t, double> OverlaySnapshots::times() const {
  std::lock_guard<std::mutex> g(lock_);
  std::map<uint32_t, double> t;
  for (const auto& [id, k] : nodes_) t[id] = k.at;
  return t;
}

uint64_t OverlaySnapshots::refused() const {
  std::lock_guard<std::mutex> g(lock_);
  return refused_;
}

}  // namespace swarmlens
