#include "operator_view.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "prom_text.h"

namespace swarmlens {

OperatorView::OperatorView(std::string model_id, OperatorConfig cfg, const NodeBoard& board,
                           const OverlaySnapshots* snapshots)
    : model_id_(std::move(model_id)), cfg_(std::move(cfg)), board_(board), snapshots_(snapshots) {}

void OperatorView::update(OperatorRound r, double now) {
  std::lock_guard<std::mutex> g(lock_);
  if (!have_round_) started_ = now;
  const bool moved = !have_round_ || r.stats.version != round_.stats.version || r.accuracy != round_.accuracy;
  round_ = std::move(r);
  have_round_ = true;
  if (moved && (history_.empty() || now - history_.back().t >= 1.0)) {
    history_.push_back({now, round_.stats.version, round_.accuracy, round_.stats.bytes_in + round_.stats.bytes_out});
    ++points_;
    if (history_.size() > OperatorConfig::kHistoryPoints) history_.pop_front();
  }
}

void OperatorView::set_serving(bool serving) {
  std::lock_guard<std::mutex> g(lock_);
  round_.serving = serving;
}

OperatorView::Shown OperatorView::shown_nodes(const std::map<uint32_t, NodeReport>& reports) const {
  std::map<uint32_t, double> last;
  for (const auto& [id, t] : round_.traffic) last[id] = t.last_update;
  for (const auto& [id, r] : reports) last[id] = std::max(last[id], r.seen);
  std::vector<std::pair<double, uint32_t>> order;
  for (const auto& [id, t] : last) order.push_back({-t, id});
  const size_t n = std::min(order.size(), cfg_.max_nodes);
  std::partial_sort(order.begin(), order.begin() + std::ptrdiff_t(n), order.end());
  Shown shown;
  shown.heard = last.size();
  for (size_t i = 0; i < n; ++i) shown.ids.push_back(order[i].second);
  std::sort(shown.ids.begin(), shown.ids.end());
  return shown;
}

std::string OperatorView::metrics() const {
  const auto reports = board_.nodes();
  std::lock_guard<std::mutex> g(lock_);
  const BrokerStats& s = round_.stats;
  const PromLabels m{{"model_id", model_id_}};
  const auto with = [&](const std::string& k, const std::string& v) {
    PromLabels l = m;
    l.push_back({k, v});
    return l;
  };
  PromText p;
  p.gauge("swarmlens_broker_serving", "1 while this broker serves the model (holds the lease), 0 on standby.",
          round_.serving ? 1 : 0, m);
  p.gauge("swarmlens_broker_model_version", "Version of the shared model.", double(s.version), m);
  p.counter("swarmlens_broker_updates_received_total", "Updates received from nodes.", double(s.updates_in), m);
  p.counter("swarmlens_broker_updates_accepted_total", "Updates merged into the shared model.", double(s.accepted), m);
  for (const auto& [reason, n] : s.rejected)
    p.counter("swarmlens_broker_updates_rejected_total", "Updates refused, by reason.", double(n), with("reason", reason));
  p.counter("swarmlens_broker_update_bytes_total", "Bytes of updates received (uplink).", double(s.bytes_in), m);
  p.counter("swarmlens_broker_model_bytes_total", "Bytes of models published on the model subject (downlink).",
            double(s.bytes_out), m);
  p.counter("swarmlens_broker_models_published_total", "Models published, by kind.", double(s.snapshots_out),
            with("kind", "keyframe"));
  p.counter("swarmlens_broker_models_published_total", "Models published, by kind.", double(s.deltas_out),
            with("kind", "delta"));
  p.counter("swarmlens_broker_acks_sent_total", "Answers sent to nodes.", double(s.acks_out), m);
  p.counter("swarmlens_broker_models_refused_total", "Models that failed the check before publish (rolled back).",
            double(s.models_refused), m);
  p.counter("swarmlens_broker_updates_clipped_total", "Accepted updates scaled down to the norm bound.",
            double(s.clipped), m);
  p.counter("swarmlens_broker_journal_errors_total", "Journal writes that failed.", double(s.journal_errors), m);
  p.counter("swarmlens_broker_busy_seconds_total", "Time spent taking updates (decode, checks, merge).",
            s.busy_seconds, m);
  p.histogram("swarmlens_broker_update_staleness_versions",
              "Versions the model had moved on since the one an accepted update was computed on.", s.staleness, m);
  p.histogram("swarmlens_broker_update_merge_duration_seconds",
              "Seconds from an update's arrival to its verdict (decode, checks, journal, merge).", s.merge_seconds, m);
  if (round_.accuracy >= 0)
    p.gauge("swarmlens_model_accuracy_ratio", "Accuracy of the shared model: on the broker's test set, or the "
            "nodes' own held-out frames.", round_.accuracy, with("source", round_.accuracy_source));
  const Shown shown = shown_nodes(reports);
  p.gauge("swarmlens_broker_nodes", "Nodes heard from (updates or reports).", double(shown.heard), m);
  p.counter("swarmlens_broker_node_reports_refused_total", "Node reports refused (malformed, out of range).",
            double(board_.refused()), m);
  p.gauge("swarmlens_broker_nodes_unlabelled", "Nodes heard from but beyond --metrics-max-nodes (no series of "
          "their own).", double(shown.heard - shown.ids.size()), m);
  for (uint32_t id : shown.ids) {
    const PromLabels n = with("node", std::to_string(id));
    const auto t = round_.traffic.find(id);
    const auto r = reports.find(id);
    double seen = 0;
    if (t != round_.traffic.end()) {
      seen = t->second.last_update;
      p.counter("swarmlens_node_updates_accepted_total", "A node's updates merged.", double(t->second.accepted), n);
      p.counter("swarmlens_node_updates_refused_total", "A node's updates refused.", double(t->second.refused), n);
      p.counter("swarmlens_node_update_bytes_total", "Bytes of a node's updates received.", double(t->second.bytes_in), n);
    }
    if (r != reports.end()) {
      seen = std::max(seen, r->second.seen);
      p.counter("swarmlens_node_training_steps_total", "Training steps a node reports.", double(r->second.steps), n);
      p.counter("swarmlens_node_frames_total", "Frames a node reports seen.", double(r->second.frames), n);
      p.counter("swarmlens_node_skipped_batches_total", "Batches a node skipped (non-finite gradients).",
                double(r->second.skipped_batches), n);
      p.counter("swarmlens_node_model_bytes_total", "Bytes of models a node reports received (downlink).",
                double(r->second.bytes_down), n);
      p.gauge("swarmlens_node_model_version", "Model version a node reports running.", double(r->second.model_version), n);
      PromLabels st = n;
      st.push_back({"state", r->second.state});
      p.gauge("swarmlens_node_state", "1 for a node's reported training state.", 1, st);
    }
    p.gauge("swarmlens_node_last_seen_timestamp_seconds", "When the broker last heard from a node (unix seconds).",
            seen, n);
  }
  p.process();
  return p.str();
}

std::string OperatorView::state(uint64_t& cursor) const {
  const auto reports = board_.nodes();
  const auto snapshot_times = snapshots_ ? snapshots_->times() : std::map<uint32_t, double>{};
  std::lock_guard<std::mutex> g(lock_);
  const BrokerStats& s = round_.stats;
  nlohmann::json j = {{"model_id", model_id_}, {"serving", round_.serving}, {"version", s.version},
                      {"updates_in", s.updates_in}, {"accepted", s.accepted}, {"rejected", s.rejected},
                      {"bytes_up", s.bytes_in}, {"bytes_down", s.bytes_out}, {"models_out", s.models_out},
                      {"started", started_}, {"node_reports_refused", board_.refused()},
                      {"snapshots_refused", snapshots_ ? snapshots_->refused() : 0}};
  if (round_.accuracy >= 0) {
    j["accuracy"] = round_.accuracy;
    j["accuracy_source"] = round_.accuracy_source;
  }
  j["staleness"] = {{"bounds", s.staleness.bounds}, {"counts", s.staleness.counts}};
  // History after the cursor: all of it on a stream's first event, then what is new.
  const uint64_t first = points_ - history_.size();
  auto& h = j["history"] = nlohmann::json::array();
  for (uint64_t i = std::max(cursor, first); i < points_; ++i) {
    const Point& p = history_[size_t(i - first)];
    h.push_back({p.t, p.version, p.accuracy < 0 ? nlohmann::json() : nlohmann::json(p.accuracy), p.bytes});
  }
  cursor = points_;
  auto& nodes = j["nodes"] = nlohmann::json::array();
  const Shown shown = shown_nodes(reports);
  for (uint32_t id : shown.ids) {
    nlohmann::json n = {{"node", id}};
    if (const auto t = round_.traffic.find(id); t != round_.traffic.end()) {
      n["accepted"] = t->second.accepted;
      n["refused"] = t->second.refused;
      n["bytes_up"] = t->second.bytes_in;
      n["last_update"] = t->second.last_update;
      if (!t->second.last_refusal.empty()) n["last_refusal"] = t->second.last_refusal;
    }
    if (const auto r = reports.find(id); r != reports.end()) {
      n["state"] = r->second.state;
      n["steps"] = r->second.steps;
      n["frames"] = r->second.frames;
      n["bytes_down"] = r->second.bytes_down;
      n["model_version"] = r->second.model_version;
      n["reported"] = r->second.seen;
      if (r->second.holdout_accuracy) n["holdout_accuracy"] = *r->second.holdout_accuracy;
    }
    if (const auto t = snapshot_times.find(id); t != snapshot_times.end()) n["snapshot"] = t->second;
    nodes.push_back(std::move(n));
  }
  j["nodes_total"] = shown.heard;
  return j.dump();
}

}  // namespace swarmlens
