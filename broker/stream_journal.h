// The update journal in a JetStream stream (swarmlens.<model>.journal, kept in SWARMLENS_<MODEL>_JOURNAL
// with the model streams' replicas), for brokers that stand in for each other: whichever broker
// holds the lease journals there, and a standby on another machine that takes over reads it back
// and merges again what the server checkpoint it resumes from does not hold. Each record is the
// update as it came (its header names the node and sequence); appends are one at a time (the stream
// sequences stay in order, which compaction relies on) and return once the stream has the record.
// Compaction purges the stream below the first record the checkpoint does not cover.
//
// Fencing: a journal opened by the broker that took the lease appends a fence record at once, and
// every append expects the stream's last sequence to be the one this journal wrote last. A broker
// that lost its lease while it was frozen or cut off, and wakes with updates still queued, finds
// its appends refused (NatsError): it merges and answers none of them, so their nodes send them
// again to the broker that serves now.
#pragma once

#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <string>

#include "nats_link.h"
#include "update_journal.h"

namespace swarmlens {

class StreamJournal : public Journal {
 public:
  // Makes the stream if it is missing, reads what it holds and appends the fence. Throws NatsError.
  StreamJournal(NatsLink& link, const std::string& model_id, int replicas);

  const std::vector<JournalEntry>& recovered() const override { return recovered_; }
  void append(JournalEntry e) override;
  void compact(const std::map<uint32_t, uint64_t>& applied) override;
  bool remote() const override { return true; }
  size_t size() const;  // records since the last compaction

 private:
  struct Record {
    uint64_t stream_sequence;
    uint32_t node_id;
    uint64_t sequence;
  };
  NatsLink& link_;
  std::string stream_, subject_;
  std::vector<JournalEntry> recovered_;
  mutable std::mutex lock_;
  std::deque<Record> records_;  // in stream order: what the stream holds
  uint64_t last_ = 0;           // the stream's last sequence, as this journal wrote it
  // An append that failed may still have been stored (its acknowledgement lost when a server went
  // away): before the next one the stream's last message is read, and if it is that append, it
  // counts as this journal's. Anything else there is another writer's: appends stay refused.
  std::optional<JournalEntry> unsure_;
};

}  // namespace swarmlens
