#include "update_ack.h"

#include <map>

#include <nlohmann/json.hpp>

namespace swarmlens {

std::string encode_ack(const UpdateAck& a) {
  return nlohmann::json{{"node", a.node},       {"seq", a.seq},
                        {"verdict", a.verdict}, {"version", a.version},
                        {"base_version", a.base_version}, {"weight", a.weight}}
      .dump();
}

std::optional<UpdateAck> parse_ack(const std::string& text) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  try {
    UpdateAck a;
    a.node = j.at("node").get<uint32_t>();
    a.seq = j.at("seq").get<uint64_t>();
    a.verdict = j.at("verdict").get<std::string>();
    a.version = j.value("version", uint64_t(0));
    a.base_version = j.value("base_version", uint64_t(0));
    a.weight = j.value("weight", 0.0);
    return a;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;
  }
}

std::string refusal_help(const std::string& verdict) {
  static const std::map<std::string, std::string> help = {
      {"layout_mismatch", "the broker serves another model (name, input size or classes) or model id: give this node "
                          "the broker's model, input size and classes"},
      {"non_finite", "the update held NaN or Inf: the node's training diverged (lower learning-rate)"},
      {"too_stale", "the update was computed on a model too many versions old: the node is slow or was cut off"},
      {"from_the_future", "the update claims a model version the broker has not made: another broker's model, or a restarted broker"},
      {"absurd_norm", "the update's norm is above the broker's ceiling: the node's training diverged"},
      {"sequence_jump", "the update's sequence number jumped far ahead of the node's last: the node's clock or state is off"},
  };
  const auto h = help.find(verdict);
  return h != help.end() ? h->second : "refused by the broker (docs/wire-format.md lists the verdicts)";
}

}  // namespace swarmlens
