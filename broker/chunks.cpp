#include "chunks.h"

#include <sstream>

namespace swarmlens {

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

ChunkAssembler::Result ChunkAssembler::add(const ChunkInfo& info, const uint8_t* data, size_t size,
                                           Clock::time_point now) {
  Result r;
  for (auto it = partial_.begin(); it != partial_.end();) {  // expire stalled payloads
    if (now - it->second.last > timeout_) {
      r.error = "missing chunk: payload " + std::to_string(it->first) + " got " +
                std::to_string(it->second.received) + " of " + std::to_string(it->second.info.count) +
                " chunks before the timeout";
      it = partial_.erase(it);
    } else {
      ++it;
    }
  }
  auto fail = [&](const std::string& why) {
    partial_.erase(info.id);
    r.error = "inconsistent chunk of payload " + std::to_string(info.id) + ": " + why;
    return r;
  };
  if (info.total > max_total_) return fail("total size over the limit");
  auto it = partial_.find(info.id);
  if (it == partial_.end()) {
    if (partial_.size() >= max_pending_) return fail("too many chunked payloads in flight");
    Partial p;
    p.info = info;
    p.parts.resize(info.count);
    p.have.assign(info.count, false);
    it = partial_.emplace(info.id, std::move(p)).first;
  }
  Partial& p = it->second;
  if (p.info.count != info.count || p.info.total != info.total) return fail("count or total differs");
  if (p.have[info.index]) return fail("duplicate chunk " + std::to_string(info.index));
  p.bytes += size;
  if (p.bytes > info.total) return fail("chunks exceed the announced total");
  p.parts[info.index].assign(data, data + size);
  p.have[info.index] = true;
  p.last = now;
  if (++p.received < p.info.count) return r;
  if (p.bytes != p.info.total) return fail("chunks fall short of the announced total");
  std::vector<uint8_t> out;
  out.reserve(p.bytes);
  for (auto& part : p.parts) out.insert(out.end(), part.begin(), part.end());
  partial_.erase(it);
  r.payload = std::move(out);
  return r;
}

}  // namespace swarmlens
