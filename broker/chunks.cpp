#include "chunks.h"

#include <sstream>

namespace swarmlens {

namespace {
constexpr uint64_t kPartOverhead = 64;  // bytes a part costs besides its data (vector, flag)
}

std::string ChunkInfo::to_header() const {
  return std::to_string(id) + " " + std::to_string(index) + " " + std::to_string(count) + " " +
         std::to_string(total);
}

std::optional<ChunkInfo> ChunkInfo::parse(const std::string& value) {
  std::istringstream in(value);
  ChunkInfo c;
  if (!(in >> c.id >> c.index >> c.count >> c.total)) return std::nullopt;
  std::string rest;
  if (in >> rest) return std::nullopt;
  if (c.count == 0 || c.count > (1u << 16) || c.index >= c.count) return std::nullopt;
  return c;
}

void ChunkAssembler::drop(std::map<uint64_t, Partial>::iterator it) {
  buffered_ -= it->second.bytes;
  ++dropped_;
  partial_.erase(it);
}

std::string ChunkAssembler::expire(Clock::time_point now) {
  std::string error;
  for (auto it = partial_.begin(); it != partial_.end();) {
    auto next = std::next(it);
    if (now - it->second.last > timeout_) {
      error = "missing chunk: payload " + std::to_string(it->first) + " got " + std::to_string(it->second.received) +
              " of " + std::to_string(it->second.info.count) + " chunks before the timeout";
      drop(it);
    }
    it = next;
  }
  return error;
}

ChunkAssembler::Result ChunkAssembler::add(const ChunkInfo& info, const uint8_t* data, size_t size,
                                           Clock::time_point now) {
  Result r;
  r.error = expire(now);
  auto fail = [&](const std::string& why) {
    if (auto it = partial_.find(info.id); it != partial_.end()) drop(it);
    r.error = "inconsistent chunk of payload " + std::to_string(info.id) + ": " + why;
    return r;
  };
  if (info.total > max_total_) return fail("total size over the limit");
  if (uint64_t(info.count) > std::max<uint64_t>(info.total, 1)) return fail("more chunks than bytes");
  auto it = partial_.find(info.id);
  if (it == partial_.end()) {
    if (partial_.size() >= max_pending_) return fail("too many chunked payloads in flight");
    Partial p;
    p.info = info;
    p.bytes = uint64_t(info.count) * kPartOverhead;  // the bookkeeping of its parts counts too
    p.held = p.bytes;
    buffered_ += p.bytes;
    p.parts.resize(info.count);
    p.have.assign(info.count, false);
    it = partial_.emplace(info.id, std::move(p)).first;
  }
  Partial& p = it->second;
  if (p.info.count != info.count || p.info.total != info.total) return fail("count or total differs");
  if (p.have[info.index]) return fail("duplicate chunk " + std::to_string(info.index));
  if (p.bytes - p.held + size > info.total) return fail("chunks exceed the announced total");
  // Over the memory budget: the unfinished payloads that waited longest go first (not this one).
  while (buffered_ + size > max_buffered_) {
    auto oldest = partial_.end();
    for (auto o = partial_.begin(); o != partial_.end(); ++o)
      if (o != it && (oldest == partial_.end() || o->second.last < oldest->second.last)) oldest = o;
    if (oldest == partial_.end()) return fail("chunked payloads over the memory bound");
    r.error = "memory bound: dropped unfinished payload " + std::to_string(oldest->first) + " (" +
              std::to_string(oldest->second.bytes) + " bytes held)";
    drop(oldest);
  }
  p.bytes += size;
  buffered_ += size;
  p.parts[info.index].assign(data, data + size);
  p.have[info.index] = true;
  p.last = now;
  if (++p.received < p.info.count) return r;
  if (p.bytes - p.held != p.info.total) return fail("chunks fall short of the announced total");
  std::vector<uint8_t> out;
  out.reserve(p.info.total);
  for (auto& part : p.parts) out.insert(out.end(), part.begin(), part.end());
  buffered_ -= p.bytes;
  partial_.erase(it);
  r.payload = std::move(out);
  return r;
}

}  // namespace swarmlens
