#include "stream_journal.h"

#include "codec.h"
#include "model_channel.h"

namespace swarmlens {

StreamJournal::StreamJournal(NatsLink& link, const std::string& model_id, int replicas)
    : link_(link), stream_(journal_stream(model_id)), subject_(journal_subject(model_id)) {
  link_.ensure_log_stream(stream_, subject_, replicas);
  DecodeOptions header;
  header.header_only = true;
  link_.log_read(stream_, subject_, [&](uint64_t stream_sequence, std::vector<uint8_t> payload) {
    const DecodeResult h = decode_update(payload, header);
    if (!h.ok()) return;  // not an update: the merge would refuse it anyway
    records_.push_back({stream_sequence, h.value.header.node_id, h.value.header.sequence});
    recovered_.push_back({h.value.header.node_id, h.value.header.sequence, std::move(payload)});
  });
}

void StreamJournal::append(JournalEntry e) {
  std::lock_guard<std::mutex> g(lock_);
  const uint64_t seq = link_.log_append(subject_, e.payload);
  records_.push_back({seq, e.node_id, e.sequence});
}

void StreamJournal::compact(const std::map<uint32_t, uint64_t>& applied) {
  std::lock_guard<std::mutex> g(lock_);
  size_t covered = 0;
  for (const Record& r : records_) {
    const auto it = applied.find(r.node_id);
    if (it == applied.end() || it->second < r.sequence) break;
    ++covered;
  }
  if (covered == 0) return;
  const uint64_t below = covered < records_.size() ? records_[covered].stream_sequence
                                                   : records_[covered - 1].stream_sequence + 1;
  link_.log_trim(stream_, below);
  records_.erase(records_.begin(), records_.begin() + long(covered));
}

size_t StreamJournal::size() const {
  std::lock_guard<std::mutex> g(lock_);
  return records_.size();
}

}  // namespace swarmlens
