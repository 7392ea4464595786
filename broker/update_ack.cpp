#include "update_ack.h"

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

}  // namespace swarmlens
