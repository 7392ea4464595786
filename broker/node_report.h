// A payload of swarmlens.<model>.metrics as the broker reads it: hostile until checked. Both readers
// (NodeAccuracy, NodeBoard) start here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

namespace swarmlens {

enum class ReportKind { Node, NotNode, Malformed };

// Malformed: larger than max_bytes, or not a JSON object. NotNode: another source's (the broker's
// own metrics). Node: `out` holds it.
inline ReportKind parse_node_report(const uint8_t* data, size_t size, size_t max_bytes, nlohmann::json& out) {
  if (size > max_bytes) return ReportKind::Malformed;
  out = nlohmann::json::parse(data, data + size, nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded() || !out.is_object()) return ReportKind::Malformed;
  const auto source = out.find("source");
  return source != out.end() && *source == "node" ? ReportKind::Node : ReportKind::NotNode;
}

}  // namespace swarmlens
