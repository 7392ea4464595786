#include "bench_fleet.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <queue>
#include <random>
#include <stdexcept>

#include "bench_report.h"
#include "aggregator.h"
#include "codec.h"
#include "command.h"
#include "compressor.h"
#include "dataset.h"
#include "metrics.h"
#include "model.h"
#include "snapshot.h"

namespace swarmlens {

namespace {

// What a node's hardware takes for one training step of a batch of 32 on the small CNN while its
// camera runs (docs/deploy.md, "Budget on a Pi-class node"): a desktop core and a Jetson Nano's GPU
// train on every frame of a 30 frames/s camera (a step per 32 frames), a Pi 4 core pinned beside the
// live path on about 5.5 frames/s. Each node's own pace is drawn once around its class's, +-10%.
struct DeviceClass {
  const char* name;
  double step_s;
};
constexpr DeviceClass kDevices[] = {{"desktop", 32.0 / 30.0}, {"jetson-nano", 32.0 / 30.0}, {"pi4", 32.0 / 5.5}};

// The field testbed's link profiles (bench/field/run): bandwidth each way, round trip, and the
// periods in which no transfer starts (stalls of a congested link; outages of a flaky one,
// from 45 s on), each node's with its own phase.
struct LinkProfile {
  const char* name;
  double up_kbit, down_kbit;  // 0: not the bottleneck (a datacenter link: 1 Gbit/s)
  double rtt_s;
  double stall_every_s, stall_for_s, outage_every_s, outage_for_s;
};
constexpr LinkProfile kLinks[] = {
    {"datacenter", 0, 0, 0.0005, 0, 0, 0, 0},
    {"lte", 5000, 20000, 0.060, 0, 0, 0, 0},
    {"congested-iot", 512, 2048, 0.300, 20, 3, 0, 0},
    {"flaky", 512, 2048, 0.300, 20, 3, 90, 30},
};

template <typename T, size_t N>
const T& named(const T (&table)[N], const std::string& name, const char* what) {
  for (const T& t : table)
    if (name == t.name) return t;
  std::string known;
  for (const T& t : table) known += (known.empty() ? "" : ", ") + std::string(t.name);
  throw std::invalid_argument(fmt::format("unknown {} '{}' (known: {})", what, name, known));
}

// "a:0.5,b:0.5" -> the class of each node: shares rounded so that they add up to the fleet, then
// shuffled over the node ids (seeded), so that every fleet size mixes them alike.
template <typename T, size_t N>
std::vector<const T*> assign(const T (&table)[N], const std::string& mix, uint32_t nodes, const char* what,
                             uint64_t seed) {
  std::vector<std::pair<const T*, double>> shares;
  double total = 0.0;
  size_t start = 0;
  while (start < mix.size()) {
    const size_t end = std::min(mix.find(',', start), mix.size());
    const std::string item = mix.substr(start, end - start);
    const size_t colon = item.find(':');
    char* rest = nullptr;
    const double share = colon == std::string::npos ? 1.0 : std::strtod(item.c_str() + colon + 1, &rest);
    if (!(share > 0.0) || (rest && *rest))
      throw std::invalid_argument(fmt::format("{} '{}': a share must be a positive number", what, item));
    shares.emplace_back(&named(table, item.substr(0, colon), what), share);
    total += share;
    start = end + 1;
  }
  if (shares.empty()) throw std::invalid_argument(fmt::format("no {} given", what));
  std::vector<const T*> out;
  double acc = 0.0;
  for (const auto& [t, share] : shares) {
    acc += share / total;
    while (out.size() < std::min<size_t>(nodes, size_t(std::lround(acc * nodes)))) out.push_back(t);
  }
  while (out.size() < nodes) out.push_back(shares.back().first);
  std::mt19937_64 rng(seed);
  std::shuffle(out.begin(), out.end(), rng);
  return out;
}

// The next moment at or after t when a periodic window [phase + k*every, +for) is not open.
double after_window(double t, double every, double length, double phase) {
  if (every <= 0.0 || length <= 0.0 || t < phase) return t;
  const double into = std::fmod(t - phase, every);
  return into < length ? t + (length - into) : t;
}

struct Link {
  const LinkProfile* p;
  double stall_phase, outage_phase;
  double up_free = 0.0, down_free = 0.0;  // when each direction has finished what it carries
  // When `bytes` sent at t have arrived: behind what the direction still carries, after any stall
  // or outage, at the profile's rate, plus half the round trip. (A transfer under way is not cut
  // by a window that opens during it: a simplification, as are no loss and no jitter.)
  double transfer(double t, uint64_t bytes, bool up) {
    double& free = up ? up_free : down_free;
    double start = std::max(t, free);
    for (int i = 0; i < 4; ++i) {  // a stall may end inside an outage and the other way round
      start = after_window(start, p->outage_every_s, p->outage_for_s, outage_phase);
      start = after_window(start, p->stall_every_s, p->stall_for_s, stall_phase);
    }
    const double kbit = up ? p->up_kbit : p->down_kbit;
    const double rate = (kbit > 0 ? kbit : 1e6) * 1000.0 / 8.0;  // bytes per second
    free = start + double(bytes) / rate;
    return free + p->rtt_s / 2.0;
  }
};

struct FleetNode {
  Link link{};
  double step_s = 0.0;
  std::vector<uint32_t> shard;
  uint64_t steps_left = 0, cursor = 0;
  std::unique_ptr<TwoStepCompressor> compressor;
  std::shared_ptr<const std::vector<float>> view;  // the model this node holds
  uint64_t version = 0;
  bool in_flight = false, done = false;
  uint64_t held_back = 0;  // releases merged into the pending update while one was on the wire
};

enum class Event { Step, UpdateArrives, AckArrives, ModelArrives, Publish, Sample };
struct Scheduled {
  double t;
  uint64_t order;  // ties: in the order scheduled
  Event kind;
  uint32_t node;
  bool operator>(const Scheduled& o) const { return t != o.t ? t > o.t : order > o.order; }
};

struct CurvePoint {
  double t, accuracy;
  uint64_t up_bytes, down_bytes, version;
};

struct FleetResult {
  uint32_t nodes = 0, idle_nodes = 0;
  uint32_t buffer_size = 0;
  double server_lr = 0.0;
  uint64_t staleness_grace = 0;
  double server_momentum = 0.0;
  double final_accuracy = 0.0, sim_seconds = 0.0, wall_seconds = 0.0;
  double time_to_target = -1.0;
  uint64_t bytes_to_target = 0;
  uint64_t up_bytes = 0, down_bytes = 0, updates = 0, accepted = 0, steps = 0, versions = 0, held_back = 0;
  std::map<std::string, uint64_t> refused;
  std::vector<uint64_t> staleness;  // histogram: [0], [1], [2,3], [4,7], ...
  std::vector<CurvePoint> curve;
};

size_t staleness_bucket(uint64_t tau) { return tau == 0 ? 0 : size_t(64 - __builtin_clzll(tau)); }

class FleetSim {
 public:
  FleetSim(const FleetOptions& o, const Dataset& train, const Dataset& test, uint32_t nodes)
      : o_(o), train_(train), test_(test) {
    ModelSpec spec;
    model_ = Model::create(spec, o.seed);
    dim_ = uint32_t(model_->num_params());
    r_.nodes = nodes;
    const CompressorConfig node_defaults = node_compression_defaults();
    const FleetAggregation rule = fleet_aggregation(o.lr, nodes, node_defaults.trigger.max_age_steps);
    r_.buffer_size = std::min(nodes, o.buffer_size ? o.buffer_size : rule.buffer_size);
    r_.server_lr = o.server_lr > 0 ? o.server_lr : o.buffer_size ? averaging_server_lr(o.lr, nodes, r_.buffer_size) : rule.server_lr;
    AggregatorConfig ac;
    ac.server_lr = r_.server_lr;
    ac.server_momentum = o.server_momentum;
    ac.buffer_size = r_.buffer_size;
    ac.max_staleness = 1u << 20;  // weighted, never refused: the histogram shows what arrived
    ac.staleness_grace = o.staleness_grace >= 0 ? uint64_t(o.staleness_grace) : rule.staleness_grace;
    r_.staleness_grace = ac.staleness_grace;
    r_.server_momentum = ac.server_momentum;
    ac.check_sequence = true;
    agg_ = std::make_unique<Aggregator>("fleet", model_->layout_hash(), model_->params_copy(), ac);
    down_.emplace(DownlinkConfig{o.downlink_density});
    down_->reset(agg_->params());
    published_ = std::make_shared<const std::vector<float>>(down_->published());
    keyframe_bytes_ = encode_snapshot(Snapshot(spec.name, model_->layout_hash(), 0, *published_), true).size();
    chain_.push_back({0, 0});

    const Shards shards = o.dirichlet_alpha > 0 ? shard_dirichlet(train.labels, 10, nodes, o.dirichlet_alpha, o.seed)
                                                 : shard_iid(train.size(), nodes, o.seed);
    const auto devices = assign(kDevices, o.devices, nodes, "device class", o.seed * 31 + nodes);
    const auto links = assign(kLinks, o.links, nodes, "link profile", o.seed * 37 + nodes);
    std::mt19937_64 rng(o.seed * 6151 + nodes);
    std::uniform_real_distribution<double> pace(0.9, 1.1), phase(0.0, 90.0);
    CompressorConfig cc = node_defaults;
    cc.sparsify.density = o.density;
    nodes_.resize(nodes);
    double longest = 0.0;
    for (uint32_t n = 0; n < nodes; ++n) {
      FleetNode& f = nodes_[n];
      f.step_s = devices[n]->step_s * pace(rng);
      f.link = Link{links[n], phase(rng), 45.0 + phase(rng) / 3.0};
      f.shard = shards[n];
      std::shuffle(f.shard.begin(), f.shard.end(), rng);
      // Every image of the shard, epochs times; a shard smaller than one batch (Dirichlet shards are
      // uneven) leaves its node idle, counted.
      f.steps_left = f.shard.size() < o.batch ? 0 : uint64_t(f.shard.size()) * o.epochs / o.batch;
      r_.idle_nodes += f.steps_left == 0;
      cc.sparsify.seed = o.seed * 1000 + n;
      f.compressor = std::make_unique<TwoStepCompressor>(dim_, cc, NodeIdentity{"fleet", model_->layout_hash(), n});
      f.view = published_;
      // Nodes start within one step of each other (a fleet switched on together: the worst case for
      // staleness is the steady state, reached after a few steps).
      if (f.steps_left) schedule(f.step_s * pace(rng), Event::Step, n);
      longest = std::max(longest, double(f.steps_left) * f.step_s);
    }
    decode_.layout_hash = model_->layout_hash();
    decode_.dim = dim_;
    sample_every_ = std::max(1.0, longest / o.curve_points);
    schedule(o.publish_interval_s, Event::Publish, 0);
    schedule(0.0, Event::Sample, 0);
  }

  FleetResult run() {
    const auto t0 = std::chrono::steady_clock::now();
    while (!queue_.empty()) {
      const Scheduled e = queue_.top();
      queue_.pop();
      now_ = e.t;
      switch (e.kind) {
        case Event::Step: step(e.node); break;
        case Event::UpdateArrives: arrive(e.node); break;
        case Event::AckArrives: acked(e.node); break;
        case Event::ModelArrives: pulled(e.node); break;
        case Event::Publish: publish(); break;
        case Event::Sample: sample(); break;
      }
    }
    agg_->flush();
    publish();
    sample();
    model_->set_params(agg_->params().data());
    r_.final_accuracy = evaluate_accuracy(*model_, test_);
    r_.sim_seconds = now_;
    r_.versions = agg_->version();
    r_.accepted = agg_->count(Verdict::Accepted);
    for (const FleetNode& f : nodes_) r_.held_back += f.held_back;
    r_.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r_;
  }

 private:
  void schedule(double t, Event kind, uint32_t node) {
    queue_.push({t, order_++, kind, node});
    if (kind == Event::Step) ++working_;
  }

  // One local step on the node's view plus its own unsent progress; a release goes out when the
  // link is free, else waits merged into the pending update (one update on the wire per node).
  void step(uint32_t n) {
    --working_;
    FleetNode& f = nodes_[n];
    batch_index_.resize(o_.batch);
    for (uint32_t i = 0; i < o_.batch; ++i) batch_index_[i] = f.shard[(f.cursor * o_.batch + i) % f.shard.size()];
    ++f.cursor;  // on through the shard, wrapping round: every image counts in a small shard too
    make_batch(train_, batch_index_.data(), o_.batch, images_, labels_);
    model_->set_params(f.view->data());
    f.compressor->apply_pending(model_->params(), float(o_.lr));  // as NodeTrainer: its own progress at its rate
    model_->compute_gradient({images_.data(), labels_.data(), o_.batch});
    ++r_.steps;
    std::optional<std::vector<uint8_t>> msg = f.compressor->step(model_->grad(), o_.batch, f.version);
    --f.steps_left;
    if (f.steps_left == 0) {
      f.done = true;  // its data is used up: what it has pending goes out with its last update
      if (msg) f.compressor->requeue(*msg);
      msg = f.compressor->flush();
    } else {
      schedule(now_ + f.step_s, Event::Step, n);
    }
    if (msg) send(n, std::move(*msg));
  }

  void send(uint32_t n, std::vector<uint8_t> msg) {
    FleetNode& f = nodes_[n];
    if (f.in_flight) {  // one on the wire: this one merges into the pending update
      f.compressor->requeue(msg);
      ++f.held_back;
      return;
    }
    f.in_flight = true;
    ++in_flight_;
    r_.up_bytes += msg.size();
    ++r_.updates;
    wire_[n] = std::move(msg);
    schedule(f.link.transfer(now_, wire_[n].size() + kMessageOverhead, true), Event::UpdateArrives, n);
  }

  void arrive(uint32_t n) {
    const std::vector<uint8_t> msg = std::move(wire_[n]);
    wire_.erase(n);
    const DecodeResult dec = decode_update(msg, decode_);
    Verdict v = Verdict::LayoutMismatch;
    if (dec.ok()) {
      const uint64_t tau = agg_->version() - std::min(agg_->version(), dec.value.header.base_version);
      const size_t b = staleness_bucket(tau);
      if (r_.staleness.size() <= b) r_.staleness.resize(b + 1, 0);
      ++r_.staleness[b];
      v = agg_->submit(dec.value);
    }
    if (v != Verdict::Accepted) ++r_.refused[verdict_name(v)];
    schedule(nodes_[n].link.transfer(now_, kAckBytes, false), Event::AckArrives, n);
  }

  // The answer is in: the node pulls the model stream from its version (the chain, or the keyframe
  // when that is cheaper), as the field testbed's nodes do after each exchange.
  void acked(uint32_t n) {
    FleetNode& f = nodes_[n];
    f.in_flight = false;
    --in_flight_;
    if (f.done) {
      if (auto rest = f.compressor->flush()) send(n, std::move(*rest));
    }
    if (published_version_ == f.version || pulling_.count(n)) return;  // current, or a pull under way
    const uint64_t chain = chain_.back().second - chain_offset(f.version);
    const uint64_t bytes = std::min<uint64_t>(chain, keyframe_bytes_) + kMessageOverhead;
    r_.down_bytes += bytes;
    pulling_[n] = {published_, published_version_};
    ++pulls_;
    schedule(f.link.transfer(now_, bytes, false), Event::ModelArrives, n);
  }

  void pulled(uint32_t n) {
    FleetNode& f = nodes_[n];
    auto [model, version] = pulling_[n];
    pulling_.erase(n);
    --pulls_;
    f.view = std::move(model);
    f.version = version;
  }

  uint64_t chain_offset(uint64_t version) const {
    auto it = std::upper_bound(chain_.begin(), chain_.end(), std::make_pair(version, UINT64_MAX));
    return it == chain_.begin() ? 0 : std::prev(it)->second;
  }

  // The broker's publish: a delta of the model stream when the version moved.
  void publish() {
    if (agg_->version() != published_version_) {
      ModelDelta d;
      d.layout_hash = model_->layout_hash();
      d.chain_id = 1;
      d.dim = dim_;
      d.base_version = published_version_;
      d.version = agg_->version();
      down_->next(agg_->params(), d.index, d.step);
      published_version_ = d.version;
      published_ = std::make_shared<const std::vector<float>>(down_->published());
      chain_.push_back({published_version_, chain_.back().second + encode_delta(d).size()});
    }
    if (working_ || in_flight_ || pulls_) schedule(now_ + o_.publish_interval_s, Event::Publish, 0);
  }

  void sample() {
    model_->set_params(published_->data());
    r_.curve.push_back({now_, evaluate_accuracy(*model_, test_, o_.test_limit), r_.up_bytes, r_.down_bytes,
                        published_version_});
    const CurvePoint& p = r_.curve.back();
    if (r_.time_to_target < 0 && p.accuracy >= o_.target) {
      r_.time_to_target = p.t;
      r_.bytes_to_target = p.up_bytes + p.down_bytes;
    }
    fmt::print(stderr, "  t {:8.1f} s: accuracy {:.4f}, version {}, {:.1f} MB up, {:.1f} MB down\n", p.t, p.accuracy,
               p.version, double(p.up_bytes) / 1e6, double(p.down_bytes) / 1e6);
    if (working_ || in_flight_ || pulls_) schedule(now_ + sample_every_, Event::Sample, 0);
  }

  // NATS framing and the subject around a message, and the broker's JSON answer (ack.h).
  static constexpr uint64_t kMessageOverhead = 64, kAckBytes = 160;

  const FleetOptions& o_;
  const Dataset& train_;
  const Dataset& test_;
  std::unique_ptr<Model> model_;
  uint32_t dim_ = 0;
  std::unique_ptr<Aggregator> agg_;
  std::optional<DownlinkEncoder> down_;
  std::shared_ptr<const std::vector<float>> published_;
  uint64_t published_version_ = 0, keyframe_bytes_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> chain_;  // (version, chain bytes up to it)
  std::vector<FleetNode> nodes_;
  std::map<uint32_t, std::vector<uint8_t>> wire_;  // per node: the update on the wire
  std::map<uint32_t, std::pair<std::shared_ptr<const std::vector<float>>, uint64_t>> pulling_;
  std::priority_queue<Scheduled, std::vector<Scheduled>, std::greater<>> queue_;
  uint64_t order_ = 0, working_ = 0, in_flight_ = 0, pulls_ = 0;
  double now_ = 0.0, sample_every_ = 1.0;
  DecodeOptions decode_;
  std::vector<uint32_t> batch_index_;
  std::vector<float> images_;
  std::vector<int64_t> labels_;
  FleetResult r_;
};

nlohmann::json to_json(const FleetResult& r) {
  nlohmann::json curve = nlohmann::json::array();
  for (const auto& p : r.curve)
    curve.push_back({{"t", p.t}, {"accuracy", p.accuracy}, {"uplink_bytes", p.up_bytes}, {"downlink_bytes", p.down_bytes},
                     {"version", p.version}});
  nlohmann::json hist = nlohmann::json::array();
  for (size_t b = 0; b < r.staleness.size(); ++b)
    hist.push_back({{"from", b == 0 ? 0 : uint64_t(1) << (b - 1)}, {"to", b == 0 ? 0 : (uint64_t(1) << b) - 1},
                    {"updates", r.staleness[b]}});
  return {{"nodes", r.nodes}, {"idle_nodes", r.idle_nodes}, {"buffer_size", r.buffer_size}, {"server_lr", r.server_lr},
          {"staleness_grace", r.staleness_grace}, {"server_momentum", r.server_momentum},
          {"final_accuracy", r.final_accuracy}, {"sim_seconds", r.sim_seconds}, {"wall_seconds", r.wall_seconds},
          {"time_to_target", r.time_to_target >= 0 ? nlohmann::json(r.time_to_target) : nlohmann::json(nullptr)},
          {"bytes_to_target", r.time_to_target >= 0 ? nlohmann::json(r.bytes_to_target) : nlohmann::json(nullptr)},
          {"uplink_bytes", r.up_bytes}, {"downlink_bytes", r.down_bytes},
          {"uplink_bytes_per_node", r.up_bytes / std::max<uint32_t>(1, r.nodes)},
          {"downlink_bytes_per_node", r.down_bytes / std::max<uint32_t>(1, r.nodes)},
          {"updates", r.updates}, {"accepted", r.accepted}, {"refused", r.refused}, {"held_back", r.held_back},
          {"steps", r.steps}, {"model_versions", r.versions}, {"staleness", hist}, {"curve", curve}};
}

// Accuracy over simulated time and over bytes, one line per fleet size, and the staleness
// histograms: one PNG through gnuplot (data beside it).
bool plot(const FleetOptions& o, const std::vector<FleetResult>& results) {
  const std::string dat = o.plot_path + ".dat", gp = o.plot_path + ".gp";
  std::ofstream d(dat);
  for (const auto& r : results) {
    d << "# nodes " << r.nodes << "\n";
    for (const auto& p : r.curve) d << p.t << " " << double(p.up_bytes + p.down_bytes) / 1e6 << " " << p.accuracy << "\n";
    d << "\n\n";
  }
  for (const auto& r : results) {
    d << "# staleness, nodes " << r.nodes << "\n";
    uint64_t total = 0;
    for (uint64_t c : r.staleness) total += c;
    for (size_t b = 0; b < r.staleness.size(); ++b) d << b << " " << double(r.staleness[b]) / double(std::max<uint64_t>(1, total)) << "\n";
    d << "\n\n";
  }
  std::ofstream g(gp);
  g << "set terminal pngcairo size 1500,450\nset output '" << o.plot_path << "'\nset multiplot layout 1,3\n"
    << "set key bottom right\nset grid\nset yrange [0:1]\nset ylabel 'test accuracy'\n";
  auto lines = [&](int x) {
    std::string s;
    for (size_t i = 0; i < results.size(); ++i)
      s += fmt::format("{}'{}' index {} using {}:3 with linespoints title '{} nodes'", i ? ", " : "plot ", dat, i, x,
                       results[i].nodes);
    return s + "\n";
  };
  g << "set xlabel 'simulated time (s)'\n" << lines(1) << "set xlabel 'bytes on all links (MB)'\n" << lines(2);
  // Staleness: each fleet's share of its updates per bucket, the fleets' bars side by side.
  const double width = 0.8 / double(results.size());
  g << "set yrange [0:*]\nset key top right\nset ylabel 'share of updates'\n"
       "set xlabel 'staleness in versions (bucket k: 2^(k-1) to 2^k - 1)'\nset style fill solid 0.6\nset boxwidth "
    << width << " absolute\nset xtics 1\n";
  for (size_t i = 0; i < results.size(); ++i)
    g << (i ? ", " : "plot ") << "'" << dat << "' index " << results.size() + i << " using ($1 + "
      << (double(i) - double(results.size() - 1) / 2.0) * width << "):2 with boxes title '" << results[i].nodes << " nodes'";
  g << "\nunset multiplot\n";
  d.close();
  g.close();
  if (!d || !g) return false;
  return std::system(("gnuplot '" + gp + "' 2>'" + o.plot_path + ".log'").c_str()) == 0;
}

}  // namespace

int run_fleet_bench(const FleetOptions& o) {
  const JsonReport report(o.json_path);
  if (!o.plot_path.empty()) check_writable(o.plot_path, "the --plot image");
  set_compute_threads(o.threads);
  const std::string dir = default_fashion_mnist_dir();
  Dataset train = load_fashion_mnist(dir, true), test = load_fashion_mnist(dir, false);
  if (o.train_limit) train.truncate(o.train_limit);
  fmt::print(stderr, "swarmlens bench fleet: {} train / {} test images ({} for the curve), {} epochs, batch {}, devices {}, "
             "links {}{}\n", train.size(), test.size(), std::min(test.size(), o.test_limit), o.epochs, o.batch, o.devices,
             o.links, o.dirichlet_alpha > 0 ? fmt::format(", Dirichlet({}) shards", o.dirichlet_alpha) : ", IID shards");
  std::vector<FleetResult> results;
  for (uint32_t n : o.nodes) {
    if (train.size() / n < o.batch)
      throw std::invalid_argument(fmt::format("--nodes {}: {} images leave a node less than one batch", n, train.size()));
    fmt::print(stderr, "{} nodes:\n", n);
    results.push_back(FleetSim(o, train, test, n).run());
  }
  fmt::print("\n{:>6} {:>7} {:>9} {:>9} {:>11} {:>12} {:>12} {:>12} {:>9} {:>10} {:>8}\n", "nodes", "buffer", "server lr",
             "accuracy", fmt::format("to {:.2f} s", o.target), "MB to it", "up MB/node", "down MB/node", "updates",
             "median tau", "wall s");
  for (const auto& r : results) {
    uint64_t seen = 0, total = 0;
    for (uint64_t c : r.staleness) total += c;
    size_t median = 0;
    for (; median < r.staleness.size() && (seen += r.staleness[median]) * 2 < total; ++median) {}
    fmt::print("{:>6} {:>7} {:>9.4g} {:>9.4f} {:>11} {:>12} {:>12.3f} {:>12.3f} {:>9} {:>10} {:>8.0f}\n", r.nodes,
               r.buffer_size, r.server_lr, r.final_accuracy,
               r.time_to_target >= 0 ? fmt::format("{:.0f}", r.time_to_target) : "not reached",
               r.time_to_target >= 0 ? fmt::format("{:.1f}", double(r.bytes_to_target) / 1e6) : "-",
               double(r.up_bytes) / 1e6 / r.nodes, double(r.down_bytes) / 1e6 / r.nodes, r.updates,
               median == 0 ? "0" : fmt::format("{}-{}", uint64_t(1) << (median - 1), (uint64_t(1) << median) - 1),
               r.wall_seconds);
  }
  if (!o.json_path.empty()) {
    nlohmann::json j;
    j["benchmark"] = "fleet";
    j["config"] = {{"epochs", o.epochs}, {"train_images", train.size()}, {"test_images", test.size()},
                   {"curve_test_images", std::min(test.size(), o.test_limit)}, {"batch", o.batch}, {"lr", o.lr},
                   {"density", o.density}, {"downlink_density", o.downlink_density},
                   {"dirichlet_alpha", o.dirichlet_alpha}, {"devices", o.devices}, {"links", o.links},
                   {"publish_interval_s", o.publish_interval_s}, {"target", o.target}, {"seed", o.seed}};
    for (const auto& r : results) j["fleets"].push_back(to_json(r));
    report.write(j);
  }
  if (!o.plot_path.empty()) {
    if (!plot(o, results)) {
      fmt::print(stderr, "error: gnuplot could not draw {} (see {}.log)\n", o.plot_path, o.plot_path);
      return 1;
    }
    fmt::print(stderr, "wrote {}\n", o.plot_path);
  }
  return 0;
}

void add_fleet_bench_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<FleetOptions>();
  auto* c = parent.add_subcommand("fleet", "Two-step at fleet scale: N asynchronous simulated nodes on an event-driven "
                                            "timeline (device classes, link profiles), accuracy over time and bytes");
  c->add_option("--nodes", o->nodes, "fleet sizes, run in turn with the same total samples")
      ->check(CLI::Range(1, 4096))->delimiter(',')->capture_default_str();
  c->add_option("--epochs", o->epochs, "passes over the training set, spread over the fleet")->check(CLI::Range(1, 1000))->capture_default_str();
  c->add_option("--train-limit", o->train_limit, "training images used (0 = all)")->capture_default_str();
  c->add_option("--test-limit", o->test_limit, "test images for the curve (the final figure uses all)")->check(CLI::Range(1, 1 << 20))->capture_default_str();
  c->add_option("--batch-size,--batch", o->batch, "batch size per node step")->check(CLI::Range(1, 4096))->capture_default_str();
  c->add_option("--learning-rate,--lr", o->lr, "the nodes' learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  c->add_option("--density", o->density, "share of entries sent per step after warm-up")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  c->add_option("--downlink-density", o->downlink_density, "share of the parameters one published model delta may move")
      ->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  c->add_option("--alpha", o->dirichlet_alpha, "non-IID shards with Dirichlet(alpha); 0 = IID")->check(CLI::NonNegativeNumber)->capture_default_str();
  c->add_option("--devices", o->devices, "device classes and their shares: pi4, jetson-nano, desktop")->capture_default_str();
  c->add_option("--links", o->links, "link profiles and their shares: datacenter, lte, congested-iot, flaky")->capture_default_str();
  c->add_option("--buffer-size", o->buffer_size, "updates per model version, at most the fleet (0: the fleet rule, "
                 "fleet_aggregation: 1 below 64 nodes, nodes / 64 from 64 on)")
      ->check(CLI::Range(0, 1 << 20))->capture_default_str();
  c->add_option("--server-lr", o->server_lr, "rate applied to each buffer's mean (0: with the fleet rule's buffer, its "
                 "rate: lr x buffer / nodes below 64 nodes, lr from 64 on; with --buffer-size, lr x buffer / nodes)")
                 ->check(CLI::NonNegativeNumber)->capture_default_str();
  c->add_option("--server-momentum", o->server_momentum, "server momentum over the buffers' means (swarmlens-broker "
                 "--server-momentum; 0 = off)")->check(CLI::Range(0.0, 0.999))->capture_default_str();
  c->add_option("--staleness-grace", o->staleness_grace, "versions of lag weighted 1, beyond which 1/(1+sqrt(lag - grace)) "
                 "(-1: the fleet rule's, nodes x the nodes' trigger age below 64 nodes, 1 from 64 on)")->check(CLI::Range(int64_t(-1), int64_t(1) << 40))->capture_default_str();
  c->add_option("--publish-interval", o->publish_interval_s, "seconds between the broker's publishes")
      ->check(CLI::Range(0.01, 3600.0))->capture_default_str();
  c->add_option("--target", o->target, "test accuracy to time")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  c->add_option("--curve-points", o->curve_points, "accuracy samples over the run")->check(CLI::Range(2, 1000))->capture_default_str();
  c->add_option("--seed", o->seed, "seed for weights, shards, paces and phases")->capture_default_str();
  c->add_option("--threads", o->threads, "LibTorch threads (0 = its default)")->capture_default_str();
  c->add_option("--json", o->json_path, "write results as JSON to this file");
  c->add_option("--plot", o->plot_path, "draw accuracy over time and bytes and the staleness histogram to this PNG (gnuplot)");
  commands.add(c, [o] { return run_fleet_bench(*o); });
}

}  // namespace swarmlens
