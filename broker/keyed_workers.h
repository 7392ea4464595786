// Work taken off a NATS delivery thread and spread over a few threads, keyed: everything pushed
// with the same key (a node id) goes to the same thread and is handled in the order it was pushed,
// so each node's updates keep their order while different nodes' updates are decoded side by side.
// Each thread's queue is bounded in bytes: a push into a full one waits (the NATS client's own
// pending limit then bounds, and counts, what piles up behind it).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace swarmlens {

class KeyedWorkers {
 public:
  using Handler = std::function<void(uint64_t key, std::vector<uint8_t>& payload)>;
  // threads >= 1; max_queued_bytes: the bound of all queues together (each gets its share, and
  // always room for one message). The handler must not throw (what it throws is swallowed).
  KeyedWorkers(unsigned threads, size_t max_queued_bytes, Handler handler);
  ~KeyedWorkers();  // stop()
  KeyedWorkers(const KeyedWorkers&) = delete;
  KeyedWorkers& operator=(const KeyedWorkers&) = delete;

  // Queues the message for the key's thread; waits while that queue is full. False once stopping
  // (the message is not handled: its sender was not answered and sends it again).
  bool push(uint64_t key, std::vector<uint8_t> payload);
  // Handles everything already queued, then joins the threads. Idempotent.
  void stop();
  unsigned threads() const { return unsigned(lanes_.size()); }
  uint64_t refused() const;  // pushes after stop

 private:
  struct Item {
    uint64_t key;
    std::vector<uint8_t> payload;
  };
  struct Lane {
    std::mutex m;
    std::condition_variable has_work, has_room;
    std::deque<Item> queue;
    size_t bytes = 0;
    bool stopping = false;
    uint64_t refused = 0;
    std::thread thread;
  };
  void run(Lane& lane);

  Handler handler_;
  size_t lane_bytes_;
  std::vector<std::unique_ptr<Lane>> lanes_;
};

}  // namespace swarmlens
