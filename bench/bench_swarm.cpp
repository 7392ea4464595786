#include "bench_swarm.h"

#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "bench_report.h"
#include "codec.h"
#include "command.h"
#include "model.h"
#include "model_channel.h"
#include "nats_link.h"
#include "process.h"
#include "update_ack.h"

namespace swarmlens {
namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// CPU seconds (user + system) a process has used, and its peak resident memory, from /proc.
double cpu_seconds(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(f, line)) return 0;
  std::istringstream rest(line.substr(line.rfind(')') + 2));  // after "pid (comm) "
  std::string field;
  double ticks = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i)
    if (i == 14 || i == 15) ticks += std::stod(field);  // utime, stime
  return ticks / double(sysconf(_SC_CLK_TCK));
}
double peak_rss_mib(int pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0;
}

// One sparse update: `density` of the entries at random positions, gradient-like values.
std::vector<uint8_t> make_update(const std::string& id, uint64_t hash, uint32_t dim, size_t k, uint32_t node,
                                 uint64_t seq, std::mt19937& rng) {
  std::normal_distribution<float> value(0.0f, 0.01f);
  SparseVector v;
  v.dim = dim;
  while (v.index.size() < k) {
    v.index.push_back(uint32_t(rng() % dim));
    if (v.index.size() == k) {
      std::sort(v.index.begin(), v.index.end());
      v.index.erase(std::unique(v.index.begin(), v.index.end()), v.index.end());
    }
  }
  for (size_t i = 0; i < k; ++i) v.value.push_back(value(rng));
  return encode_update({id, hash, 0, node, seq, 32}, v, {});
}

// Bytes the cluster's servers have sent and received (all their connections: clients, routes, leaf
// nodes), from their monitoring endpoints.
std::pair<uint64_t, uint64_t> cluster_bytes(LocalNatsCluster& c) {
  uint64_t out = 0, in = 0;
  for (size_t i = 0; i < c.size(); ++i) {
    const auto v = nlohmann::json::parse(http_get_loopback(c.monitor_port(i), "/varz"));
    out += v.value("out_bytes", uint64_t(0));
    in += v.value("in_bytes", uint64_t(0));
  }
  return {out, in};
}
uint64_t cluster_leafnodes(LocalNatsCluster& c) {
  uint64_t n = 0;
  for (size_t i = 0; i < c.size(); ++i) n += nlohmann::json::parse(http_get_loopback(c.monitor_port(i), "/varz")).value("leafnodes", uint64_t(0));
  return n;
}

// What the fleet's nodes heard: answers to their updates and bytes of the model stream.
struct Heard {
  std::atomic<uint64_t> answered{0}, accepted{0}, model_bytes{0}, model_messages{0};
  std::mutex m;
  std::map<std::string, uint64_t> refused;  // by verdict
};

}  // namespace

namespace {

// One run of the bench, step by step: the updates, the cluster (and sites), the fleet, the probe,
// the broker, the load, and what was measured.
class SwarmRun {
 public:
  explicit SwarmRun(const SwarmBenchOptions& o) : o_(o) {
    const auto model = Model::create({}, 1);
    hash_ = model->layout_hash();
    dim_ = uint32_t(model->num_params());
    k_ = std::max<size_t>(1, size_t(std::lround(dim_ * o.density)));
    per_node_ = std::max<uint64_t>(1, uint64_t(std::ceil(o.rate * o.seconds / o.nodes)));
    logs_ = (std::filesystem::temp_directory_path() / fmt::format("swarmlens-swarm-{}", getpid())).string();
    std::filesystem::create_directories(logs_);
  }
  ~SwarmRun() {
    probe_.reset();
    links_.clear();
    watcher_.reset();
    std::error_code ec;
    std::filesystem::remove_all(logs_, ec);
  }

  nlohmann::json run() {
    encode();
    start_cluster();
    connect_fleet();
    start_probe();
    start_broker();
    offer_load();
    return measured();
  }

 private:
  // Updates, encoded before the clock starts.
  void encode() {
    fmt::print("encoding {} updates ({} per node x {} nodes, {} of {} entries each)...\n", per_node_ * o_.nodes, per_node_,
               o_.nodes, k_, dim_);
    updates_.resize(o_.nodes);
    std::vector<std::thread> enc;
    const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned t = 0; t < threads; ++t)
      enc.emplace_back([&, t] {
        for (uint32_t n = t; n < o_.nodes; n += threads) {
          std::mt19937 rng(n * 7919 + 1);
          for (uint64_t s = 1; s <= per_node_; ++s) updates_[n].push_back(make_update(kId, hash_, dim_, k_, n, s, rng));
        }
      });
    for (auto& t : enc) t.join();
  }

  // The cluster, JetStream ready, the broker's metrics watched, and the sites joined as leaf nodes.
  void start_cluster() {
    fmt::print("starting a cluster of {} nats-servers (logs in {})...\n", o_.servers, logs_);
    cluster_ = std::make_unique<LocalNatsCluster>(o_.servers, logs_ + "/nats");
    nats_.urls = cluster_->urls();
    // JetStream's meta group elects a leader a few seconds after the routes form: wait until a
    // replicated stream can be made.
    const auto t0 = Clock::now();
    for (;;) {
      try {
        auto probe = NatsLink::connect(nats_);
        probe->ensure_retention_stream("SWARMLENS_BENCH_READY", "swarmlens.bench-ready.>", 1 << 20, o_.replicas);
        break;
      } catch (const NatsError& e) {
        if (secs(Clock::now() - t0) > 60) throw std::runtime_error(std::string("JetStream cluster not ready: ") + e.what());
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
    }
    fmt::print("JetStream ready after {:.1f} s\n", secs(Clock::now() - t0));
    watcher_ = NatsLink::connect(nats_);  // the broker's own counters, from its metrics subject
    watcher_->subscribe(metrics_subject(kId), [this](const std::string&, std::vector<uint8_t> p) {
      auto j = nlohmann::json::parse(p.begin(), p.end(), nullptr, false);
      if (j.is_discarded()) return;
      std::lock_guard<std::mutex> g(metrics_m_);
      last_metrics_ = std::move(j);
    });
    watcher_->flush();
    // Sites: a nats-server each, a leaf node of the cluster; the site's cameras connect to it.
    for (uint32_t i = 0; i < o_.sites; ++i)
      sites_.push_back(std::make_unique<LocalNatsServer>(
          logs_ + "/site-" + std::to_string(i) + ".log",
          std::vector<std::string>{"-c", cluster_->leaf_remotes_config(), "--server_name", "site-" + std::to_string(i)},
          false));
    if (!o_.sites) return;
    const auto t1 = Clock::now();
    while (cluster_leafnodes(*cluster_) < o_.sites && secs(Clock::now() - t1) < 30)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (cluster_leafnodes(*cluster_) < o_.sites) throw std::runtime_error("the site servers did not join the cluster as leaf nodes");
    fmt::print("{} site servers joined as leaf nodes\n", o_.sites);
  }

  // The fleet: a connection each, spread over the cluster's servers (or to their site's), following
  // the model subject and its own answers.
  void connect_fleet() {
    fmt::print("connecting {} nodes...\n", o_.nodes);
    links_.resize(o_.nodes);
    const auto t0 = Clock::now();
    for (uint32_t n = 0; n < o_.nodes; ++n) {
      NatsOptions mine = nats_;
      std::rotate(mine.urls.begin(), mine.urls.begin() + (n % mine.urls.size()), mine.urls.end());
      if (o_.sites) mine.urls = {sites_[n % o_.sites]->url()};
      mine.name = "swarm-node-" + std::to_string(n);
      mine.shared_delivery = true;
      links_[n] = NatsLink::connect(mine);
      links_[n]->subscribe(model_subject(kId), [this](const std::string&, std::vector<uint8_t> p) {
        heard_.model_bytes += p.size();
        ++heard_.model_messages;
      });
      links_[n]->subscribe(ack_subject(kId, n), [this](const std::string&, std::vector<uint8_t> p) {
        const auto ack = parse_ack(std::string(p.begin(), p.end()));
        if (!ack) return;
        ++heard_.answered;
        if (ack->verdict == "accepted") {
          ++heard_.accepted;
        } else {
          std::lock_guard<std::mutex> g(heard_.m);
          ++heard_.refused[ack->verdict];
        }
      });
    }
    for (auto& l : links_) l->flush(30000);
    fmt::print("{} nodes connected in {:.1f} s\n", o_.nodes, secs(Clock::now() - t0));
  }

  // The latency probe: one more node that decodes the model stream and times its own updates from
  // publish to the first model that holds them.
  void start_probe() {
    probe_ = NatsLink::connect(nats_);
    probe_->subscribe(model_subject(kId), [this](const std::string& s, std::vector<uint8_t> payload) {
      ++probe_models_;
      std::shared_ptr<const Snapshot> m;
      try {
        m = receiver_.receive(payload.data(), payload.size(), s);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> g(lat_m_);
        probe_error_ = e.what();
        return;
      }
      if (!m) return;
      const auto it = m->applied.find(probe_id());
      if (it == m->applied.end()) return;
      const auto now = Clock::now();
      std::lock_guard<std::mutex> g(lat_m_);
      for (auto i = sent_at_.begin(); i != sent_at_.end() && i->first <= it->second;) {
        lat_ms_.push_back(secs(now - i->second) * 1000);
        i = sent_at_.erase(i);
      }
    });
    probe_->flush();
  }

  // The broker last, so that the whole fleet hears its first model (a keyframe) as a fleet switched
  // on together does; then the probe's first update, and every node's first model.
  void start_broker() {
    std::string url_list;
    for (const auto& u : nats_.urls) url_list += (url_list.empty() ? "" : ",") + u;
    broker_log_ = logs_ + "/broker.log";
    broker_ = std::make_unique<Process>(
        std::vector<std::string>{find_sibling("swarmlens-broker", "broker"), "--nats", url_list, "--model-id", kId,
                                 "--stream-replicas", std::to_string(o_.replicas), "--decode-threads",
                                 std::to_string(o_.decode_threads), "--publish-interval-ms",
                                 std::to_string(o_.publish_interval_ms), "--downlink-density",
                                 fmt::format("{}", o_.downlink_density), "--rate-updates", "0", "--rate-bytes", "0",
                                 "--fleet-size", std::to_string(o_.nodes), "--max-staleness", "1000000000",
                                 "--staleness-grace", "1000000000", "--stats-interval-ms", "0"},
        broker_log_);
    const auto t0 = Clock::now();
    std::mt19937 rng(3);
    const auto first = make_update(kId, hash_, dim_, k_, probe_id(), 1, rng);
    while (secs(Clock::now() - t0) < 60 && broker_->running()) {  // subscribed: its first metrics message
      {
        std::lock_guard<std::mutex> g(metrics_m_);
        if (!last_metrics_.is_null()) break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!broker_->running()) throw std::runtime_error("swarmlens-broker exited at start; its log: " + broker_log_);
    probe_->publish(update_subject(kId, probe_id()), first);  // starts the model stream before the load
    // Every node has its first model (a keyframe, about 0.8 MB each) before the clock starts: the
    // downlink measured is the stream's, not the start's.
    while ((!receiver_.latest() || heard_.model_messages < o_.nodes) && secs(Clock::now() - t0) < 60)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!receiver_.latest())
      throw std::runtime_error(fmt::format("no model from the broker in 60 s ({} model messages reached the fleet, {} the "
                                           "probe{}); its log: {}", heard_.model_messages.load(), probe_models_.load(),
                                           probe_error_.empty() ? "" : ": " + probe_error_, broker_log_));
  }

  double cluster_cpu() {
    double c = 0;
    for (size_t i = 0; i < cluster_->size(); ++i) c += cpu_seconds(cluster_->server(i).pid());
    return c;
  }
  double sites_cpu() {
    double c = 0;
    for (auto& site : sites_) c += cpu_seconds(site->pid());
    return c;
  }

  // The fleet's load (driver d publishes for nodes d, d + D, ...; node n's j-th update is due at
  // (j N + n) / rate) and the probe's updates, until every update is answered.
  void offer_load() {
    broker_cpu_ = -cpu_seconds(broker_->pid());
    servers_cpu_ = -cluster_cpu();
    sites_cpu_ = -sites_cpu();
    model_bytes_ = -double(heard_.model_bytes);
    model_messages_ = -double(heard_.model_messages);
    const auto hub0 = cluster_bytes(*cluster_);
    const auto t0 = Clock::now() + std::chrono::milliseconds(100);
    std::vector<std::thread> drivers;
    for (uint32_t d = 0; d < o_.drivers; ++d)
      drivers.emplace_back([&, d] {
        for (uint64_t j = 0; j < per_node_; ++j)
          for (uint32_t n = d; n < o_.nodes; n += o_.drivers) {
            const auto due = t0 + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(double(j * o_.nodes + n) / o_.rate));
            if (Clock::now() < due) std::this_thread::sleep_until(due);
            try {
              links_[n]->publish(update_subject(kId, n), updates_[n][j]);
              ++sent_;
            } catch (const NatsError&) {
            }
          }
      });
    std::thread prober([&] {  // an update every 50 ms while the fleet offers its load
      std::mt19937 rng(5);
      for (uint64_t s = 2; secs(Clock::now() - t0) < o_.seconds; ++s) {
        auto u = make_update(kId, hash_, dim_, k_, probe_id(), s, rng);
        {
          std::lock_guard<std::mutex> g(lat_m_);
          sent_at_[s] = Clock::now();
        }
        probe_->publish(update_subject(kId, probe_id()), u);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
    for (auto& t : drivers) t.join();
    prober.join();
    offered_seconds_ = secs(Clock::now() - t0);
    uint64_t last = 0;  // everything answered, or 60 s without progress
    for (auto progress = Clock::now(); heard_.answered < sent_ && secs(Clock::now() - progress) < 60;) {
      if (heard_.answered != last) {
        last = heard_.answered;
        progress = Clock::now();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    answered_seconds_ = secs(Clock::now() - t0);
    broker_cpu_ += cpu_seconds(broker_->pid());
    servers_cpu_ += cluster_cpu();
    sites_cpu_ += sites_cpu();
    broker_rss_ = peak_rss_mib(broker_->pid());
    const auto hub1 = cluster_bytes(*cluster_);
    hub_out_ = double(hub1.first - hub0.first) / answered_seconds_;
    hub_in_ = double(hub1.second - hub0.second) / answered_seconds_;
    std::this_thread::sleep_for(std::chrono::milliseconds(2 * o_.publish_interval_ms + 100));  // the last probe models
    model_bytes_ += double(heard_.model_bytes);
    model_messages_ += double(heard_.model_messages);
  }

  nlohmann::json measured();

  uint32_t probe_id() const { return o_.nodes; }
  static constexpr char kId[] = "bench";

  const SwarmBenchOptions& o_;
  uint64_t hash_ = 0;
  uint32_t dim_ = 0;
  size_t k_ = 0;
  uint64_t per_node_ = 0;
  std::string logs_, broker_log_;
  std::vector<std::vector<std::vector<uint8_t>>> updates_;
  std::unique_ptr<LocalNatsCluster> cluster_;
  std::vector<std::unique_ptr<LocalNatsServer>> sites_;
  NatsOptions nats_;
  std::mutex metrics_m_;
  nlohmann::json last_metrics_;
  Heard heard_;
  ModelReceiver receiver_;
  std::mutex lat_m_;
  std::map<uint64_t, Clock::time_point> sent_at_;
  std::vector<double> lat_ms_;
  std::atomic<uint64_t> probe_models_{0}, sent_{0};
  std::string probe_error_;
  double offered_seconds_ = 0, answered_seconds_ = 0, broker_cpu_ = 0, servers_cpu_ = 0, sites_cpu_ = 0, broker_rss_ = 0;
  double hub_out_ = 0, hub_in_ = 0, model_bytes_ = 0, model_messages_ = 0;
  // Links last: closed first, before anything their callbacks use.
  std::unique_ptr<Process> broker_;
  std::unique_ptr<NatsLink> watcher_, probe_;
  std::vector<std::unique_ptr<NatsLink>> links_;
};

nlohmann::json SwarmRun::measured() {
  std::vector<double> lat;
  {
    std::lock_guard<std::mutex> g(lat_m_);
    lat = lat_ms_;
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double q) { return lat.empty() ? -1.0 : lat[size_t(q * double(lat.size() - 1))]; };
  probe_.reset();
  links_.clear();
  broker_->stop(SIGTERM, std::chrono::seconds(10));
  nlohmann::json broker_metrics;
  {
    std::lock_guard<std::mutex> g(metrics_m_);
    broker_metrics = last_metrics_;
  }
  const uint64_t sent = sent_, answered = heard_.answered, accepted = heard_.accepted;
  nlohmann::json refused = nlohmann::json::object();
  for (const auto& [why, n] : heard_.refused) refused[why] = n;
  const size_t update_bytes = updates_[0][0].size();
  const nlohmann::json j = {
      {"servers", o_.servers}, {"replicas", o_.replicas}, {"nodes", o_.nodes}, {"density", o_.density},
      {"update_bytes", update_bytes}, {"offered_per_s", o_.rate}, {"offered_seconds", offered_seconds_},
      {"sent", sent}, {"answered", answered}, {"accepted", accepted}, {"refused", refused},
      {"lost", sent - std::min(sent, answered)},
      {"accepted_per_s", double(accepted) / answered_seconds_}, {"answered_seconds", answered_seconds_},
      {"latency", {{"samples", lat.size()}, {"p50_ms", pct(0.5)}, {"p99_ms", pct(0.99)}, {"max_ms", pct(1.0)},
                   {"publish_interval_ms", o_.publish_interval_ms}}},
      {"downlink_bytes_per_s", model_bytes_ / answered_seconds_}, {"model_messages", model_messages_}, {"sites", o_.sites},
      {"hub_out_bytes_per_s", hub_out_}, {"hub_in_bytes_per_s", hub_in_},
      {"broker_cpu_seconds", broker_cpu_}, {"broker_cpu_share", broker_cpu_ / answered_seconds_},
      {"nats_servers_cpu_seconds", servers_cpu_}, {"site_servers_cpu_seconds", sites_cpu_}, {"broker_peak_rss_mib", broker_rss_},
      {"decode_threads", o_.decode_threads}, {"downlink_density", o_.downlink_density},
      {"broker_metrics", broker_metrics}, {"cores", std::thread::hardware_concurrency()}};
  fmt::print("{} nodes on {} nats-servers (streams x{}), {} B updates ({}% dense)\n", o_.nodes, o_.servers, o_.replicas,
             update_bytes, o_.density * 100);
  fmt::print("offered {:.0f} updates/s for {:.1f} s: {} sent, {} answered ({} accepted), {} lost\n", o_.rate,
             offered_seconds_, sent, answered, accepted, j["lost"].get<uint64_t>());
  fmt::print("accepted {:.0f} updates/s (all answered after {:.1f} s)\n", j["accepted_per_s"].get<double>(), answered_seconds_);
  fmt::print("update to model latency (publish every {} ms): p50 {:.0f} ms, p99 {:.0f} ms over {} updates\n",
             o_.publish_interval_ms, pct(0.5), pct(0.99), lat.size());
  fmt::print("model stream received by the nodes: {:.2f} MB/s ({} nodes{})\n", model_bytes_ / answered_seconds_ / 1e6,
             o_.nodes, o_.sites ? fmt::format(" behind {} site leaf nodes", o_.sites) : std::string());
  fmt::print("the cluster's servers sent {:.2f} MB/s and received {:.2f} MB/s (clients, routes, leaf nodes)\n",
             hub_out_ / 1e6, hub_in_ / 1e6);
  fmt::print("broker: {:.2f} CPU s ({:.2f} cores), peak RSS {:.0f} MiB; the cluster's nats-servers: {:.2f} CPU s{}\n",
             broker_cpu_, broker_cpu_ / answered_seconds_, broker_rss_, servers_cpu_,
             o_.sites ? fmt::format(", the site servers: {:.2f} CPU s", sites_cpu_) : std::string());
  return j;
}

}  // namespace

int run_swarm_bench(const SwarmBenchOptions& o) {
  if (o.replicas > int(o.servers))
    throw std::invalid_argument(fmt::format("--replicas {} on a cluster of {} servers", o.replicas, o.servers));
  const JsonReport report(o.json_path);
  SwarmRun run(o);
  report.write(run.run());
  return 0;
}

void add_swarm_bench_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<SwarmBenchOptions>();
  auto* c = parent.add_subcommand("swarm", "The broker on a NATS cluster with a fleet of simulated nodes, a connection "
                                           "each: updates/s answered, latency, downlink, the broker's CPU and memory");
  c->add_option("--servers", o->servers, "nats-servers in the cluster")->check(CLI::Range(1, 5))->capture_default_str();
  c->add_option("--replicas", o->replicas, "copies of the model streams (swarmlens-broker --stream-replicas)")->check(CLI::Range(1, 5))->capture_default_str();
  c->add_option("--nodes", o->nodes, "simulated nodes, a NATS connection each")->check(CLI::Range(1, 20000))->capture_default_str();
  c->add_option("--rate", o->rate, "updates per second offered by the whole fleet")->check(CLI::Range(1.0, 1e6))->capture_default_str();
  c->add_option("--seconds", o->seconds, "how long the fleet offers them")->check(CLI::Range(0.5, 3600.0))->capture_default_str();
  c->add_option("--density", o->density, "share of the model's entries in each update")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  c->add_option("--publish-interval-ms", o->publish_interval_ms, "the broker's model publish timer")->check(CLI::Range(10, 60000))->capture_default_str();
  c->add_option("--decode-threads", o->decode_threads, "the broker's decode threads (0 = the NATS thread)")->check(CLI::Range(0, 64))->capture_default_str();
  c->add_option("--downlink-density", o->downlink_density, "the broker's --downlink-density")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  c->add_option("--drivers", o->drivers, "threads publishing the nodes' updates")->check(CLI::Range(1, 64))->capture_default_str();
  c->add_option("--sites", o->sites, "site nats-servers, leaf nodes of the cluster, the nodes spread over them (0 = "
                 "the nodes connect to the cluster)")->check(CLI::Range(0, 100))->capture_default_str();
  c->add_option("--json", o->json_path, "write results as JSON to this file");
  commands.add(c, [o] { return run_swarm_bench(*o); });
}

}  // namespace swarmlens
