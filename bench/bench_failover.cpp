// `swarmlens bench failover`: no single broker to lose, measured. A cluster of nats-servers
// (JetStream streams replicated), two swarmlens-broker processes of one model with a lease and the
// replicated journal, and counting nodes (acknowledged uplinks) sending exact synthetic updates
// (multiples of 1/256, merged at weight 1) without pause. Then, in turn: kill -9 of the serving
// broker, kill -9 of one nats-server, and everything stopped and started again. For each: how long
// until a broker serves and until the nodes are answered again; at the end, whether the model holds
// every update each node was told was merged, exactly once (its version counts merges, its weights
// their sum).
#include <signal.h>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "bench_report.h"
#include "bench_swarm.h"
#include "codec.h"
#include "command.h"
#include "daemon.h"
#include "model_channel.h"
#include "node_link.h"
#include "process.h"
#include "reliable_uplink.h"

namespace swarmlens {

void add_failover_bench_command(CLI::App& parent, Commands& commands);

struct FailoverBenchOptions {
  uint32_t servers = SwarmBenchOptions::kDefaultServers;
  uint32_t nodes = 8;
  int lease_ms = DaemonConfig::kStandbyLeaseMs;
  int ack_timeout_ms = 1000;  // the nodes' (UplinkOptions): a resend after this long unanswered
  double phase_s = 8;         // between faults
  std::string json_path;
};

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;
double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Update k of node n: 16 entries, values in {-3..3}/256 without 0: exact in fp16 and in fp32 sums.
SparseVector synthetic(uint32_t dim, uint32_t node, uint64_t k) {
  SparseVector v;
  v.dim = dim;
  for (uint32_t j = 0; j < 16; ++j) v.index.push_back((node * 7919u + uint32_t(k) * 104729u + j * (dim / 16)) % dim);
  std::sort(v.index.begin(), v.index.end());
  v.index.erase(std::unique(v.index.begin(), v.index.end()), v.index.end());
  for (size_t j = 0; j < v.index.size(); ++j) {
    const int q = int((node + k + j) % 6) - 3;
    v.value.push_back(float(q >= 0 ? q + 1 : q) / 256.0f);
  }
  return v;
}

size_t count_in(const std::string& path, const std::string& what) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  const std::string text = s.str();
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The moments nodes were answered "accepted" (or "replayed").
class Answers {
 public:
  void add() {
    std::lock_guard<std::mutex> g(m_);
    at_.push_back(Clock::now());
  }
  // The longest the fleet went without an answer between from and to (seconds).
  double longest_gap(Clock::time_point from, Clock::time_point to) const {
    std::lock_guard<std::mutex> g(m_);
    Clock::time_point last = from;
    double gap = 0;
    for (auto it = std::upper_bound(at_.begin(), at_.end(), from); it != at_.end() && *it <= to; ++it) {
      gap = std::max(gap, secs(*it - last));
      last = *it;
    }
    return std::max(gap, secs(to - last));
  }
  // Seconds from t to the first answer after it (-1: none yet).
  double first_after(Clock::time_point t) const {
    std::lock_guard<std::mutex> g(m_);
    auto it = std::upper_bound(at_.begin(), at_.end(), t);
    return it == at_.end() ? -1.0 : secs(*it - t);
  }

 private:
  mutable std::mutex m_;
  std::vector<Clock::time_point> at_;
};

class CountingNode {
 public:
  CountingNode(const NatsOptions& opts, const std::string& id, uint32_t node, int ack_timeout_ms, Answers& answers)
      : id_(id), node_(node), link_(opts, id, [](std::shared_ptr<const Snapshot>) {}, {}, false),
        uplink_(link_, node, UplinkOptions{ack_timeout_ms, false, [&answers](const UpdateAck& a) {
                                             if (a.delivered()) answers.add();
                                           }}) {
    for (int i = 0; i < 300 && !link_.latest(); ++i) {
      std::this_thread::sleep_for(100ms);
      link_.pull_model();
    }
    if (!link_.latest()) throw std::runtime_error("no model from the broker in 30 s");
    initial_ = link_.latest();
    thread_ = std::thread([this] {
      const uint32_t dim = uint32_t(initial_->params.size());
      for (uint64_t k = 1; !quit_; ++k) {
        UpdateHeader h{id_, initial_->layout_hash, 0, node_, k, 1};
        const auto msg = encode_update(h, synthetic(dim, node_, k), CodecConfig{});
        while (!quit_ && !uplink_.offer(msg)) std::this_thread::sleep_for(5ms);
        if (!quit_) sent_ = k;
        std::this_thread::sleep_for(20ms);
      }
    });
  }
  ~CountingNode() { finish(0s); }
  // Stops sending; waits until the last update is answered.
  bool finish(std::chrono::seconds timeout) {
    quit_ = true;
    if (thread_.joinable()) thread_.join();
    return uplink_.wait_idle(std::chrono::duration_cast<std::chrono::milliseconds>(timeout));
  }
  uint64_t sent() const { return sent_; }
  UplinkStats stats() const { return uplink_.stats(); }
  const Snapshot& initial() const { return *initial_; }

 private:
  std::string id_;
  uint32_t node_;
  NodeLink link_;
  ReliableUplink uplink_;
  std::shared_ptr<const Snapshot> initial_;
  std::atomic<bool> quit_{false};
  std::atomic<uint64_t> sent_{0};
  std::thread thread_;
};

// A swarmlens-broker of the model standing in for others, merging at weight 1 (every update exact).
std::vector<std::string> standby_broker_argv(const std::string& urls, const std::string& id, int lease_ms, int replicas,
                                             const std::string& name) {
  return {find_sibling("swarmlens-broker", "broker"), "--nats", urls, "--model-id", id, "--replicated-journal",
          "--lease-ms", std::to_string(lease_ms), "--stream-replicas", std::to_string(replicas), "--instance", name,
          "--server-lr", "1", "--buffer-size", "1", "--staleness-grace", "1000000", "--max-staleness", "1000000",
          "--clip-factor", "0", "--stats", "0"};
}

bool wait_for(const std::function<bool()>& done, double seconds) {
  const auto end = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  while (!done() && Clock::now() < end) std::this_thread::sleep_for(10ms);
  return done();
}

// Whether the final model holds every node's updates 1..sent exactly once: each node's last sequence
// applied, one version per merge, and the weights the initial ones minus the exact sum.
struct Exactness {
  double max_weight_error = 0;
  bool applied_all = true, exact = false;
  uint64_t in_model = 0;
  uint64_t resent = 0, unavailable = 0;  // by the nodes; answered journal_unavailable
};
Exactness exactness(const Snapshot& final_model, const std::vector<std::unique_ptr<CountingNode>>& nodes, uint64_t total) {
  Exactness x;
  std::vector<double> w(nodes.front()->initial().params.begin(), nodes.front()->initial().params.end());
  for (uint32_t n = 0; n < nodes.size(); ++n) {
    for (uint64_t k = 1; k <= nodes[n]->sent(); ++k) {
      const SparseVector u = synthetic(uint32_t(w.size()), n, k);
      for (size_t j = 0; j < u.nnz(); ++j) w[u.index[j]] -= u.value[j];
    }
    const auto it = final_model.applied.find(n);
    x.applied_all = x.applied_all && it != final_model.applied.end() && it->second == nodes[n]->sent();
    if (it != final_model.applied.end()) x.in_model += it->second;
  }
  for (size_t i = 0; i < w.size(); ++i) x.max_weight_error = std::max(x.max_weight_error, std::abs(double(final_model.params[i]) - w[i]));
  x.exact = x.max_weight_error < 1e-4 && final_model.version == total;
  for (auto& n : nodes) {
    x.resent += n->stats().resent;
    x.unavailable += n->stats().unavailable;
  }
  return x;
}

}  // namespace

int run_failover_bench(const FailoverBenchOptions& o) {
  const JsonReport report(o.json_path);
  const std::string id = "failover";
  const std::string logs = (std::filesystem::temp_directory_path() / fmt::format("swarmlens-failover-{}", getpid())).string();
  std::filesystem::create_directories(logs);
  fmt::print("a cluster of {} nats-servers, two brokers (lease {} ms, replicated journal), {} nodes; logs in {}\n",
             o.servers, o.lease_ms, o.nodes, logs);
  LocalNatsCluster cluster(o.servers, logs + "/nats");
  const int replicas = int(std::min<uint32_t>(3, o.servers));
  std::string urls;
  for (const auto& u : cluster.urls()) urls += (urls.empty() ? "" : ",") + u;
  auto broker_argv = [&](const std::string& name) { return standby_broker_argv(urls, id, o.lease_ms, replicas, name); };
  const std::string log_a = logs + "/broker-a.log", log_b = logs + "/broker-b.log";
  std::unique_ptr<Process> a, b;
  auto serving = [&] { return count_in(log_a, "serving model") + count_in(log_b, "serving model"); };
  // JetStream elects its meta leader a few seconds after the routes form: a broker that started too
  // early exits, and is started again.
  for (int attempt = 0; attempt < 30 && serving() == 0; ++attempt) {
    a = std::make_unique<Process>(broker_argv("broker-a"), log_a);
    wait_for([&] { return serving() > 0 || !a->running(); }, 30);
    if (!a->running()) std::this_thread::sleep_for(1s);
  }
  if (serving() == 0) throw std::runtime_error("broker-a did not start serving; its log: " + log_a);
  b = std::make_unique<Process>(broker_argv("broker-b"), log_b);
  if (!wait_for([&] { return count_in(log_b, "standing by") > 0; }, 30))
    throw std::runtime_error("broker-b did not stand by; its log: " + log_b);
  NatsOptions nats;
  nats.urls = cluster.urls();
  Answers answers;
  std::vector<std::unique_ptr<CountingNode>> nodes;
  for (uint32_t n = 0; n < o.nodes; ++n) nodes.push_back(std::make_unique<CountingNode>(nats, id, n, o.ack_timeout_ms, answers));
  auto pause = [&] { std::this_thread::sleep_for(std::chrono::duration<double>(o.phase_s)); };
  nlohmann::json faults = nlohmann::json::array();
  auto measure = [&](const std::string& fault, Clock::time_point at, size_t serving_before) {
    const bool served = wait_for([&] { return serving() > serving_before; }, 60);
    const double broker_s = served ? secs(Clock::now() - at) : -1;  // polled every 10 ms
    wait_for([&] { return answers.first_after(at) >= 0; }, 60);
    const double answered_s = answers.first_after(at);
    fmt::print("{}: a broker serving after {:.2f} s, nodes answered again after {:.2f} s\n", fault, broker_s, answered_s);
    faults.push_back({{"fault", fault}, {"broker_serving_s", broker_s}, {"nodes_answered_s", answered_s}});
  };
  // The longest the nodes went unanswered in the phase after a fault.
  auto gap_after = [&](size_t fault, Clock::time_point at) {
    const double gap = answers.longest_gap(at, Clock::now());
    faults[fault]["longest_unanswered_s"] = gap;
    fmt::print("  longest the nodes went unanswered in the {:.0f} s after it: {:.2f} s\n", secs(Clock::now() - at), gap);
  };

  pause();
  {  // 1. kill -9 of the serving broker
    const size_t before = serving();
    const bool a_serves = count_in(log_b, "serving model") == 0;
    const auto at = Clock::now();
    (a_serves ? a : b)->stop(SIGKILL, 0ms);
    measure("kill -9 of the serving broker", at, before);
    (a_serves ? a : b) = std::make_unique<Process>(broker_argv(a_serves ? "broker-a" : "broker-b"), a_serves ? log_a : log_b);
    pause();
    gap_after(0, at);
  }
  {  // 2. kill -9 of one nats-server (and back after the pause)
    const auto at = Clock::now();
    cluster.server(0).kill();
    fmt::print("kill -9 of one of the nats-servers\n");
    faults.push_back({{"fault", "kill -9 of one of the nats-servers"}});
    pause();
    gap_after(1, at);
    cluster.server(0).start();
  }
  pause();
  {  // 3. everything stopped and started again
    const size_t before = serving();
    a->stop(SIGTERM, 10s);
    b->stop(SIGTERM, 10s);
    for (size_t i = 0; i < cluster.size(); ++i) cluster.server(i).stop();
    const auto at = Clock::now();  // everything down: timed from here
    for (size_t i = 0; i < cluster.size(); ++i) cluster.server(i).start();
    a = std::make_unique<Process>(broker_argv("broker-a"), log_a);
    b = std::make_unique<Process>(broker_argv("broker-b"), log_b);
    // JetStream needs its meta leader again: a broker that exits at start is started again.
    for (int i = 0; i < 60 && serving() == before; ++i) {
      std::this_thread::sleep_for(500ms);
      if (!a->running()) a = std::make_unique<Process>(broker_argv("broker-a"), log_a);
      if (!b->running()) b = std::make_unique<Process>(broker_argv("broker-b"), log_b);
    }
    measure("everything restarted", at, before);
    pause();
    gap_after(2, at);
  }

  uint64_t total = 0;
  bool all_answered = true;
  for (auto& n : nodes) {
    all_answered = n->finish(120s) && all_answered;
    total += n->sent();
  }
  a->stop(SIGTERM, 15s);
  b->stop(SIGTERM, 15s);
  auto link = NatsLink::connect(nats);
  const auto final_model = fetch_server_checkpoint(*link, id);
  if (!final_model) throw std::runtime_error("no server checkpoint kept");
  const Exactness x = exactness(*final_model, nodes, total);
  const double diff = x.max_weight_error;
  const bool applied_all = x.applied_all, exact = x.exact;
  const uint64_t in_model = x.in_model;
  const uint64_t resent = x.resent, unavailable = x.unavailable;
  const nlohmann::json j = {{"servers", o.servers}, {"replicas", replicas}, {"nodes", o.nodes}, {"lease_ms", o.lease_ms},
                            {"ack_timeout_ms", o.ack_timeout_ms}, {"faults", faults}, {"updates_sent", total},
                            {"model_version", final_model->version}, {"every_node_answered", all_answered},
                            {"applied_all", applied_all}, {"max_weight_error", diff}, {"lost", total - std::min(total, in_model)},
                            {"exactly_once", exact}, {"resent", resent}, {"journal_unavailable", unavailable}};
  fmt::print("{} updates sent and answered; the model holds {} merges (version {}), every node's last applied: {}, "
             "weights off by at most {:.2e}: {}\n", total, final_model->version, final_model->version,
             applied_all ? "yes" : "NO", diff, exact ? "nothing lost, nothing twice" : "NOT EXACT");
  fmt::print("{} resent by the nodes, {} answered journal_unavailable\n", resent, unavailable);
  report.write(j);
  std::error_code ec;
  if (exact) std::filesystem::remove_all(logs, ec);
  return exact && all_answered ? 0 : 1;
}

void add_failover_bench_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<FailoverBenchOptions>();
  auto* c = parent.add_subcommand("failover", "Standby brokers on a NATS cluster: time to serve again and updates lost "
                                              "after kill -9 of the broker, of a nats-server, and a restart of everything");
  c->add_option("--servers", o->servers, "nats-servers in the cluster")->check(CLI::Range(1, 5))->capture_default_str();
  c->add_option("--nodes", o->nodes, "counting nodes")->check(CLI::Range(1, 256))->capture_default_str();
  c->add_option("--lease-ms", o->lease_ms, "the brokers' --lease-ms")->check(CLI::Range(100, 600000))->capture_default_str();
  c->add_option("--ack-timeout-ms", o->ack_timeout_ms, "the nodes' resend timeout")->check(CLI::Range(100, 600000))->capture_default_str();
  c->add_option("--phase-s", o->phase_s, "seconds of training between faults")->check(CLI::Range(1.0, 600.0))->capture_default_str();
  c->add_option("--json", o->json_path, "write results as JSON to this file");
  commands.add(c, [o] { return run_failover_bench(*o); });
}

}  // namespace swarmlens
