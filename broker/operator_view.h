// What the broker shows its operator: the Prometheus metrics (/metrics) and the dashboard's state
// (/api/state and the live events of /events), from one copy a round of the broker's counters, the
// per-node traffic and the nodes' own reports. The daemon hands it a round (update()); scrapes and
// the page only read that copy, so they never take the service's lock on the update path.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <string>

#include "broker_service.h"
#include "node_board.h"
#include "overlay_snapshots.h"

namespace swarmlens {

struct OperatorConfig {
  std::string metrics_listen;    // HOST:PORT of /metrics ("" = off)
  std::string dashboard_listen;  // HOST:PORT of the dashboard ("" = off; the same as metrics_listen: one port)
  // Nodes with series of their own (node label), the most recently heard first: Prometheus'
  // cardinality stays bounded however large the fleet. The dashboard's table shows as many.
  static constexpr size_t kDefaultMaxNodes = 100;
  size_t max_nodes = kDefaultMaxNodes;
  static constexpr size_t kHistoryPoints = 3600;  // accuracy/version points kept for the page (one a second at most)
};

struct OperatorRound {
  BrokerStats stats;
  std::map<uint32_t, NodeTraffic> traffic;
  double accuracy = -1.0;        // -1: none yet
  std::string accuracy_source;   // "test_set" (the broker's --test-data) or "node_holdout" (the nodes' claims)
  bool serving = true;           // false: a standby (another broker holds the lease)
};

class OperatorView {
 public:
  // snapshots: the nodes' overlay snapshots, when the dashboard takes them (else null).
  OperatorView(std::string model_id, OperatorConfig cfg, const NodeBoard& board,
               const OverlaySnapshots* snapshots = nullptr);
  void update(OperatorRound r, double now);  // now: unix seconds
  void set_serving(bool serving);
  std::string metrics() const;
  // The dashboard's state as JSON; history points after `cursor` (then the cursor moves past them).
  std::string state(uint64_t& cursor) const;

 private:
  struct Point {
    double t;
    uint64_t version;
    double accuracy;
    uint64_t bytes;  // up and down so far
  };
  // The max_nodes nodes heard from last (by broker traffic or report), in id order, and how many
  // were heard from in all. Caller holds lock_.
  struct Shown {
    std::vector<uint32_t> ids;
    size_t heard = 0;
  };
  Shown shown_nodes(const std::map<uint32_t, NodeReport>& reports) const;

  const std::string model_id_;
  const OperatorConfig cfg_;
  const NodeBoard& board_;
  const OverlaySnapshots* snapshots_;
  mutable std::mutex lock_;
  OperatorRound round_;
  bool have_round_ = false;
  std::deque<Point> history_;
  uint64_t points_ = 0;  // appended so far (the cursor's scale)
  double started_ = 0;
};

}  // namespace swarmlens
