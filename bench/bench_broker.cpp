#include "bench_broker.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <memory>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <utility>

#include "bench_report.h"
#include "broker_service.h"
#include "codec.h"
#include "model.h"
#include "http_server.h"
#include "node_board.h"
#include "operator_view.h"
#include "process.h"
#include "prom_text.h"
#include "command.h"

namespace swarmlens {
namespace {
// This process's peak resident memory: the broker service, its NATS links and the publishers'.
double peak_rss_mib() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_maxrss) / 1024.0;
}
}  // namespace

namespace {

using Clock = std::chrono::steady_clock;
double secs(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// One node's stream of sparse updates: `density` of the entries, random positions, gradient-like
// values, fp16 on the wire as the nodes send them.
std::vector<std::vector<uint8_t>> make_updates(const std::string& model_id, uint64_t hash, uint32_t dim, double density,
                                               uint32_t node, uint64_t count, uint64_t first_seq) {
  std::mt19937 rng(node * 7919 + 1);
  std::normal_distribution<float> value(0.0f, 0.01f);
  const size_t k = std::max<size_t>(1, size_t(dim * density));
  std::vector<std::vector<uint8_t>> out;
  std::vector<uint32_t> all(dim);
  for (uint32_t i = 0; i < dim; ++i) all[i] = i;
  for (uint64_t s = 0; s < count; ++s) {
    SparseVector v;
    v.dim = dim;
    // A random k-subset, ascending.
    for (size_t i = 0; i < k; ++i) std::swap(all[i], all[i + rng() % (dim - i)]);
    v.index.assign(all.begin(), all.begin() + long(k));
    std::sort(v.index.begin(), v.index.end());
    for (size_t i = 0; i < k; ++i) v.value.push_back(value(rng));
    out.push_back(encode_update({model_id, hash, 0, node, first_seq + s, 32}, v, {}));
  }
  return out;
}

// Paces P publishers to at most `window` updates in flight (sent, not yet taken by the broker). One
// pacer thread watches the broker's count and wakes one publisher per freed slot; the publishers
// themselves sleep. (They used to poll the count every 200 us each: with 128 of them that is 640k
// wake-ups a second, which kept both cores of the development machine busy on its own.)
class InFlightWindow {
 public:
  InFlightWindow(const BrokerService& broker, uint64_t window, uint32_t waiters)
      : broker_(broker), window_(window), waiters_(waiters), allowed_(window) {
    pacer_ = std::thread([this] { pace(); });
  }
  ~InFlightWindow() {
    {
      std::lock_guard<std::mutex> lock(m_);
      stop_ = true;
    }
    pacer_.join();
  }
  void take() {  // blocks until one more update may go on the wire
    std::unique_lock<std::mutex> lock(m_);
    cv_.wait(lock, [&] { return taken_ < allowed_; });
    ++taken_;
  }

 private:
  void pace() {
    for (;;) {
      uint64_t freed = 0;
      {
        std::lock_guard<std::mutex> lock(m_);
        if (stop_) return;
        const uint64_t allowed = broker_.updates_received() + window_;
        if (allowed > allowed_) freed = allowed - std::exchange(allowed_, allowed);
      }
      for (uint64_t i = 0; i < std::min<uint64_t>(freed, waiters_); ++i) cv_.notify_one();
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  const BrokerService& broker_;
  const uint64_t window_;
  const uint32_t waiters_;
  std::mutex m_;
  std::condition_variable cv_;
  uint64_t allowed_, taken_ = 0;
  bool stop_ = false;
  std::thread pacer_;
};

// The updates decoded and merged in one loop, no NATS: updates per second.
double bare_rate(const std::vector<std::vector<std::vector<uint8_t>>>& streams, const std::string& id, uint64_t hash,
                 std::vector<float> params, const AggregatorConfig& agg) {
  const uint32_t dim = uint32_t(params.size());
  Aggregator a(id, hash, std::move(params), agg);
  DecodeOptions d;
  d.layout_hash = hash;
  d.dim = dim;
  const auto t0 = Clock::now();
  uint64_t n = 0, total = 0;
  for (size_t s = 0; s < streams[0].size(); ++s)
    for (const auto& stream : streams) {
      ++total;
      const DecodeResult r = decode_update(stream[s], d);
      if (r.ok() && a.submit(r.value) == Verdict::Accepted) ++n;
    }
  const double per_s = double(n) / secs(Clock::now() - t0);
  if (n != total) throw std::runtime_error("bare loop rejected updates");
  return per_s;
}

// One node sends an update every 20 ms; for each, the milliseconds until a model containing it
// arrives (the model subject, snapshots and deltas, as a node sees it).
std::vector<double> model_latencies(const NatsOptions& nats, const std::string& id, uint64_t hash, uint32_t dim,
                                    const BrokerBenchOptions& o) {
  auto node = NatsLink::connect(nats);
  ModelReceiver receiver;
  std::mutex m;
  std::condition_variable cv;
  std::map<uint64_t, Clock::time_point> sent_at;
  std::vector<double> lat_ms;
  const uint32_t probe = o.publishers + 1;
  node->subscribe(model_subject(id), [&](const std::string& s, std::vector<uint8_t> payload) {
    auto model = receiver.receive(payload.data(), payload.size(), s);
    if (!model) return;
    const auto it = model->applied.find(probe);
    if (it == model->applied.end()) return;
    const auto now = Clock::now();
    std::lock_guard<std::mutex> g(m);
    for (auto i = sent_at.begin(); i != sent_at.end() && i->first <= it->second;) {
      lat_ms.push_back(secs(now - i->second) * 1000);
      i = sent_at.erase(i);
    }
    cv.notify_all();
  });
  node->flush();
  // The model the nodes hold now, as a node joining late reads it (keyframe and chain): the deltas
  // that follow apply to it.
  if (auto kept = fetch_retained_model(*node, id)) receiver.seed(std::make_shared<const Snapshot>(std::move(*kept)));
  const auto probes = make_updates(id, hash, dim, o.density, probe, o.latency_samples, 1);
  for (size_t i = 0; i < probes.size(); ++i) {
    {
      std::lock_guard<std::mutex> g(m);
      sent_at[i + 1] = Clock::now();
    }
    node->publish(update_subject(id, probe), probes[i]);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  {
    std::unique_lock<std::mutex> l(m);
    cv.wait_for(l, std::chrono::seconds(10), [&] { return sent_at.empty(); });
  }
  node.reset();  // closed before what its callback uses goes
  std::lock_guard<std::mutex> g(m);
  return lat_ms;
}

// The operator's view as the daemon runs it: per-node stats in the service, the view updated each
// round, /metrics scraped every second and one dashboard reading the live events.
struct OperatorLoad {
  NodeBoard board;
  OperatorView view;
  HttpServer http;
  std::atomic<bool> quit{false};
  std::atomic<uint64_t> scrapes{0}, failed_scrapes{0}, events_bytes{0};
  std::thread scraper, reader;
  explicit OperatorLoad(const std::string& id)
      : view(id, OperatorConfig{}, board), http(ListenAddress::parse("127.0.0.1:" + std::to_string(free_loopback_port()), "bench")) {
    http.route("/metrics", [this](const std::string&) { return HttpResponse{200, kPromContentType, view.metrics()}; });
    http.events("/events", [this](uint64_t& cursor) { return view.state(cursor); }, std::chrono::milliseconds(1000));
    scraper = std::thread([this] {
      while (!quit) {
        try {
          if (!http_get_loopback(http.port(), "/metrics").empty()) ++scrapes;
          else ++failed_scrapes;
        } catch (const std::exception&) {
          ++failed_scrapes;
        }
        for (int i = 0; i < 100 && !quit; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    });
    reader = std::thread([this] { events_bytes = read_events(http.port(), quit); });
  }
  ~OperatorLoad() { stop(); }
  void stop() {
    quit = true;
    if (scraper.joinable()) scraper.join();
    if (reader.joinable()) reader.join();
  }
  // An event stream read until quit: the bytes it brought.
  static uint64_t read_events(int port, const std::atomic<bool>& quit) {
    const int fd = connect_loopback(port);
    if (fd < 0) return 0;
    timeval tv{0, 100000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    uint64_t got = 0;
    const std::string req = "GET /events HTTP/1.1\r\nHost: bench\r\n\r\n";
    if (write(fd, req.data(), req.size()) > 0) {
      char buf[8192];
      while (!quit) {
        const ssize_t n = read(fd, buf, sizeof buf);
        if (n > 0) got += uint64_t(n);
        else if (n == 0) break;
      }
    }
    close(fd);
    return got;
  }
};

double cpu_seconds() {  // this process' user + system time: the broker, its links and the publishers
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return double(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + double(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct ServedRun {
  double per_s = 0, seconds = 0;
  double cpu_us_per_update = 0;  // this process' CPU time from the first publish to the last update taken
  BrokerStats stats;
  nlohmann::json latency;
  uint64_t scrapes = 0, events_bytes = 0;
};

// One served run: a real nats-server with JetStream, BrokerService publishing the model on its
// timer, and P publishers each on its own connection. Publishers keep at most `window` updates in
// flight (sent, not yet merged), so the figure is what the broker sustains, not what the server
// drops. With the operator view: what the daemon runs when /metrics and the dashboard are on. The
// latency is measured on runs without it only.
ServedRun served_run(const std::vector<std::vector<std::vector<uint8_t>>>& streams, const BrokerBenchOptions& o,
                     const AggregatorConfig& agg, bool operator_view) {
  const std::string id = "bench";
  const auto model = Model::create({}, 1);
  ServedRun r;
  LocalNatsServer server("/dev/null");
  NatsOptions nats;
  nats.urls = {server.url()};
  BrokerConfig bc;
  bc.model_id = id;
  bc.aggregation = agg;
  bc.rate.updates_per_s = 0;  // a few publishers stand in for many nodes: no per-node rate limit
  bc.rate.bytes_per_s = 0;
  bc.decode_threads = o.decode_threads;
  bc.operator_stats = operator_view;
  BrokerService broker(bc, NatsLink::connect(nats));
  std::unique_ptr<OperatorLoad> ops;
  if (operator_view) ops = std::make_unique<OperatorLoad>(id);
  std::atomic<bool> done{false};
  std::thread timer([&] {
    while (!done) {
      broker.publish_if_changed();
      if (ops) {
        OperatorRound round;
        round.stats = broker.stats();
        round.traffic = broker.node_traffic();
        ops->view.update(std::move(round), std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(o.publish_interval_ms));
    }
  });
  const uint64_t total = o.updates * o.publishers;
  const auto t0 = Clock::now();
  const double cpu0 = cpu_seconds();
  {
    InFlightWindow window(broker, o.window, o.publishers);
    std::vector<std::thread> pubs;
    for (uint32_t p = 0; p < o.publishers; ++p)
      pubs.emplace_back([&, p] {
        auto link = NatsLink::connect(nats);
        for (const auto& u : streams[p]) {
          window.take();
          link->publish(update_subject(id, p), u);
        }
        link->flush();
      });
    for (auto& t : pubs) t.join();
  }
  const double published_at = secs(Clock::now() - t0);
  while (broker.updates_received() < total && secs(Clock::now() - t0) < 120)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  r.seconds = secs(Clock::now() - t0);
  r.cpu_us_per_update = (cpu_seconds() - cpu0) * 1e6 / double(total);
  fmt::print("{}publishers done after {:.2f} s, the broker had taken them all after {:.2f} s\n",
             operator_view ? "[operator view on] " : "", published_at, r.seconds);
  r.stats = broker.stats();
  r.per_s = double(r.stats.accepted) / r.seconds;
  if (!operator_view) {
    // Latency: one node sends an update every 20 ms; the time until a model containing it arrives.
    std::vector<double> lat_ms = model_latencies(nats, id, model->layout_hash(), uint32_t(model->num_params()), o);
    std::sort(lat_ms.begin(), lat_ms.end());
    auto pct = [&](double q) { return lat_ms.empty() ? -1.0 : lat_ms[size_t(q * double(lat_ms.size() - 1))]; };
    r.latency = {{"samples", lat_ms.size()}, {"p50_ms", pct(0.5)}, {"p95_ms", pct(0.95)}, {"max_ms", pct(1.0)},
                 {"publish_interval_ms", o.publish_interval_ms}};
  }
  done = true;
  timer.join();
  if (ops) {
    ops->stop();
    r.scrapes = ops->scrapes;
    r.events_bytes = ops->events_bytes;
    if (ops->failed_scrapes) throw std::runtime_error(std::to_string(ops->failed_scrapes.load()) + " scrapes of /metrics failed");
  }
  return r;
}

// Served runs with the operator view off and on, alternated `operator_repeats` times: the median of
// each and their ratio.
nlohmann::json compare_operator_view(const std::vector<std::vector<std::vector<uint8_t>>>& streams,
                                     const BrokerBenchOptions& o, const AggregatorConfig& agg) {
  std::vector<double> off, on, cpu_off, cpu_on, pair;
  uint64_t scrapes = 0, events_bytes = 0;
  for (int i = 0; i < o.operator_repeats; ++i) {
    const ServedRun without = served_run(streams, o, agg, false);
    const ServedRun with = served_run(streams, o, agg, true);
    off.push_back(without.per_s);
    on.push_back(with.per_s);
    pair.push_back(with.per_s / without.per_s);
    cpu_off.push_back(without.cpu_us_per_update);
    cpu_on.push_back(with.cpu_us_per_update);
    scrapes += with.scrapes;
    events_bytes += with.events_bytes;
  }
  const auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  const double m_off = median(off), m_on = median(on), c_off = median(cpu_off), c_on = median(cpu_on);
  fmt::print("operator view (per-node stats, /metrics scraped every second, one live dashboard), medians of {} "
             "alternated runs:\n  updates/s off {:.0f}, on {:.0f}: on/off {:.3f} (median of the pairs' ratios {:.3f})\n"
             "  CPU per update (this process: broker, links, publishers) off {:.1f} us, on {:.1f} us: on/off {:.3f}\n",
             o.operator_repeats, m_off, m_on, m_on / m_off, median(pair), c_off, c_on, c_on / c_off);
  return {{"off_updates_per_s", off}, {"on_updates_per_s", on}, {"median_off", m_off}, {"median_on", m_on},
          {"on_vs_off", m_on / m_off}, {"pair_ratios", pair}, {"median_pair_ratio", median(pair)},
          {"cpu_us_per_update_off", cpu_off}, {"cpu_us_per_update_on", cpu_on}, {"cpu_on_vs_off", c_on / c_off},
          {"scrape_interval_s", 1}, {"dashboards", 1}, {"scrapes", scrapes}, {"event_bytes", events_bytes}};
}

}  // namespace

int run_broker_bench(const BrokerBenchOptions& o) {
  const JsonReport report(o.json_path);
  const auto model = Model::create({}, 1);
  const uint64_t hash = model->layout_hash();
  const uint32_t dim = uint32_t(model->num_params());
  const std::string id = "bench";

  AggregatorConfig agg;
  agg.buffer_size = o.buffer_size;
  agg.max_staleness = UINT64_MAX / 2;  // the bench measures merging; staleness policy is not under test
  agg.staleness_grace = UINT64_MAX / 4;

  fmt::print("encoding {} updates per publisher x {} publishers ({}% of {} entries)...\n", o.updates, o.publishers,
             o.density * 100, dim);
  std::vector<std::vector<std::vector<uint8_t>>> streams;
  for (uint32_t p = 0; p < o.publishers; ++p) streams.push_back(make_updates(id, hash, dim, o.density, p, o.updates, 1));
  const size_t update_bytes = streams[0][0].size();

  // Bare: the same updates decoded and merged in one loop, no NATS.
  const double bare_per_s = bare_rate(streams, id, hash, model->params_copy(), agg);

  // Served: a real nats-server with JetStream, BrokerService publishing the model on its timer, and
  // P publishers each on its own connection (served_run).
  ServedRun served = served_run(streams, o, agg, false);
  const double served_per_s = served.per_s, served_seconds = served.seconds;
  const BrokerStats& final_stats = served.stats;
  const double capacity_per_s = double(final_stats.updates_in) / final_stats.busy_seconds;
  const nlohmann::json latency = served.latency;
  nlohmann::json operator_view;
  if (o.operator_repeats > 0) operator_view = compare_operator_view(streams, o, agg);

  const nlohmann::json j = {
      {"publishers", o.publishers}, {"updates", o.updates * o.publishers}, {"decode_threads", o.decode_threads}, {"density", o.density},
      {"update_bytes", update_bytes}, {"buffer_size", o.buffer_size}, {"window", o.window},
      {"bare_updates_per_s", bare_per_s}, {"served_updates_per_s", served_per_s}, {"served_seconds", served_seconds},
      {"served_vs_bare", served_per_s / bare_per_s},
      {"broker_thread_updates_per_busy_s", capacity_per_s}, {"broker_busy_seconds", final_stats.busy_seconds}, {"accepted", final_stats.accepted},
      {"rejected", final_stats.rejected}, {"model_versions", final_stats.version},
      {"models_out", final_stats.models_out}, {"snapshots_out", final_stats.snapshots_out},
      {"deltas_out", final_stats.deltas_out}, {"latency", latency}, {"operator_view", operator_view},
      {"peak_rss_mib", peak_rss_mib()}, {"threads", std::thread::hardware_concurrency()}};
  fmt::print("update: {} B ({}% dense small CNN, fp16 values)\n", update_bytes, o.density * 100);
  fmt::print("bare aggregator (decode + merge, one thread): {:>10.0f} updates/s\n", bare_per_s);
  fmt::print("served over NATS ({} publishers):           {:>10.0f} updates/s ({:.2f}x bare), {} accepted, {} rejected\n",
             o.publishers, served_per_s, served_per_s / bare_per_s, final_stats.accepted,
             final_stats.updates_in - final_stats.accepted);
  fmt::print("broker thread (decode, validate, merge under NATS load): {:>8.0f} updates per busy second\n", capacity_per_s);
  fmt::print("update to model latency (publish every {} ms): p50 {:.1f} ms, p95 {:.1f} ms, max {:.1f} ms over {} updates\n",
             o.publish_interval_ms, latency["p50_ms"].get<double>(), latency["p95_ms"].get<double>(),
             latency["max_ms"].get<double>(), latency["samples"].get<size_t>());
  report.write(j);
  return 0;
}


void add_broker_bench_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<BrokerBenchOptions>();
  auto* c = parent.add_subcommand(
      "broker", "Sparse updates merged per second, bare and served over NATS by many publishers; update-to-model latency");
  c->add_option("--publishers", o->publishers, "concurrent publishers, each its own connection")->check(CLI::Range(1, 1024))->capture_default_str();
  c->add_option("--updates", o->updates, "updates per publisher")->check(CLI::Range(1, 10000000))->capture_default_str();
  c->add_option("--density", o->density, "share of the model's entries in each update")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  c->add_option("--buffer-size", o->buffer_size, "FedBuff K: updates per model version")->check(CLI::Range(1, 100000))->capture_default_str();
  c->add_option("--window", o->window, "updates in flight at most")->check(CLI::Range(1, 10000000))->capture_default_str();
  c->add_option("--publish-interval-ms", o->publish_interval_ms, "the broker's model publish timer")->check(CLI::Range(1, 60000))->capture_default_str();
  c->add_option("--latency-samples", o->latency_samples, "updates timed for latency")->check(CLI::Range(1, 100000))->capture_default_str();
  c->add_option("--decode-threads", o->decode_threads, "the broker's decode threads (swarmlens-broker --decode-threads; 0 = the NATS thread)")->check(CLI::Range(0, 64))->capture_default_str();
  c->add_option("--operator-repeats", o->operator_repeats, "then served runs with the operator view (per-node stats, "
                 "/metrics scraped every second, a live dashboard) off and on, alternated this many times (0 = none)")
      ->check(CLI::Range(0, 20))->capture_default_str();
  c->add_option("--json", o->json_path, "write results as JSON to this file");
  commands.add(c, [o] { return run_broker_bench(*o); });
}

}  // namespace swarmlens
