// Chunking of payloads larger than the server's max_payload (1 MiB by default on nats-server 2.9).
// A chunked payload travels as `count` messages, each with the header
//   Swarmlens-Chunk: <id> <index> <count> <total_bytes>
// and is reassembled by ChunkAssembler. No NATS here: the link adds and reads the header.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace swarmlens {

inline constexpr const char* kChunkHeader = "Swarmlens-Chunk";

struct ChunkInfo {
  uint64_t id = 0;
  uint32_t index = 0, count = 0;
  uint64_t total = 0;
  std::string to_header() const;
  // Parses a header value; nullopt if malformed or out of bounds.
  static std::optional<ChunkInfo> parse(const std::string& value);
};

// Memory: a payload may announce at most max_total bytes, and the chunks held for unfinished payloads
// add up to at most max_buffered bytes (default: twice max_total); past that the oldest unfinished
// payloads are dropped first, counted and reported. Payloads whose chunks stop arriving are dropped
// after the timeout, by expire() (the link calls it on a timer) or by the next add().
class ChunkAssembler {
 public:
  using Clock = std::chrono::steady_clock;
  explicit ChunkAssembler(std::chrono::milliseconds timeout = std::chrono::seconds(30),
                          size_t max_pending = 64, uint64_t max_total = 256ull << 20, uint64_t max_buffered = 0)
      : timeout_(timeout), max_pending_(max_pending), max_total_(max_total),
        max_buffered_(max_buffered ? max_buffered : 2 * max_total) {}

  struct Result {
    std::optional<std::vector<uint8_t>> payload;  // set when the last chunk arrived
    std::string error;                            // set when chunks were dropped (and why)
  };
  // Adds one chunk. Errors: a chunk that contradicts earlier ones of its id, a duplicate, sizes that
  // do not add up, too many payloads in flight, and (checked on each call) payloads whose chunks
  // stopped arriving for longer than the timeout ("missing chunk").
  Result add(const ChunkInfo& info, const uint8_t* data, size_t size, Clock::time_point now = Clock::now());
  // Drops the payloads stalled past the timeout; "" or what was dropped.
  std::string expire(Clock::time_point now = Clock::now());
  size_t pending() const { return partial_.size(); }
  uint64_t buffered_bytes() const { return buffered_; }
  uint64_t dropped() const { return dropped_; }  // unfinished payloads dropped, for any reason

 private:
  struct Partial {
    ChunkInfo info;
    std::vector<std::vector<uint8_t>> parts;
    std::vector<bool> have;
    uint32_t received = 0;
    uint64_t bytes = 0;  // held: the chunks' data plus `held` of bookkeeping
    uint64_t held = 0;
    Clock::time_point last;
  };
  std::chrono::milliseconds timeout_;
  size_t max_pending_;
  uint64_t max_total_;
  uint64_t max_buffered_;
  uint64_t buffered_ = 0;  // bytes held in partial_
  uint64_t dropped_ = 0;
  std::map<uint64_t, Partial> partial_;
  void drop(std::map<uint64_t, Partial>::iterator it);
};

}  // namespace swarmlens
