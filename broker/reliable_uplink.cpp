#include "reliable_uplink.h"

#include <stdexcept>

#include "codec.h"

namespace swarmlens {

using Clock = std::chrono::steady_clock;

ReliableUplink::ReliableUplink(NodeLink& link, uint32_t node_id, UplinkOptions opts)
    : link_(link), node_id_(node_id), opts_(opts) {
  reconnects_seen_ = link_.stats().reconnects;
  link_.on_acks(node_id_, [this](const UpdateAck& a) { on_ack(a); });
  thread_ = std::thread([this] { run(); });
}

ReliableUplink::~ReliableUplink() {
  {
    std::lock_guard<std::mutex> g(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool ReliableUplink::offer(const std::vector<uint8_t>& msg) {
  DecodeOptions header;
  header.header_only = true;
  const DecodeResult d = decode_update(msg, header);
  if (!d.ok()) throw std::invalid_argument(std::string("uplink: not an update: ") + d.detail);
  if (d.value.header.node_id != node_id_)
    throw std::invalid_argument("uplink: an update of node " + std::to_string(d.value.header.node_id) +
                                " offered to node " + std::to_string(node_id_) + "'s uplink");
  const uint64_t reconnects = link_.stats().reconnects;
  std::lock_guard<std::mutex> g(mu_);
  if (stats_.in_flight || reconnects != reconnects_seen_) {  // one on the wire, or a catch-up due
    ++stats_.held_back;
    cv_.notify_all();
    return false;
  }
  if (!link_.send_update(msg)) {
    ++stats_.link_refused;
    return false;
  }
  in_flight_ = msg;
  answered_ = false;
  stats_.in_flight = true;
  stats_.in_flight_seq = d.value.header.sequence;
  stats_.in_flight_samples = d.value.header.samples;
  ++stats_.offered;
  cv_.notify_all();
  return true;
}

void ReliableUplink::on_ack(const UpdateAck& a) {
  std::lock_guard<std::mutex> g(mu_);
  if (!stats_.in_flight || a.seq != stats_.in_flight_seq || answered_) return;  // a late answer to a resend
  answered_ = true;
  stats_.last_ack = a;
  cv_.notify_all();
}

bool ReliableUplink::wait_idle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> g(mu_);
  return cv_.wait_for(g, timeout, [&] { return !stats_.in_flight; });
}

std::optional<std::string> ReliableUplink::unanswered_after(std::chrono::milliseconds timeout) {
  if (wait_idle(timeout)) return std::nullopt;
  const UplinkStats us = stats();
  return "update " + std::to_string(us.in_flight_seq) + " of node " + std::to_string(node_id_) +
         " got no answer from the broker in " + std::to_string(timeout.count() / 1000) + " s";
}

UplinkStats ReliableUplink::stats() const {
  std::lock_guard<std::mutex> g(mu_);
  return stats_;
}

void ReliableUplink::run() {
  bool flushed = false, catch_up = false;
  Clock::time_point sent_at = Clock::now();
  std::unique_lock<std::mutex> g(mu_);
  while (!quit_) {
    // Woken by an answer or a new update; every 100 ms anyway, to see reconnects and timeouts.
    cv_.wait_for(g, std::chrono::milliseconds(100), [&] { return quit_ || (stats_.in_flight && (answered_ || !flushed)); });
    if (quit_) break;
    g.unlock();
    const uint64_t reconnects = link_.stats().reconnects;
    {
      std::lock_guard<std::mutex> q(mu_);
      catch_up = reconnects != reconnects_seen_;
    }
    if (catch_up) {  // back after a cut: the current model first, so a stale node catches up
      link_.pull_model();
      const uint64_t model_version = link_.stats().model_version;
      g.lock();
      reconnects_seen_ = reconnects;  // offers are taken again
      ++stats_.catchups;
      stats_.catchup_model_version = model_version;
      if (stats_.in_flight && !answered_) {  // and the update in flight again, at once
        flushed = true;
        sent_at = Clock::time_point{};
      }
      continue;
    }
    g.lock();
    if (!stats_.in_flight) continue;
    if (answered_ && stats_.last_ack.retry_later()) {  // not refused: sent again a second later
      ++(stats_.last_ack.verdict == "rate_limited" ? stats_.rate_limited : stats_.unavailable);
      answered_ = false;
      flushed = true;
      sent_at = Clock::now() - std::chrono::milliseconds(opts_.ack_timeout_ms) + std::chrono::seconds(1);
      continue;
    }
    if (answered_) {
      const UpdateAck a = stats_.last_ack;
      if (a.delivered()) {
        ++stats_.delivered;
        stats_.delivered_samples += stats_.in_flight_samples;
        if (a.verdict == "replayed") ++stats_.duplicates;
      } else {
        ++stats_.refused;
        ++stats_.refused_by[a.verdict];
      }
      if (opts_.on_answer) {
        g.unlock();
        opts_.on_answer(a);
        g.lock();
      }
      if (opts_.pull_after_ack) {
        g.unlock();
        link_.pull_model();
        g.lock();
      }
      in_flight_.clear();
      stats_.in_flight = false;
      flushed = false;
      cv_.notify_all();
      continue;
    }
    if (!flushed) {  // the answer's clock starts once the server has the update (or could not say)
      g.unlock();
      try {
        link_.flush(opts_.ack_timeout_ms);
      } catch (const std::exception&) {  // stalled or cut: sent again when the clock runs out
      }
      g.lock();
      flushed = true;
      sent_at = Clock::now();
      continue;
    }
    if (Clock::now() - sent_at < std::chrono::milliseconds(opts_.ack_timeout_ms)) continue;
    const std::vector<uint8_t> msg = in_flight_;
    g.unlock();
    const bool sent = link_.send_update(msg);
    const uint64_t model_version = link_.stats().model_version;
    g.lock();
    sent_at = Clock::now();
    if (sent) {
      ++stats_.resent;
      stats_.resend_model_version = model_version;
      flushed = false;
    }
  }
}

}  // namespace swarmlens
