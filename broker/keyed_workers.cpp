#include "keyed_workers.h"

#include <stdexcept>

namespace swarmlens {

KeyedWorkers::KeyedWorkers(unsigned threads, size_t max_queued_bytes, Handler handler)
    : handler_(std::move(handler)), lane_bytes_(threads ? max_queued_bytes / threads : 0) {
  if (threads == 0) throw std::invalid_argument("keyed workers: at least one thread");
  for (unsigned i = 0; i < threads; ++i) lanes_.push_back(std::make_unique<Lane>());
  for (auto& lane : lanes_) lane->thread = std::thread([this, l = lane.get()] { run(*l); });
}

KeyedWorkers::~KeyedWorkers() { stop(); }

bool KeyedWorkers::push(uint64_t key, std::vector<uint8_t> payload) {
  Lane& lane = *lanes_[key % lanes_.size()];
  std::unique_lock<std::mutex> lock(lane.m);
  // A message larger than the lane's share still goes in when the lane is empty.
  lane.has_room.wait(lock, [&] { return lane.stopping || lane.queue.empty() || lane.bytes + payload.size() <= lane_bytes_; });
  if (lane.stopping) {
    ++lane.refused;
    return false;
  }
  lane.bytes += payload.size();
  lane.queue.push_back({key, std::move(payload)});
  lock.unlock();
  lane.has_work.notify_one();
  return true;
}

void KeyedWorkers::run(Lane& lane) {
  for (;;) {
    Item item;
    {
      std::unique_lock<std::mutex> lock(lane.m);
      lane.has_work.wait(lock, [&] { return lane.stopping || !lane.queue.empty(); });
      if (lane.queue.empty()) return;  // stopping, and everything queued is handled
      item = std::move(lane.queue.front());
      lane.queue.pop_front();
      lane.bytes -= item.payload.size();
    }
    lane.has_room.notify_all();
    try {
      handler_(item.key, item.payload);
    } catch (...) {
    }
  }
}

void KeyedWorkers::stop() {
  for (auto& lane : lanes_) {
    {
      std::lock_guard<std::mutex> g(lane->m);
      lane->stopping = true;
    }
    lane->has_work.notify_all();
    lane->has_room.notify_all();
  }
  for (auto& lane : lanes_)
    if (lane->thread.joinable()) lane->thread.join();
}

uint64_t KeyedWorkers::refused() const {
  uint64_t n = 0;
  for (const auto& lane : lanes_) {
    std::lock_guard<std::mutex> g(lane->m);
    n += lane->refused;
  }
  return n;
}

}  // namespace swarmlens
