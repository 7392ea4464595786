// The broker's journal of accepted updates: what makes an acknowledgement worth something. Each
// update the aggregator accepts is appended here before the node is told "accepted"; the snapshot
// file holds the model as last published, so after a crash of the broker (kill -9) the
// broker resumes from the snapshot and merges again the journalled updates the snapshot does not
// include (by node id and sequence: the snapshot's applied map). A publish compacts the journal
// down to those updates. Appends are plain writes: they survive the broker process dying (kill -9,
// the OOM killer), not a power cut of the hub before the kernel wrote them out.
//
// File: "SWJ1", then records of [u32 length][u32 CRC-32 of the payload][payload] (little endian).
// A torn or corrupt tail (a crash in the middle of an append) ends the journal: that update was
// never acknowledged, so its node still holds it and sends it again.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace swarmlens {

struct JournalEntry {
  uint32_t node_id = 0;
  uint64_t sequence = 0;
  std::vector<uint8_t> payload;  // the encoded update, as it came
};

// What BrokerService journals accepted updates in: this file, or a replicated JetStream stream
// (stream_journal.h).
class Journal {
 public:
  virtual ~Journal() = default;
  // The records found at open, in order (the caller merges them again).
  virtual const std::vector<JournalEntry>& recovered() const = 0;
  // Appends one accepted update; returns once it is stored. Throws.
  virtual void append(JournalEntry e) = 0;
  // Drops the records that `applied` (node id -> last applied sequence) covers. Throws.
  virtual void compact(const std::map<uint32_t, uint64_t>& applied) = 0;
  // Appends are slow enough (a network round trip) to be made outside the broker's lock.
  virtual bool remote() const { return false; }
};

class UpdateJournal : public Journal {
 public:
  // Opens (creating) the journal at path and reads what it holds. Throws std::runtime_error naming
  // the path.
  explicit UpdateJournal(std::string path);
  ~UpdateJournal() override;
  UpdateJournal(const UpdateJournal&) = delete;
  UpdateJournal& operator=(const UpdateJournal&) = delete;

  // The records found at open, in order (the caller merges them again), and whether a torn or
  // corrupt tail was dropped.
  const std::vector<JournalEntry>& recovered() const override { return recovered_; }
  bool dropped_tail() const { return dropped_tail_; }

  // Appends one accepted update; returns once it is written. Throws.
  void append(JournalEntry e) override;
  // Keeps only the records not in `applied` (node id -> last applied sequence): rewritten
  // atomically. Throws.
  void compact(const std::map<uint32_t, uint64_t>& applied) override;
  size_t size() const { return entries_.size(); }  // records in the file
  const std::string& path() const { return path_; }

 private:
  void write_all();  // entries_ to the file, atomically, then reopen for appending

  std::string path_;
  int fd_ = -1;
  std::vector<JournalEntry> entries_, recovered_;
  bool dropped_tail_ = false;
};

}  // namespace swarmlens
