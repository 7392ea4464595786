#include "stream_journal.h"

#include "codec.h"
#include "model_channel.h"

namespace swarmlens {

StreamJournal::StreamJournal(NatsLink& link, const std::string& model_id, int replicas)
    : link_(link), stream_(journal_stream(model_id)), subject_(journal_subject(model_id)) {
  link_.ensure_log_stream(stream_, subject_, replicas);
  DecodeOptions header;
  header.header_only = true;
  last_ = link_.log_read(stream_, subject_, [&](uint64_t stream_sequence, std::vector<uint8_t> payload) {
    const DecodeResult h = decode_update(payload, header);
    if (!h.ok()) return;  // not an update: the merge would refuse it anyway
    records_.push_back({stream_sequence, h.value.header.node_id, h.value.header.sequence});
    recovered_.push_back({h.value.header.node_id, h.value.header.sequence, std::move(payload)});
  });
  // The fence: from here on, a former writer's appends find another last sequence than theirs. (Not
  // an update: skipped when read; purged with the records before it.)
  static const std::vector<uint8_t> kFence = {'S', 'W', 'F', 'E', 'N', 'C', 'E'};
  last_ = link_.log_append(subject_, kFence, last_);
}

void StreamJournal::append(JournalEntry e) {
  std::lock_guard<std::mutex> g(lock_);
  if (unsure_) {
    const auto [seq, payload] = link_.log_last(stream_);
    if (seq == last_ + 1 && payload == unsure_->payload) {  // the next one, and it: ours, stored
      last_ = seq;
      records_.push_back({seq, unsure_->node_id, unsure_->sequence});
    }
    unsure_.reset();
  }
  try {
    const uint64_t seq = link_.log_append(subject_, e.payload, last_);
    last_ = seq;
    records_.push_back({seq, e.node_id, e.sequence});
  } catch (const NatsError&) {
    unsure_ = std::move(e);
    throw;
  }
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
