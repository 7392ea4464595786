#include "update_journal.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "bytes.h"
#include "codec.h"
#include "framing.h"
#include "snapshot.h"

namespace swarmlens {
namespace {

constexpr Magic kMagic = {'S', 'W', 'J', '1'};  // no version byte: records follow

// A record: its length, the CRC-32 of the payload (framing.h's), the payload.
void record(std::vector<uint8_t>& out, const std::vector<uint8_t>& payload) {
  ByteWriter w(out);
  w.put<uint32_t>(uint32_t(payload.size()));
  w.put<uint32_t>(crc32_of(payload.data(), payload.size()));
  w.bytes(payload.data(), payload.size());
}

}  // namespace

UpdateJournal::UpdateJournal(std::string path) : path_(std::move(path)) {
  if (auto bytes = read_file_bytes(path_); bytes && !bytes->empty()) {
    const std::vector<uint8_t>& b = *bytes;
    if (!has_magic(b.data(), b.size(), kMagic))
      throw std::runtime_error(path_ + ": not a Swarmlens update journal");
    size_t at = 4;
    DecodeOptions header;
    header.header_only = true;
    ByteReader r(b.data() + at, b.size() - at);
    while (r.remaining() > 0) {
      uint32_t len = 0, crc = 0;
      ByteReader payload(nullptr, 0);
      if (!r.get(len) || !r.get(crc) || !r.sub(len, payload)) break;
      if (crc32_of(payload.data(), len) != crc) break;
      JournalEntry e;
      e.payload.assign(payload.data(), payload.data() + len);
      const DecodeResult d = decode_update(e.payload, header);
      if (!d.ok()) break;  // only accepted updates are written: anything else is damage
      e.node_id = d.value.header.node_id;
      e.sequence = d.value.header.sequence;
      entries_.push_back(std::move(e));
      at += 8 + len;
    }
    dropped_tail_ = at < b.size();
  }
  recovered_ = entries_;
  write_all();  // a clean file (the torn tail gone) to append to
}

UpdateJournal::~UpdateJournal() {
  if (fd_ >= 0) ::close(fd_);
}

void UpdateJournal::write_all() {
  std::vector<uint8_t> bytes(kMagic, kMagic + 4);
  for (const auto& e : entries_) record(bytes, e.payload);
  write_file_atomically(path_, bytes);
  if (fd_ >= 0) ::close(fd_);
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (fd_ < 0) throw std::runtime_error(path_ + ": cannot open the journal: " + std::strerror(errno));
}

void UpdateJournal::append(JournalEntry e) {
  std::vector<uint8_t> bytes;
  record(bytes, e.payload);
  size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error(path_ + ": cannot append to the journal: " + std::strerror(errno));
    done += size_t(n);
  }
  entries_.push_back(std::move(e));
}

void UpdateJournal::compact(const std::map<uint32_t, uint64_t>& applied) {
  std::vector<JournalEntry> keep;
  for (auto& e : entries_) {
    auto it = applied.find(e.node_id);
    if (it == applied.end() || e.sequence > it->second) keep.push_back(std::move(e));
  }
  const bool changed = keep.size() != entries_.size();
  entries_ = std::move(keep);
  if (changed) write_all();
}

}  // namespace swarmlens
