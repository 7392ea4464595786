#include "update_journal.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "codec.h"
#include "snapshot.h"

namespace swarmlens {
namespace {

constexpr char kMagic[4] = {'S', 'W', 'J', '1'};

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(uint8_t(v >> (8 * i)));
}
uint32_t get_u32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }
uint32_t crc_of(const std::vector<uint8_t>& b) { return uint32_t(crc32(0L, b.data(), uInt(b.size()))); }

void record(std::vector<uint8_t>& out, const std::vector<uint8_t>& payload) {
  put_u32(out, uint32_t(payload.size()));
  put_u32(out, crc_of(payload));
  out.insert(out.end(), payload.begin(), payload.end());
}

}  // namespace

UpdateJournal::UpdateJournal(std::string path) : path_(std::move(path)) {
  if (auto bytes = read_file_bytes(path_); bytes && !bytes->empty()) {
    const std::vector<uint8_t>& b = *bytes;
    if (b.size() < 4 || std::memcmp(b.data(), kMagic, 4) != 0)
      throw std::runtime_error(path_ + ": not a Swarmlens update journal");
    size_t at = 4;
    DecodeOptions header;
    header.header_only = true;
    while (at < b.size()) {
      if (b.size() - at < 8) break;
      const uint32_t len = get_u32(&b[at]), crc = get_u32(&b[at + 4]);
      if (b.size() - at - 8 < len) break;
      JournalEntry e;
      e.payload.assign(b.begin() + long(at + 8), b.begin() + long(at + 8 + len));
      if (crc_of(e.payload) != crc) break;
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
