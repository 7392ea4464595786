// The broker's answer to each update it could read: on swarmlens.<model>.ack.<node id>, a small
// JSON object (docs/wire-format.md):
//   {"node": 3, "seq": 17, "verdict": "accepted", "version": 120, "base_version": 112, "weight": 0.26}
// verdict is "accepted" (merged; journalled when the broker keeps a snapshot), "replayed" (this
// sequence was taken before: a resend whose first copy got through), or the reason it was refused
// (too_stale, non_finite, absurd_norm, layout_mismatch, from_the_future, sequence_jump), or
// "rate_limited": the node sent faster than the broker takes from one node, and should send it again
// later (ReliableUplink does, a second later), or "journal_unavailable": the broker could not journal
// it in JetStream (replicated journal) and did not merge it; sent again likewise. weight is the staleness
// weight it was merged with. Updates that cannot be read (bad magic, checksum, truncated) get no
// answer: their sender is not known.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

namespace swarmlens {

struct UpdateAck {
  uint32_t node = 0;
  uint64_t seq = 0;
  std::string verdict;        // "accepted", "replayed" or a rejection reason
  uint64_t version = 0;       // the model version after taking it
  uint64_t base_version = 0;  // the version the update was computed against
  double weight = 0;          // staleness weight (accepted only)

  // Delivered: merged now or before. Anything else will never be merged.
  bool delivered() const { return verdict == "accepted" || verdict == "replayed"; }
  // Not merged, not refused: to be sent again a little later.
  bool retry_later() const { return verdict == "rate_limited" || verdict == "journal_unavailable"; }
};

inline std::string ack_subject(const std::string& model_id, uint32_t node) {
  return "swarmlens." + model_id + ".ack." + std::to_string(node);
}
std::string encode_ack(const UpdateAck& a);
// What a refusal means to the person running the node, and what to do about it, by verdict.
std::string refusal_help(const std::string& verdict);
// nullopt for anything that is not a well-formed ack.
std::optional<UpdateAck> parse_ack(const std::string& text);

}  // namespace swarmlens
