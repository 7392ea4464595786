#include "daemon.h"

#include <fmt/core.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "camera_model.h"
#include "dashboard_html.h"
#include "dataset.h"
#include "image_folder.h"
#include "metrics.h"
#include "priority.h"
#include "prom_text.h"

namespace swarmlens {

using Clock = std::chrono::steady_clock;

// Evaluates the newest model on the test set whenever its version moved, at most once per interval,
// on its own thread at nice 19.
class BrokerDaemon::Evaluator {
 public:
  struct Result {
    double accuracy = -1.0;  // -1: nothing evaluated yet
    uint64_t version = 0;
    size_t images = 0;
  };

  Evaluator(const BrokerService& service, const DaemonConfig& cfg, std::shared_ptr<const Dataset> test) : service_(service) {
    result_.images = test->size();
    thread_ = std::thread([this, test, model = cfg.broker.model, seed = cfg.broker.seed, ms = cfg.eval_interval_ms] {
      loop(*test, model, seed, std::chrono::milliseconds(ms));
    });
  }
  ~Evaluator() {
    {
      std::lock_guard<std::mutex> g(lock_);
      quit_ = true;
    }
    wake_.notify_all();
    thread_.join();
  }
  Result result() const {
    std::lock_guard<std::mutex> g(lock_);
    return result_;
  }

 private:
  void loop(const Dataset& test, const ModelSpec& spec, uint64_t seed, std::chrono::milliseconds interval) {
    set_thread_nice(19);
    auto eval = Model::create(spec, seed);
    uint64_t evaluated = UINT64_MAX;
    std::unique_lock<std::mutex> g(lock_);
    while (!quit_) {
      g.unlock();
      if (service_.stats().version != evaluated) {
        const Snapshot s = service_.snapshot();
        eval->set_params(s.params.data());
        const double a = evaluate_accuracy(*eval, test);
        evaluated = s.version;
        g.lock();
        result_.accuracy = a;
        result_.version = s.version;
      } else {
        g.lock();
      }
      wake_.wait_for(g, interval, [&] { return quit_; });
    }
  }

  const BrokerService& service_;
  mutable std::mutex lock_;
  std::condition_variable wake_;
  bool quit_ = false;
  Result result_;
  std::thread thread_;  // last: started when everything it uses exists
};

namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// The held-out images the model is evaluated on: an image folder (one sub-folder per class, read at
// the model's input size) or Fashion-MNIST's test set (a grey 28x28 model of 10 classes). Throws
// std::runtime_error when they cannot serve this model, naming both.
std::shared_ptr<const Dataset> load_test_data(const DaemonConfig& cfg) {
  const ModelSpec& m = cfg.broker.model;
  auto test = std::make_shared<Dataset>();
  if (is_image_folder(cfg.test_data)) {
    *test = load_image_folder(cfg.test_data, m.width, m.height, m.channels);
  } else {
    if (m.channels != 1 || m.width != 28 || m.height != 28)
      throw std::runtime_error("--test-data " + cfg.test_data + ": Fashion-MNIST is grey 28x28, the model is " +
                               describe(m.name, describe_model(m)) + " (give an image folder, one sub-folder per class)");
    *test = load_fashion_mnist(cfg.test_data, false);
  }
  if (test->class_names.size() != size_t(m.classes))
    throw std::runtime_error("--test-data " + cfg.test_data + " has " + std::to_string(test->class_names.size()) +
                             " classes, the model " + std::to_string(m.classes) + " (--classes)");
  if (!cfg.broker.class_names.empty() && cfg.broker.class_names != test->class_names)
    throw std::runtime_error("--test-data " + cfg.test_data + ": its classes are not --class-names (or in another order)");
  test->truncate(cfg.test_limit);
  return test;
}

}  // namespace

BrokerDaemon::BrokerDaemon(DaemonConfig cfg) : cfg_(std::move(cfg)) {
  cfg_.broker.operator_stats = !cfg_.ops.metrics_listen.empty() || !cfg_.ops.dashboard_listen.empty();
  if (!cfg_.test_data.empty()) {
    test_ = load_test_data(cfg_);
    if (cfg_.broker.class_names.empty()) cfg_.broker.class_names = test_->class_names;  // the folders name them
  }
  if (cfg_.lease_ms > 0) {
    if (!cfg_.broker.replicated_journal)
      throw std::invalid_argument("a broker with a lease needs the replicated journal (--replicated-journal): the "
                                  "standby taking over would miss the updates this one accepted");
    if (cfg_.instance.empty()) {
      char host[256] = {};
      gethostname(host, sizeof host - 1);
      cfg_.instance = std::string(host) + ":" + std::to_string(getpid());
    }
    lease_link_ = NatsLink::connect(cfg_.nats);
    lease_link_->ensure_lease_bucket(lease_bucket(cfg_.broker.model_id), cfg_.lease_ms, cfg_.broker.stream_replicas);
  }
  start_http();
  metrics_link_ = NatsLink::connect(cfg_.nats);
  metrics_link_->subscribe(metrics_subject(cfg_.broker.model_id), [this](const std::string&, std::vector<uint8_t> p) {
    if (cfg_.broker.operator_stats) node_board_.take(p.data(), p.size(), unix_now());
    if (!test_) node_accuracy_.take(p.data(), p.size());  // the nodes' held-out frames stand in for a test set
  });
  if (!cfg_.ops.dashboard_listen.empty())
    metrics_link_->subscribe(snapshot_subjects(cfg_.broker.model_id), [this](const std::string& subject, std::vector<uint8_t> p) {
      if (const auto node = OverlaySnapshots::node_of(subject)) snapshots_.take(*node, std::move(p), unix_now());
    }, {}, 8ll << 20, OverlaySnapshots::kMaxBytes);
  if (cfg_.lease_ms <= 0) start_serving();
}

void BrokerDaemon::start_http() {
  view_ = std::make_unique<OperatorView>(cfg_.broker.model_id, cfg_.ops, node_board_, &snapshots_);
  view_->set_serving(lease_link_ == nullptr);
  const auto listen = [this](const std::string& text, const std::string& option) -> HttpServer& {
    const ListenAddress at = ListenAddress::parse(text, option);
    for (auto& h : http_)
      if (h->url() == "http://" + at.str() + "/") return *h;
    http_.push_back(std::make_unique<HttpServer>(at));
    if (!at.loopback())
      fmt::print(stderr, "swarmlens-broker: warning: {} {} is open beyond this machine, with no login: put it "
                         "behind a firewall or a reverse proxy with TLS and authentication\n", option, text);
    return *http_.back();
  };
  if (!cfg_.ops.metrics_listen.empty()) {
    HttpServer& h = listen(cfg_.ops.metrics_listen, "--metrics-listen");
    h.route("/metrics", [this](const std::string&) { return HttpResponse{200, kPromContentType, view_->metrics()}; });
    metrics_url_ = h.url() + "metrics";
    fmt::print(stderr, "swarmlens-broker: Prometheus metrics on {}\n", metrics_url_);
  }
  if (!cfg_.ops.dashboard_listen.empty()) {
    HttpServer& h = listen(cfg_.ops.dashboard_listen, "--dashboard-listen");
    h.route("/", [](const std::string&) {
      return HttpResponse{200, "text/html; charset=utf-8", std::string(kDashboardHtml)};
    });
    h.route("/api/state", [this](const std::string&) {
      uint64_t cursor = 0;
      return HttpResponse{200, "application/json", view_->state(cursor)};
    });
    h.events("/events", [this](uint64_t& cursor) { return view_->state(cursor); }, std::chrono::milliseconds(1000));
    h.route("/snapshot/", [this](const std::string& path) {  // /snapshot/<node>.jpg
      const auto node = OverlaySnapshots::node_of_file(path.substr(std::string("/snapshot/").size()));
      const auto jpeg = node ? snapshots_.get(*node) : nullptr;
      if (!jpeg) return HttpResponse{404, "text/plain; charset=utf-8", "no snapshot\n"};
      return HttpResponse{200, "image/jpeg", std::string(jpeg->begin(), jpeg->end())};
    });
    dashboard_url_ = h.url();
    fmt::print(stderr, "swarmlens-broker: dashboard on {}\n", dashboard_url_);
  }
}

void BrokerDaemon::update_view(BrokerStats st) {
  OperatorRound r;
  r.traffic = service_->node_traffic();
  if (evaluator_) {
    if (const Evaluator::Result e = evaluator_->result(); e.accuracy >= 0) {
      r.accuracy = e.accuracy;
      r.accuracy_source = "test_set";
    }
  } else if (const NodeAccuracy::Summary n = node_accuracy_.summary(); n.nodes) {
    r.accuracy = n.accuracy;
    r.accuracy_source = "node_holdout";
  }
  r.stats = std::move(st);
  view_->update(std::move(r), unix_now());
}

void BrokerDaemon::start_serving() {
  service_ = std::make_unique<BrokerService>(cfg_.broker, NatsLink::connect(cfg_.nats, [](LinkState s) {
    fmt::print(stderr, "swarmlens-broker: NATS link {}\n", link_state_name(s));
  }));
  if (test_) evaluator_ = std::make_unique<Evaluator>(*service_, cfg_, test_);
  last_stats_ = service_->stats();
  journal_errors_seen_ = last_stats_.journal_errors;
  std::string urls;
  for (const auto& u : cfg_.nats.urls) urls += (urls.empty() ? "" : ",") + u;
  fmt::print(stderr, "swarmlens-broker: serving model '{}' ({}) on {} (version {}{})\n", cfg_.broker.model_id,
             describe(cfg_.broker.model.name, describe_model(cfg_.broker.model, cfg_.broker.class_names)), urls,
             last_stats_.version,
             last_stats_.resumed_from.empty() ? ", fresh weights" : ", resumed from the " + last_stats_.resumed_from);
  if (!evaluator_)
    fmt::print(stderr, "swarmlens-broker: no --test-data: the accuracy published is the nodes' own, on the frames they "
                       "hold out (swarmtrain holdout-every)\n");
  if (last_stats_.journal_replayed || last_stats_.journal_skipped)
    fmt::print(stderr, "swarmlens-broker: journal: {} accepted updates merged again, {} already in the snapshot\n",
               last_stats_.journal_replayed, last_stats_.journal_skipped);
  if (!last_stats_.resume_refused.empty())
    fmt::print(stderr, "swarmlens-broker: the model kept in JetStream was refused ({}); started from {} instead\n",
               last_stats_.resume_refused,
               last_stats_.resumed_from.empty() ? std::string("fresh weights") : "the " + last_stats_.resumed_from);
  if (last_stats_.signing)
    fmt::print(stderr, "swarmlens-broker: models and acks signed; nodes verify with model-key={}\n", last_stats_.public_key);
  else
    fmt::print(stderr, "swarmlens-broker: warning: no --signing-key: models and acks go out unsigned, and nodes "
                       "can only trust them blindly\n");
}

void BrokerDaemon::stop_serving() {
  service_->abandon();
  evaluator_.reset();
  service_.reset();
}

BrokerDaemon::~BrokerDaemon() {
  stop_keeper();
  evaluator_.reset();
}

void BrokerDaemon::run(const std::atomic<bool>& stop) {
  if (!lease_link_) {
    serve(stop);
    final_publish();
    return;
  }
  while (acquire(stop)) {
    start_keeper();
    if (!resume_leased(stop)) {
      stop_keeper();
      if (stop) return;
      continue;
    }
    if (serve(stop)) {  // stopped: the last version out while the lease is surely ours, then the lease freed
      bool held = false;
      try {
        held = renew_lease();
      } catch (const NatsError&) {
      }
      if (!held) {
        fmt::print(stderr, "swarmlens-broker: stopped without the lease confirmed: the last version is left to the "
                           "broker that serves next (the journal holds every accepted update)\n");
        stop_serving();
        stop_keeper();
        return;
      }
      final_publish();
      stop_keeper();
      try {
        lease_link_->lease_release(lease_bucket(cfg_.broker.model_id), "leader");
      } catch (const NatsError& e) {
        fmt::print(stderr, "swarmlens-broker: cannot release the lease ({}); a standby takes over when it expires\n",
                   e.what());
      }
      return;
    }
    fmt::print(stderr, "swarmlens-broker: lost the lease at model version {}: standing by\n",
               service_->stats().version);
    view_->set_serving(false);
    stop_serving();
    stop_keeper();
  }
}

bool BrokerDaemon::resume_leased(const std::atomic<bool>& stop) {
  while (!stop && lease_held_) {
    try {
      start_serving();
      return true;
    } catch (const NatsError& e) {
      evaluator_.reset();
      service_.reset();
      fmt::print(stderr, "swarmlens-broker: cannot resume yet: {}; trying again while the lease holds\n", e.what());
      for (auto until = Clock::now() + std::chrono::milliseconds(500); !stop && Clock::now() < until;)
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  return false;
}

void BrokerDaemon::final_publish() {
  // A NATS cluster that just lost a server answers JetStream again once its streams have elected
  // new leaders (seconds): the last version is tried for a while before giving up.
  const auto deadline = Clock::now() + std::chrono::seconds(15);
  for (;;) {
    try {
      service_->publish_if_changed();
      break;
    } catch (const NatsError& e) {
      if (Clock::now() >= deadline) throw;
      fmt::print(stderr, "swarmlens-broker: cannot publish the last model yet: {}; trying again\n", e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
  fmt::print(stderr, "swarmlens-broker: stopped at model version {}\n", service_->stats().version);
}

bool BrokerDaemon::acquire(const std::atomic<bool>& stop) {
  const std::string bucket = lease_bucket(cfg_.broker.model_id);
  const auto poll = std::chrono::milliseconds(std::max(20, cfg_.lease_ms / 10));
  std::string said;
  while (!stop) {
    try {
      if (auto rev = lease_link_->lease_acquire(bucket, "leader", cfg_.instance)) {
        lease_revision_ = *rev;
        fmt::print(stderr, "swarmlens-broker: {} holds the lease ({} ms): serving\n", cfg_.instance, cfg_.lease_ms);
        return true;
      }
      const std::string holder = lease_link_->lease_holder(bucket, "leader");
      if (holder != said && !holder.empty()) {
        fmt::print(stderr, "swarmlens-broker: standing by: {} serves model '{}'\n", holder, cfg_.broker.model_id);
        said = holder;
      }
    } catch (const NatsError& e) {
      if (said != "?") fmt::print(stderr, "swarmlens-broker: standing by, cannot read the lease: {}\n", e.what());
      said = "?";
    }
    for (auto until = Clock::now() + poll; !stop && Clock::now() < until;)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

void BrokerDaemon::keep_lease() {
  // On a thread of its own, so that a publish blocked on JetStream does not let the lease lapse
  // under a broker that is alive.
  const std::string bucket = lease_bucket(cfg_.broker.model_id);
  const auto third = std::chrono::milliseconds(cfg_.lease_ms / 3);
  const auto retry = std::chrono::milliseconds(std::max(10, cfg_.lease_ms / 20));
  auto renewed = Clock::now(), due = renewed + third;
  while (!keeper_quit_) {
    while (!keeper_quit_ && Clock::now() < due) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (keeper_quit_) return;
    try {
      if (!renew_lease()) return;  // it lapsed and another took it
      renewed = Clock::now();
      due = renewed + third;
    } catch (const NatsError& e) {
      // Cut off from JetStream: serve on while the lease surely holds, then step down, before a
      // standby may take over.
      fmt::print(stderr, "swarmlens-broker: cannot renew the lease: {}\n", e.what());
      if (Clock::now() - renewed >= 2 * third) {
        lease_held_ = false;
        return;
      }
      due = Clock::now() + retry;
    }
  }
}

bool BrokerDaemon::renew_lease() {
  std::lock_guard<std::mutex> g(lease_lock_);
  if (!lease_held_) return false;
  const auto rev = lease_link_->lease_renew(lease_bucket(cfg_.broker.model_id), "leader", cfg_.instance, lease_revision_);
  if (!rev) {
    lease_held_ = false;
    return false;
  }
  lease_revision_ = *rev;
  return true;
}

void BrokerDaemon::start_keeper() {
  lease_held_ = true;
  keeper_quit_ = false;
  lease_keeper_ = std::thread([this] { keep_lease(); });
}

void BrokerDaemon::stop_keeper() {
  keeper_quit_ = true;
  if (lease_keeper_.joinable()) lease_keeper_.join();
}

bool BrokerDaemon::serve(const std::atomic<bool>& stop) {
  auto last_stats = Clock::now(), last_eval = last_stats - std::chrono::hours(1);
  auto next_publish = Clock::now();  // the first model goes out at once: a node joining now gets it
  while (!stop) {
    if (lease_link_ && !lease_held_) return false;
    if (Clock::now() < next_publish) {
      std::this_thread::sleep_for(std::min<Clock::duration>(next_publish - Clock::now(), std::chrono::milliseconds(50)));
      continue;
    }
    next_publish = Clock::now() + std::chrono::milliseconds(cfg_.publish_interval_ms);
    // With a lease, each publish (which keeps the server model where a standby resumes from) is
    // made only right after the lease was renewed: a broker that was frozen or cut off while
    // another took over finds out here, before it overwrites anything.
    if (lease_link_) {
      try {
        if (!renew_lease()) return false;
      } catch (const NatsError&) {
        continue;  // JetStream unreachable: the keeper decides when to step down; no publish meanwhile
      }
    }
    publish();
    const BrokerStats st = service_->stats();  // one copy a round, for what reports it
    report_journal(st);
    update_view(st);
    const auto now = Clock::now();
    if (now - last_eval >= std::chrono::milliseconds(cfg_.eval_interval_ms)) {
      last_eval = now;
      publish_metrics(st);
    }
    if (cfg_.stats_interval_ms > 0 && now - last_stats >= std::chrono::milliseconds(cfg_.stats_interval_ms)) {
      print_stats(st, std::chrono::duration<double>(now - last_stats).count());
      last_stats = now;
    }
  }
  return true;
}

void BrokerDaemon::publish() {
  try {
    service_->publish_if_changed();
  } catch (const std::exception& e) {  // link down: the next round tries again
    fmt::print(stderr, "swarmlens-broker: cannot publish the model: {}\n", e.what());
  }
}

void BrokerDaemon::report_journal(const BrokerStats& st) {
  if (st.journal_errors <= journal_errors_seen_) return;
  fmt::print(stderr, "swarmlens-broker: journal: {} write(s) failed ({}): updates accepted since the last "
             "snapshot would be lost in a crash\n", st.journal_errors - journal_errors_seen_, st.journal_error);
  journal_errors_seen_ = st.journal_errors;
}

void BrokerDaemon::publish_metrics(const BrokerStats& st) {
  nlohmann::json m = {{"source", "broker"}, {"model_version", st.version}, {"updates_in", st.updates_in},
                      {"bytes_in", st.bytes_in}, {"accepted", st.accepted}, {"rejected", st.rejected},
                      {"models_out", st.models_out}, {"bytes_out", st.bytes_out}, {"journal_errors", st.journal_errors},
                      {"clipped", st.clipped}, {"norm_median", st.norm_median}, {"models_refused", st.models_refused},
                      {"keyframes_out", st.snapshots_out}, {"deltas_out", st.deltas_out},
                      {"keyframes_kept", st.keyframes_kept}, {"downlink_residual", st.downlink_residual},
                      {"signed", st.signing}};
  if (evaluator_) {
    if (const Evaluator::Result r = evaluator_->result(); r.accuracy >= 0) {
      m["test_accuracy"] = r.accuracy;
      m["evaluated_version"] = r.version;
      m["test_images"] = r.images;
    }
  } else if (const NodeAccuracy::Summary n = node_accuracy_.summary(); n.nodes) {
    m["node_holdout_accuracy"] = n.accuracy;
    m["node_holdout_nodes"] = n.nodes;
    m["node_holdout_samples"] = n.samples;
  }
  if (!evaluator_) m["node_reports_refused"] = node_accuracy_.refused();
  const std::string text = m.dump();
  try {
    metrics_link_->publish(metrics_subject(cfg_.broker.model_id), std::vector<uint8_t>(text.begin(), text.end()));
  } catch (const std::exception& e) {
    fmt::print(stderr, "swarmlens-broker: cannot publish metrics: {}\n", e.what());
  }
}

void BrokerDaemon::print_stats(const BrokerStats& st, double seconds) {
  std::string rejected;
  for (const auto& [why, n] : st.rejected) rejected += fmt::format(" {}={}", why, n);
  std::string acc = "-";
  if (evaluator_) {
    if (const double a = evaluator_->result().accuracy; a >= 0) acc = fmt::format("{:.4f}", a);
  } else if (const NodeAccuracy::Summary n = node_accuracy_.summary(); n.nodes) {
    acc = fmt::format("{:.4f} (nodes' own held-out frames: {} nodes, {} frames)", n.accuracy, n.nodes, n.samples);
  }
  fmt::print("stats: {:.1f} updates/s, in {} B, out {} B ({} keyframes, {} deltas), model v{}, accuracy {}, "
             "clipped {} (median norm {:.3g}), rejected:{}\n",
             double(st.updates_in - last_stats_.updates_in) / seconds, st.bytes_in, st.bytes_out, st.snapshots_out,
             st.deltas_out, st.version, acc, st.clipped,
             st.norm_median, rejected.empty() ? " none" : rejected);
  if (st.models_refused > last_stats_.models_refused)
    fmt::print(stderr, "swarmlens-broker: {} model(s) refused before publishing and rolled back (last: {})\n",
               st.models_refused - last_stats_.models_refused, st.model_refusal);
  std::fflush(stdout);
  last_stats_ = st;
}

}  // namespace swarmlens
