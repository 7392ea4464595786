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

int run_swarm_bench(const SwarmBenchOptions& o) {
  if (o.replicas > int(o.servers))
    throw std::invalid_argument(fmt::format("--replicas {} on a cluster of {} servers", o.replicas, o.servers));
  const JsonReport report(o.json_path);
  const auto model = Model::create({}, 1);
  const uint64_t hash = model->layout_hash();
  const uint32_t dim = uint32_t(model->num_params());
  const std::string id = "bench";
  const size_t k = std::max<size_t>(1, size_t(std::lround(dim * o.density)));
  const uint64_t per_node = std::max<uint64_t>(1, uint64_t(std::ceil(o.rate * o.seconds / o.nodes)));
  const uint64_t total = per_node * o.nodes;

  // Updates, encoded before the clock starts.
  fmt::print("encoding {} updates ({} per node x {} nodes, {} of {} entries each)...\n", total, per_node, o.nodes, k, dim);
  std::vector<std::vector<std::vector<uint8_t>>> updates(o.nodes);
  {
    std::vector<std::thread> enc;
    const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    for (unsigned t = 0; t < threads; ++t)
      enc.emplace_back([&, t] {
        for (uint32_t n = t; n < o.nodes; n += threads) {
          std::mt19937 rng(n * 7919 + 1);
          for (uint64_t s = 1; s <= per_node; ++s) updates[n].push_back(make_update(id, hash, dim, k, n, s, rng));
        }
      });
    for (auto& t : enc) t.join();
  }
  const size_t update_bytes = updates[0][0].size();

  const std::string logs = (std::filesystem::temp_directory_path() / fmt::format("swarmlens-swarm-{}", getpid())).string();
  std::filesystem::create_directories(logs);
  fmt::print("starting a cluster of {} nats-servers (logs in {})...\n", o.servers, logs);
  LocalNatsCluster cluster(o.servers, logs + "/nats");
  NatsOptions nats;
  nats.urls = cluster.urls();
  std::string url_list;
  for (const auto& u : nats.urls) url_list += (url_list.empty() ? "" : ",") + u;

  // JetStream's meta group elects a leader a few seconds after the routes form: wait until a
  // replicated stream can be made.
  {
    const auto t0 = Clock::now();
    for (;;) {
      try {
        auto probe = NatsLink::connect(nats);
        probe->ensure_retention_stream("SWARMLENS_BENCH_READY", "swarmlens.bench-ready.>", 1 << 20, o.replicas);
        break;
      } catch (const NatsError& e) {
        if (secs(Clock::now() - t0) > 60) throw std::runtime_error(std::string("JetStream cluster not ready: ") + e.what());
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
      }
    }
    fmt::print("JetStream ready after {:.1f} s\n", secs(Clock::now() - t0));
  }

  // The broker's own counters, from its metrics subject.
  auto watcher = NatsLink::connect(nats);
  std::mutex metrics_m;
  nlohmann::json last_metrics;
  watcher->subscribe(metrics_subject(id), [&](const std::string&, std::vector<uint8_t> p) {
    auto j = nlohmann::json::parse(p.begin(), p.end(), nullptr, false);
    if (j.is_discarded()) return;
    std::lock_guard<std::mutex> g(metrics_m);
    last_metrics = std::move(j);
  });
  watcher->flush();

  // Sites: a nats-server each, a leaf node of the cluster; the site's cameras connect to it.
  std::vector<std::unique_ptr<LocalNatsServer>> sites;
  for (uint32_t i = 0; i < o.sites; ++i)
    sites.push_back(std::make_unique<LocalNatsServer>(
        logs + "/site-" + std::to_string(i) + ".log",
        std::vector<std::string>{"-c", cluster.leaf_remotes_config(), "--server_name", "site-" + std::to_string(i)}, false));
  if (o.sites) {
    const auto t0 = Clock::now();
    while (cluster_leafnodes(cluster) < o.sites && secs(Clock::now() - t0) < 30)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (cluster_leafnodes(cluster) < o.sites) throw std::runtime_error("the site servers did not join the cluster as leaf nodes");
    fmt::print("{} site servers joined as leaf nodes\n", o.sites);
  }

  // The fleet: a connection each, spread over the cluster's servers (or to their site's), following
  // the model subject and its own answers.
  fmt::print("connecting {} nodes...\n", o.nodes);
  Heard heard;
  std::vector<std::unique_ptr<NatsLink>> links(o.nodes);
  const auto connect_start = Clock::now();
  for (uint32_t n = 0; n < o.nodes; ++n) {
    NatsOptions mine = nats;
    std::rotate(mine.urls.begin(), mine.urls.begin() + (n % mine.urls.size()), mine.urls.end());
    if (o.sites) mine.urls = {sites[n % o.sites]->url()};
    mine.name = "swarm-node-" + std::to_string(n);
    mine.shared_delivery = true;
    links[n] = NatsLink::connect(mine);
    links[n]->subscribe(model_subject(id), [&](const std::string&, std::vector<uint8_t> p) {
      heard.model_bytes += p.size();
      ++heard.model_messages;
    });
    links[n]->subscribe(ack_subject(id, n), [&](const std::string&, std::vector<uint8_t> p) {
      const auto ack = parse_ack(std::string(p.begin(), p.end()));
      if (!ack) return;
      ++heard.answered;
      if (ack->verdict == "accepted") {
        ++heard.accepted;
      } else {
        std::lock_guard<std::mutex> g(heard.m);
        ++heard.refused[ack->verdict];
      }
    });
  }
  for (auto& l : links) l->flush(30000);
  fmt::print("{} nodes connected in {:.1f} s\n", o.nodes, secs(Clock::now() - connect_start));

  // The latency probe: one more node that decodes the model stream and times its own updates from
  // publish to the first model that holds them.
  const uint32_t probe_id = o.nodes;
  auto probe = NatsLink::connect(nats);
  ModelReceiver receiver;
  std::mutex lat_m;
  std::map<uint64_t, Clock::time_point> sent_at;
  std::vector<double> lat_ms;
  std::atomic<uint64_t> probe_models{0};
  std::string probe_error;
  probe->subscribe(model_subject(id), [&](const std::string& s, std::vector<uint8_t> payload) {
    ++probe_models;
    std::shared_ptr<const Snapshot> m;
    try {
      m = receiver.receive(payload.data(), payload.size(), s);
    } catch (const std::exception& e) {
      std::lock_guard<std::mutex> g(lat_m);
      probe_error = e.what();
      return;
    }
    if (!m) return;
    const auto it = m->applied.find(probe_id);
    if (it == m->applied.end()) return;
    const auto now = Clock::now();
    std::lock_guard<std::mutex> g(lat_m);
    for (auto i = sent_at.begin(); i != sent_at.end() && i->first <= it->second;) {
      lat_ms.push_back(secs(now - i->second) * 1000);
      i = sent_at.erase(i);
    }
  });
  probe->flush();
  // The broker last, so that the whole fleet hears its first model (a keyframe) as a fleet switched on
  // together does.
  const std::string broker_log = logs + "/broker.log";
  Process broker({find_sibling("swarmlens-broker", "broker"), "--nats", url_list, "--model-id", id, "--stream-replicas",
                  std::to_string(o.replicas), "--decode-threads", std::to_string(o.decode_threads),
                  "--publish-interval-ms", std::to_string(o.publish_interval_ms), "--downlink-density",
                  fmt::format("{}", o.downlink_density), "--rate-updates", "0", "--rate-bytes", "0",
                  "--max-staleness", "1000000000", "--staleness-grace", "1000000000", "--stats-interval-ms", "0"},
                 broker_log);

  // Wait for the broker to subscribe (its first metrics message) and for the probe's first model.
  {
    const auto t0 = Clock::now();
    std::mt19937 rng(3);
    const auto first = make_update(id, hash, dim, k, probe_id, 1, rng);
    while (secs(Clock::now() - t0) < 60) {
      {
        std::lock_guard<std::mutex> g(metrics_m);
        if (!last_metrics.is_null()) break;
      }
      if (!broker.running()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (!broker.running()) throw std::runtime_error("swarmlens-broker exited at start; its log: " + broker_log);
    probe->publish(update_subject(id, probe_id), first);  // starts the model stream (a keyframe) before the load
    // Every node has its first model (a keyframe, about 0.8 MB each) before the clock starts: the
    // downlink measured is the stream's, not the start's.
    while ((!receiver.latest() || heard.model_messages < o.nodes) && secs(Clock::now() - t0) < 60)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!receiver.latest())
      throw std::runtime_error(fmt::format("no model from the broker in 60 s ({} model messages reached the fleet, {} the "
                                           "probe{}); its log: {}", heard.model_messages.load(), probe_models.load(),
                                           probe_error.empty() ? "" : ": " + probe_error, broker_log));
  }

  const double broker_cpu0 = cpu_seconds(broker.pid());
  std::vector<double> server_cpu0;
  for (size_t i = 0; i < cluster.size(); ++i) server_cpu0.push_back(cpu_seconds(cluster.server(i).pid()));
  double sites_cpu0 = 0;
  for (auto& site : sites) sites_cpu0 += cpu_seconds(site->pid());
  const uint64_t model_bytes0 = heard.model_bytes;
  const auto hub0 = cluster_bytes(cluster);
  std::atomic<uint64_t> sent{0};
  const auto t0 = Clock::now() + std::chrono::milliseconds(100);
  {
    // Driver d publishes for nodes d, d + D, ...; node n's j-th update is due at (j N + n) / rate.
    std::vector<std::thread> drivers;
    for (uint32_t d = 0; d < o.drivers; ++d)
      drivers.emplace_back([&, d] {
        for (uint64_t j = 0; j < per_node; ++j)
          for (uint32_t n = d; n < o.nodes; n += o.drivers) {
            const auto due = t0 + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(double(j * o.nodes + n) / o.rate));
            if (Clock::now() < due) std::this_thread::sleep_until(due);
            try {
              links[n]->publish(update_subject(id, n), updates[n][j]);
              ++sent;
            } catch (const NatsError&) {
            }
          }
      });
    // The probe: an update every 50 ms while the fleet offers its load.
    std::thread prober([&] {
      std::mt19937 rng(5);
      for (uint64_t s = 2; secs(Clock::now() - t0) < o.seconds; ++s) {
        auto u = make_update(id, hash, dim, k, probe_id, s, rng);
        {
          std::lock_guard<std::mutex> g(lat_m);
          sent_at[s] = Clock::now();
        }
        probe->publish(update_subject(id, probe_id), u);
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
    });
    for (auto& t : drivers) t.join();
    prober.join();
  }
  const double offered_seconds = secs(Clock::now() - t0);
  // Everything answered, or 60 s without progress.
  {
    uint64_t last = 0;
    auto progress = Clock::now();
    while (heard.answered < sent && secs(Clock::now() - progress) < 60) {
      if (heard.answered != last) {
        last = heard.answered;
        progress = Clock::now();
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  const double answered_seconds = secs(Clock::now() - t0);
  const double broker_cpu = cpu_seconds(broker.pid()) - broker_cpu0;
  double servers_cpu = 0;
  for (size_t i = 0; i < cluster.size(); ++i) servers_cpu += cpu_seconds(cluster.server(i).pid()) - server_cpu0[i];
  double sites_cpu = -sites_cpu0;
  for (auto& site : sites) sites_cpu += cpu_seconds(site->pid());
  const double broker_rss = peak_rss_mib(broker.pid());
  const auto hub1 = cluster_bytes(cluster);
  const double hub_out_per_s = double(hub1.first - hub0.first) / answered_seconds;
  const double hub_in_per_s = double(hub1.second - hub0.second) / answered_seconds;
  std::this_thread::sleep_for(std::chrono::milliseconds(2 * o.publish_interval_ms + 100));  // the last probe models
  const uint64_t model_bytes = heard.model_bytes - model_bytes0;
  std::vector<double> lat;
  {
    std::lock_guard<std::mutex> g(lat_m);
    lat = lat_ms;
  }
  std::sort(lat.begin(), lat.end());
  auto pct = [&](double q) { return lat.empty() ? -1.0 : lat[size_t(q * double(lat.size() - 1))]; };

  probe.reset();
  links.clear();
  broker.stop(SIGTERM, std::chrono::seconds(10));
  nlohmann::json broker_metrics;
  {
    std::lock_guard<std::mutex> g(metrics_m);
    broker_metrics = last_metrics;
  }
  watcher.reset();

  const uint64_t answered = heard.answered, accepted = heard.accepted;
  nlohmann::json refused = nlohmann::json::object();
  for (const auto& [why, n] : heard.refused) refused[why] = n;
  const nlohmann::json j = {
      {"servers", o.servers}, {"replicas", o.replicas}, {"nodes", o.nodes}, {"density", o.density},
      {"update_bytes", update_bytes}, {"offered_per_s", o.rate}, {"offered_seconds", offered_seconds},
      {"sent", uint64_t(sent)}, {"answered", answered}, {"accepted", accepted}, {"refused", refused},
      {"lost", uint64_t(sent) - std::min<uint64_t>(sent, answered)},
      {"accepted_per_s", double(accepted) / answered_seconds}, {"answered_seconds", answered_seconds},
      {"latency", {{"samples", lat.size()}, {"p50_ms", pct(0.5)}, {"p99_ms", pct(0.99)}, {"max_ms", pct(1.0)},
                   {"publish_interval_ms", o.publish_interval_ms}}},
      {"downlink_bytes_per_s", double(model_bytes) / answered_seconds}, {"sites", o.sites},
      {"hub_out_bytes_per_s", hub_out_per_s}, {"hub_in_bytes_per_s", hub_in_per_s},
      {"broker_cpu_seconds", broker_cpu}, {"broker_cpu_share", broker_cpu / answered_seconds},
      {"nats_servers_cpu_seconds", servers_cpu}, {"site_servers_cpu_seconds", sites_cpu}, {"broker_peak_rss_mib", broker_rss},
      {"decode_threads", o.decode_threads}, {"downlink_density", o.downlink_density},
      {"broker_metrics", broker_metrics}, {"cores", std::thread::hardware_concurrency()}};
  fmt::print("{} nodes on {} nats-servers (streams x{}), {} B updates ({}% dense)\n", o.nodes, o.servers, o.replicas,
             update_bytes, o.density * 100);
  fmt::print("offered {:.0f} updates/s for {:.1f} s: {} sent, {} answered ({} accepted), {} lost\n", o.rate,
             offered_seconds, uint64_t(sent), answered, accepted, j["lost"].get<uint64_t>());
  fmt::print("accepted {:.0f} updates/s (all answered after {:.1f} s)\n", j["accepted_per_s"].get<double>(), answered_seconds);
  fmt::print("update to model latency (publish every {} ms): p50 {:.0f} ms, p99 {:.0f} ms over {} updates\n",
             o.publish_interval_ms, pct(0.5), pct(0.99), lat.size());
  fmt::print("model stream received by the nodes: {:.2f} MB/s ({} nodes{})\n", double(model_bytes) / answered_seconds / 1e6,
             o.nodes, o.sites ? fmt::format(" behind {} site leaf nodes", o.sites) : std::string());
  fmt::print("the cluster's servers sent {:.2f} MB/s and received {:.2f} MB/s (clients, routes, leaf nodes)\n",
             hub_out_per_s / 1e6, hub_in_per_s / 1e6);
  fmt::print("broker: {:.2f} CPU s ({:.2f} cores), peak RSS {:.0f} MiB; the cluster's nats-servers: {:.2f} CPU s{}\n",
             broker_cpu, broker_cpu / answered_seconds, broker_rss, servers_cpu,
             o.sites ? fmt::format(", the site servers: {:.2f} CPU s", sites_cpu) : std::string());
  report.write(j);
  std::error_code ec;
  std::filesystem::remove_all(logs, ec);
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
