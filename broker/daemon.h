// The swarmlens-broker daemon's loop, as a class: a BrokerService plus the publish timer, the test
// evaluation on a thread of its own (lowest priority, so a slow evaluation never holds back taking
// updates or publishing), the metrics message on swarmlens.<model>.metrics and the stats line.
// broker/main.cpp only reads options into DaemonConfig and runs it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "broker_service.h"
#include "http_server.h"
#include "nats_link.h"
#include "node_accuracy.h"
#include "node_board.h"
#include "operator_view.h"

namespace swarmlens {

struct Dataset;

struct DaemonConfig {
  BrokerConfig broker;
  NatsOptions nats;
  static constexpr int kDefaultPublishIntervalMs = 500;
  int publish_interval_ms = kDefaultPublishIntervalMs;  // at most one model per interval
  int eval_interval_ms = 2000;    // at most one test evaluation (and metrics message) per interval
  int stats_interval_ms = 10000;  // between stats lines on stdout (0 = none)
  // Fashion-MNIST or an image folder: the model's accuracy on it goes into the metrics ("" = none:
  // the nodes' own held-out accuracy does, if they hold frames out)
  std::string test_data;
  size_t test_limit = 2000;       // test images evaluated
  // > 0: this is one of several brokers of the model (on other machines); the one holding the lease
  // (a key in a NATS key-value bucket that expires lease_ms after its last renewal, renewed every
  // lease_ms / 3) serves, the others stand by and take over when it lapses. Needs the replicated
  // journal (broker.replicated_journal), so that the one taking over has every accepted update.
  int lease_ms = 0;
  static constexpr int kStandbyLeaseMs = 2000;  // the lease docs/deploy.md suggests (bench failover's)
  std::string instance;  // this broker's name in the lease ("" = <hostname>:<pid>)
  OperatorConfig ops;    // /metrics and the dashboard (off unless listen addresses are given)
};

class BrokerDaemon {
 public:
  // Connects, builds or resumes the model (BrokerService) and starts the evaluator; with a lease,
  // only connects (run() builds them once the lease is this broker's). Throws.
  explicit BrokerDaemon(DaemonConfig cfg);
  ~BrokerDaemon();  // stops the evaluator
  BrokerDaemon(const BrokerDaemon&) = delete;
  BrokerDaemon& operator=(const BrokerDaemon&) = delete;

  // Serves until `stop` is set (checked every 50 ms, however long the publish interval), then
  // publishes the last version (and writes the snapshot). The first model goes out at once. With a
  // lease: stands by until it holds the lease, serves while it keeps it, stands by again if it
  // loses it (without publishing: another serves), and releases it when stopped.
  void run(const std::atomic<bool>& stop);
  BrokerService& service() { return *service_; }  // null with a lease until this broker serves
  // The operator's endpoints as listening (after the constructor): "" when off.
  std::string metrics_url() const { return metrics_url_; }
  std::string dashboard_url() const { return dashboard_url_; }

 private:
  class Evaluator;
  void start_serving();    // the service (resumed) and the evaluator, and what they say at start
  // start_serving() with the lease held, tried again while JetStream does not answer (a cluster
  // electing new stream leaders); false when the lease or stop came first.
  bool resume_leased(const std::atomic<bool>& stop);
  void stop_serving();     // the evaluator and the service, without publishing
  void final_publish();    // the last version, retried for a while when JetStream does not answer; throws
  // The publish/metrics/stats loop until stop, or until the lease is lost (then false).
  bool serve(const std::atomic<bool>& stop);
  bool acquire(const std::atomic<bool>& stop);  // stands by until the lease is ours (true) or stop
  void keep_lease();       // the keeper thread: renews every lease / 3; lease_held_ = false once lost
  bool renew_lease();      // one conditional renewal: false (and lease_held_ = false) when lost; throws NatsError
  void start_keeper();
  void stop_keeper();
  void publish();          // the model, if it changed; a failure is reported and retried next time
  // Each reads the round's one copy of the service's counters.
  void report_journal(const BrokerStats& st);  // new journal write failures, on stderr
  void publish_metrics(const BrokerStats& st);
  void print_stats(const BrokerStats& st, double seconds);
  void start_http();                           // the constructor: listens where cfg_.ops says; throws
  void update_view(BrokerStats st);            // the round's copy, to the operator view

  DaemonConfig cfg_;
  std::unique_ptr<BrokerService> service_;
  // Without test data: the nodes' own held-out figures. Before metrics_link_, whose subscription
  // feeds it: the link (and its callbacks) goes first.
  NodeAccuracy node_accuracy_;
  NodeBoard node_board_;  // every node's own report, for the operator view
  OverlaySnapshots snapshots_;  // the nodes' overlay snapshots, with the dashboard on
  std::unique_ptr<OperatorView> view_;
  std::vector<std::unique_ptr<HttpServer>> http_;  // after what they read: they stop first
  std::string metrics_url_, dashboard_url_;
  std::unique_ptr<NatsLink> metrics_link_;
  std::unique_ptr<Evaluator> evaluator_;  // null without test data
  std::shared_ptr<const Dataset> test_;
  std::unique_ptr<NatsLink> lease_link_;  // with a lease
  std::mutex lease_lock_;               // one renewal at a time: lease_revision_
  uint64_t lease_revision_ = 0;
  std::atomic<bool> lease_held_{false}, keeper_quit_{false};
  std::thread lease_keeper_;
  BrokerStats last_stats_;
  uint64_t journal_errors_seen_ = 0;
};

}  // namespace swarmlens
