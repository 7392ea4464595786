#include "bench_compression.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <optional>
#include <fstream>
#include <map>
#include <memory>
#include <numeric>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <thread>

#include "bench_report.h"
#include "aggregator.h"
#include "downlink.h"
#include "snapshot.h"
#include "command.h"
#include "compressor.h"
#include "dataset.h"
#include "image_folder.h"
#include "methods.h"
#include "metrics.h"
#include "model.h"
#include "motion.h"

namespace swarmlens {

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct EpochPoint {
  uint32_t epoch;
  double accuracy;
  double seen_accuracy;  // sites data: on the training sites' own test splits (-1: not measured)
  uint64_t uplink_bytes, downlink_bytes;
  double wall_seconds;
};

struct MethodResult {
  double accuracy = 0.0;
  double seen_accuracy = -1.0;  // sites data: on the training sites' test splits
  uint64_t uplink_bytes = 0;    // all nodes together
  uint64_t downlink_bytes = 0;  // per node: what each node receives to stay current
  std::string diverged;         // why the method stopped early (non-finite loss or model), "" if it did not
  uint64_t messages = 0;
  uint64_t steps = 0;       // local steps over all nodes
  double wall_seconds = 0.0, compress_seconds = 0.0, train_seconds = 0.0, aggregate_seconds = 0.0;
  double last_epoch_loss = 0.0;
  uint64_t model_versions = 0, rejected = 0;
  std::vector<EpochPoint> curve;
};

Method method_named(const std::string& m) {
  if (auto r = parse_method(m)) return *r;
  throw std::invalid_argument("unknown method '" + m + "' (dense, topk, twostep, fedavg)");
}

// Fashion-MNIST (shards cut from one training set) or site folders (`swarmlens scenes`): a node per
// training site, its shard that site's train split; the test set is the held-out sites' images, and
// seen_test the training sites' own test splits.
struct Data {
  Dataset train, test;
  Shards shards;
  Dataset seen_test;
  std::string kind = "fashion-mnist";
  std::vector<std::string> train_sites, held_out_sites;
};

class Simulation {
 public:
  Simulation(const BenchOptions& o, const Data& d, Method m) : o_(o), d_(d), method_(m) {
    ModelSpec spec;
    spec.name = o.model;
    spec.channels = int(d.train.channels);
    spec.height = int(d.train.rows);
    spec.width = int(d.train.cols);
    if (!d.train.class_names.empty()) spec.classes = int(d.train.class_names.size());
    if (is_temporal(o.model)) {  // moving Fashion-MNIST: class = direction
      spec.window = int(o.window);
      spec.classes = int(motion_class_names().size());
    }
    model_ = Model::create(spec, o.seed);  // same seed: same initial weights for every method
    dim_ = uint32_t(model_->num_params());
    // An epoch is one pass over every shard: a node with a larger shard steps more often, spread
    // evenly over the epoch (as cameras with more to see would), so each image counts once.
    for (const auto& shard : d.shards) node_steps_.push_back(uint32_t(shard.size() / o.batch));
    steps_per_epoch_ = *std::max_element(node_steps_.begin(), node_steps_.end());
    if (*std::min_element(node_steps_.begin(), node_steps_.end()) == 0)
      throw std::invalid_argument("a shard smaller than one batch (fewer nodes, a larger --alpha or a smaller --batch)");

    AggregatorConfig ac;
    ac.server_lr = o.lr;
    ac.buffer_size = o.nodes;
    ac.max_staleness = 1u << 20;
    switch (m) {
      case Method::Dense: ac.server_momentum = o.momentum; break;  // momentum SGD, fp32 gradients
      case Method::TopK: break;  // momentum is corrected at the nodes (DGC)
      case Method::TwoStep:
        // Updates arrive one at a time whenever a node's trigger fires: apply each as it comes,
        // scaled so that N nodes' updates add up like one averaged step. A lag of up to one trigger
        // period per node is normal, not staleness.
        ac.buffer_size = 1;
        ac.server_lr = averaging_server_lr(o.lr, o.nodes);
        ac.staleness_grace = uint64_t(o.nodes) * std::max<uint64_t>(1, o.trigger_age);
        break;
      case Method::FedAvg: ac.server_lr = 1.0; break;  // average the model deltas
    }
    agg_ = std::make_unique<Aggregator>(model_id_, model_->layout_hash(), model_->params_copy(), ac);

    const uint64_t total_steps = uint64_t(steps_per_epoch_) * o.epochs;
    MethodConfig mc;
    mc.method = m;
    mc.lr = o.lr;
    mc.momentum = o.momentum;
    mc.fedavg_steps = o.fedavg_steps;
    CompressorConfig& cc = mc.compression;
    cc.sparsify.criterion = o.criterion;
    cc.sparsify.density = o.density;
    cc.sparsify.momentum = o.momentum;
    cc.sparsify.clip_norm = o.clip_norm;
    const auto stages = cc.sparsify.warmup_densities.size();
    cc.sparsify.warmup_stage_steps = uint64_t(o.warmup_fraction * double(total_steps) / double(stages));
    cc.trigger.max_age_steps = o.trigger_age;
    cc.trigger.nnz_threshold = o.trigger_nnz;
    cc.trigger.norm_threshold = o.trigger_norm;
    cc.codec.value = o.values;
    for (uint32_t n = 0; n < o.nodes; ++n) {
      cc.sparsify.seed = o.seed * 1000 + n;
      nodes_.emplace_back(mc, dim_, NodeIdentity{model_id_, model_->layout_hash(), n});
    }
    decode_opts_.layout_hash = model_->layout_hash();
    decode_opts_.dim = dim_;
    // The model comes down: dense SGD sends it (or the averaged gradient, the same size) whole each
    // step; the others follow the broker's model stream (downlink.h), a delta per step.
    if (m != Method::Dense) {
      down_.emplace(DownlinkConfig{o.downlink_density});
      down_->reset(agg_->params());
      Snapshot key(spec.name, model_->layout_hash(), 0, down_->published());
      r_.downlink_bytes += encode_snapshot(key, true).size();  // the keyframe a node starts from
    } else {  // the size of the whole fp32 model on the wire, the same every step
      dense_model_bytes_ = encode_snapshot(Snapshot(spec.name, model_->layout_hash(), 0, agg_->params())).size();
      r_.downlink_bytes += dense_model_bytes_;
    }
  }

  MethodResult run() {
    const auto t0 = Clock::now();
    std::vector<std::vector<uint32_t>> order = d_.shards;

    for (uint32_t epoch = 1; epoch <= o_.epochs; ++epoch) {
      std::mt19937_64 rng(o_.seed * 7919 + epoch);
      for (auto& s : order) std::shuffle(s.begin(), s.end(), rng);
      double loss_sum = 0.0;
      uint64_t losses = 0;
      std::vector<uint32_t> taken(o_.nodes, 0);  // steps each node took this epoch
      for (uint32_t step = 0; step < steps_per_epoch_; ++step) {
        for (uint32_t n = 0; n < o_.nodes; ++n) {
          if (uint64_t(step + 1) * node_steps_[n] / steps_per_epoch_ == uint64_t(step) * node_steps_[n] / steps_per_epoch_)
            continue;  // a smaller shard: not this round
          const uint32_t* idx = order[n].data() + size_t(taken[n]++) * o_.batch;
          ++round_steps_[n];
          if (is_temporal(o_.model))  // a fresh clip of each item every epoch
            make_motion_batch(d_.train, idx, o_.batch, model_->spec().window, o_.seed * 7919 + epoch,
                              (uint64_t(step) * o_.nodes + n) * o_.batch, MotionConfig{}, images_, labels_);
          else
            make_batch(d_.train, idx, o_.batch, images_, labels_);
          model_->set_params(nodes_[n].weights(global()));
          if (method_ == Method::TwoStep)  // the node trains on its own not-yet-sent progress
            nodes_[n].compressor()->apply_pending(model_->params(), float(averaging_server_lr(o_.lr, o_.nodes)));
          const uint64_t base = agg_->version();
          auto t = Clock::now();
          loss_sum += model_->compute_gradient({images_.data(), labels_.data(), o_.batch}).loss;
          ++losses;
          const bool fedavg = method_ == Method::FedAvg;
          if (fedavg) nodes_[n].step(model_->grad(), o_.batch, base);  // a local step
          r_.train_seconds += seconds_since(t);
          ++r_.steps;
          if (!fedavg) send(n, base);
        }
        const bool round_end = (step + 1) % o_.fedavg_steps == 0 || step + 1 == steps_per_epoch_;
        if (method_ == Method::FedAvg && round_end) fedavg_round();
        if (method_ == Method::Dense || method_ == Method::TopK) agg_->flush();  // synchronous
        publish();
      }
      r_.last_epoch_loss = loss_sum / double(std::max<uint64_t>(1, losses));
      const std::vector<float>& server = agg_->params();
      if (!std::isfinite(r_.last_epoch_loss) || !std::all_of(server.begin(), server.end(), [](float v) { return std::isfinite(v); })) {
        r_.diverged = fmt::format("epoch {}: the {} went non-finite", epoch, std::isfinite(r_.last_epoch_loss) ? "model" : "loss");
        fmt::print(stderr, "  diverged: {}\n", r_.diverged);
        break;
      }
      model_->set_params(server.data());
      const double acc = is_temporal(o_.model) ? evaluate_motion_accuracy(*model_, d_.test, o_.seed + 104729)
                                               : evaluate_accuracy(*model_, d_.test);
      const double seen = d_.seen_test.size() ? evaluate_accuracy(*model_, d_.seen_test) : -1.0;
      r_.curve.push_back({epoch, acc, seen, r_.uplink_bytes, r_.downlink_bytes, seconds_since(t0)});
      fmt::print(stderr, "  epoch {}/{}: {} accuracy {:.4f}{}, loss {:.4f}, uplink {} bytes, downlink {} bytes/node\n", epoch,
                 o_.epochs, d_.seen_test.size() ? "held-out sites" : "test", acc,
                 seen >= 0 ? fmt::format(" (seen sites {:.4f})", seen) : "", r_.last_epoch_loss, r_.uplink_bytes,
                 r_.downlink_bytes);
    }
    r_.accuracy = r_.curve.empty() ? 0.0 : r_.curve.back().accuracy;
    r_.seen_accuracy = r_.curve.empty() ? -1.0 : r_.curve.back().seen_accuracy;
    r_.wall_seconds = seconds_since(t0);
    r_.model_versions = agg_->version();
    return r_;
  }

 private:
  // Compress this node's gradient (dense: encode it whole) and deliver what comes out.
  void send(uint32_t n, uint64_t base) {
    auto t = Clock::now();
    auto msg = nodes_[n].step(model_->grad(), o_.batch, base);
    r_.compress_seconds += seconds_since(t);
    if (msg) deliver(*msg);
  }

  void fedavg_round() {
    const std::vector<float>& start = global();  // what the round's local steps began from
    for (uint32_t n = 0; n < o_.nodes; ++n) {
      if (!round_steps_[n]) continue;  // no local step this round (a small shard)
      auto t = Clock::now();
      auto msg = nodes_[n].end_round(start, agg_->version(), uint64_t(o_.batch) * round_steps_[n]);
      r_.compress_seconds += seconds_since(t);
      round_steps_[n] = 0;
      deliver(msg);
    }
    agg_->flush();
  }

  // The model the nodes hold: the server's for dense SGD (sent whole), else the model stream's.
  const std::vector<float>& global() const { return down_ ? down_->published() : agg_->params(); }

  // One publish after every round in which the model moved: what each node receives. A node sees
  // the updates of the others from the round before, as a real node sees the model of the last
  // publish (the broker publishes every 500 ms, about a camera's step), not the ones merged a moment
  // ago in the same round.
  void publish() {
    if (agg_->version() == published_version_) return;
    published_version_ = agg_->version();
    if (!down_) {
      r_.downlink_bytes += dense_model_bytes_;
      return;
    }
    ModelDelta d;
    d.layout_hash = model_->layout_hash();
    d.chain_id = 1;
    d.dim = dim_;
    d.version = published_version_;
    down_->next(agg_->params(), d.index, d.step);
    r_.downlink_bytes += encode_delta(d).size();
  }

  void deliver(const std::vector<uint8_t>& msg) {
    r_.uplink_bytes += msg.size();
    ++r_.messages;
    auto t = Clock::now();
    auto dec = decode_update(msg, decode_opts_);
    if (!dec.ok() || agg_->submit(dec.value) != Verdict::Accepted) ++r_.rejected;
    r_.aggregate_seconds += seconds_since(t);
  }

  const BenchOptions& o_;
  const Data& d_;
  Method method_;
  std::string model_id_ = "bench";
  std::unique_ptr<Model> model_;
  uint32_t dim_ = 0;
  uint32_t steps_per_epoch_ = 0;
  std::unique_ptr<Aggregator> agg_;
  std::vector<MethodNode> nodes_;
  std::vector<uint32_t> node_steps_;   // per node: steps in an epoch (its shard / batch)
  std::vector<uint32_t> round_steps_ = std::vector<uint32_t>(o_.nodes, 0);  // FedAvg: local steps this round
  std::optional<DownlinkEncoder> down_;  // the model stream (all but dense)
  size_t dense_model_bytes_ = 0;         // dense: the whole model, sent every step
  uint64_t published_version_ = 0;
  DecodeOptions decode_opts_;
  std::vector<float> images_;
  std::vector<int64_t> labels_;
  MethodResult r_;
};

// All bytes on all links: every node's uplink, and what each node receives, times the nodes.
uint64_t total_bytes(const MethodResult& r, uint32_t nodes) { return r.uplink_bytes + r.downlink_bytes * nodes; }

std::string ratio_text(uint64_t dense, uint64_t own) {
  return dense ? fmt::format("{:.1f}x", double(dense) / double(std::max<uint64_t>(1, own))) : "-";
}

nlohmann::json ratio_json(uint64_t dense, uint64_t own) {
  return dense && own ? nlohmann::json(double(dense) / double(own)) : nlohmann::json(nullptr);
}

nlohmann::json to_json(const MethodResult& r, const MethodResult* dense, uint32_t nodes) {
  nlohmann::json curve = nlohmann::json::array();
  for (const auto& p : r.curve)
    curve.push_back({{"epoch", p.epoch}, {"accuracy", p.accuracy},
                     {"seen_accuracy", p.seen_accuracy >= 0 ? nlohmann::json(p.seen_accuracy) : nlohmann::json(nullptr)},
                     {"uplink_bytes", p.uplink_bytes}, {"downlink_bytes", p.downlink_bytes}, {"wall_seconds", p.wall_seconds}});
  nlohmann::json j = {{"accuracy", r.accuracy},
                      {"seen_accuracy", r.seen_accuracy >= 0 ? nlohmann::json(r.seen_accuracy) : nlohmann::json(nullptr)},
                      {"uplink_bytes", r.uplink_bytes},
                      {"downlink_bytes", r.downlink_bytes},
                      {"total_bytes", total_bytes(r, nodes)},
                      {"diverged", r.diverged.empty() ? nlohmann::json(false) : nlohmann::json(r.diverged)},
                      {"messages", r.messages},
                      {"steps", r.steps},
                      {"wall_seconds", r.wall_seconds},
                      {"compress_seconds", r.compress_seconds},
                      {"train_seconds", r.train_seconds},
                      {"aggregate_seconds", r.aggregate_seconds},
                      {"compress_overhead", r.train_seconds > 0 ? r.compress_seconds / r.train_seconds : 0.0},
                      {"last_epoch_loss", r.last_epoch_loss},
                      {"model_versions", r.model_versions},
                      {"rejected", r.rejected},
                      {"curve", curve}};
  j["ratio_vs_dense"] = ratio_json(dense ? dense->uplink_bytes : 0, r.uplink_bytes);
  j["downlink_ratio_vs_dense"] = ratio_json(dense ? dense->downlink_bytes : 0, r.downlink_bytes);
  j["total_ratio_vs_dense"] = ratio_json(dense ? total_bytes(*dense, nodes) : 0, total_bytes(r, nodes));
  return j;
}

}  // namespace

void apply_preset(BenchOptions& o, const std::string& preset) {
  const BenchOptions quick;  // the defaults are the quick preset
  if (preset == "quick") {
    o.nodes = quick.nodes, o.epochs = quick.epochs, o.train_limit = quick.train_limit, o.test_limit = quick.test_limit;
  } else if (preset == "full") {  // where targets are judged: every image, one epoch more
    o.nodes = quick.nodes, o.epochs = quick.epochs + 1, o.train_limit = 0, o.test_limit = 0;
  } else {
    throw std::invalid_argument("unknown preset '" + preset + "' (quick, full)");
  }
  o.preset = preset;
}

namespace {

Data load_fashion(const BenchOptions& o, const std::string& dir) {
  Data d;
  d.train = load_fashion_mnist(dir, true);
  d.test = load_fashion_mnist(dir, false);
  d.train.truncate(o.train_limit ? o.train_limit : d.train.size());
  d.test.truncate(o.test_limit ? o.test_limit : d.test.size());
  d.shards = o.dirichlet_alpha > 0.0
                 ? shard_dirichlet(d.train.labels, 10, o.nodes, o.dirichlet_alpha, o.seed)
                 : shard_iid(d.train.size(), o.nodes, o.seed);
  return d;
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out;
}

// A node per site for the first `nodes` sites, the rest held out (their test splits are the test
// set); RGB at the input size asked, or
// the images' own.
Data load_sites(const BenchOptions& o, const std::vector<std::string>& sites) {
  if (sites.size() <= o.nodes)
    throw std::invalid_argument(fmt::format("--data {}: {} sites for {} nodes; a node trains on one site and at least "
                                            "one site must be held out", o.data_dir, sites.size(), o.nodes));
  if (o.dirichlet_alpha > 0.0) throw std::invalid_argument("--alpha: with site folders a node's shard is its site");
  if (is_temporal(o.model)) throw std::invalid_argument("--model crnn trains on moving Fashion-MNIST, not site folders");
  auto [width, height] = first_image_size(sites[0]);
  if (o.input_width) width = o.input_width;
  if (o.input_height) height = o.input_height;
  Data d;
  d.kind = "sites";
  for (size_t k = 0; k < sites.size(); ++k) {
    if (k < o.nodes) {
      const Dataset own = load_image_folder(sites[k] + "/train", width, height, 3);
      std::vector<uint32_t> shard(own.size());
      std::iota(shard.begin(), shard.end(), uint32_t(d.train.size()));
      d.shards.push_back(std::move(shard));
      d.train.append(own);
      d.seen_test.append(load_image_folder(sites[k] + "/test", width, height, 3));
      d.train_sites.push_back(sites[k]);
    } else {  // never trained on: how the model travels to a site it has not seen
      d.test.append(load_image_folder(sites[k] + "/test", width, height, 3));
      d.held_out_sites.push_back(sites[k]);
    }
  }
  return d;
}

}  // namespace

int run_compression_bench(const BenchOptions& o) {
  const JsonReport report(o.json_path);
  set_compute_threads(o.threads);
  const std::string dir = o.data_dir.empty() ? default_fashion_mnist_dir() : o.data_dir;
  const std::vector<std::string> sites = site_folders(dir);
  const Data d = sites.empty() ? load_fashion(o, dir) : load_sites(o, sites);

  if (is_temporal(o.model) && o.dirichlet_alpha > 0.0)
    throw std::invalid_argument("--alpha: the moving data set's classes are directions, drawn per clip; use IID shards");
  fmt::print(stderr, "swarmlens bench compression: preset {}, model {}, {} nodes, {} epochs, {} train / {} test images "
             "({}x{}x{}), batch {}/node\n", o.preset, o.model, o.nodes, o.epochs, d.train.size(), d.test.size(),
             d.train.channels, d.train.rows, d.train.cols, o.batch);
  if (!sites.empty())
    fmt::print(stderr, "  training sites: {}; held out: {}\n", joined(d.train_sites), joined(d.held_out_sites));
  std::map<std::string, MethodResult> results;
  for (const auto& name : o.methods) {
    fmt::print(stderr, "method {}:\n", name);
    try {
      results[name] = Simulation(o, d, method_named(name)).run();
    } catch (const std::invalid_argument&) {
      throw;  // the options, not the method: nothing to compare
    } catch (const std::exception& e) {  // a method that fails is reported as such; the others still run
      results[name].diverged = e.what();
      fmt::print(stderr, "  failed: {}\n", e.what());
    }
  }

  const MethodResult* dense = results.count("dense") && results["dense"].diverged.empty() ? &results["dense"] : nullptr;
  if (!sites.empty()) fmt::print("\naccuracy: on the held-out sites' test splits; seen: on the training sites'");
  fmt::print("\nuplink: all nodes; downlink: per node; total: uplink + downlink x {} nodes; x: fewer bytes than dense\n", o.nodes);
  fmt::print("{:<8} {:>9} {:>9} {:>14} {:>9} {:>14} {:>9} {:>9} {:>9} {:>8} {:>9}\n", "method", "accuracy", "seen",
             "uplink bytes", "up x", "downlink/node", "down x", "total x", "messages", "wall s", "overhead");
  for (const auto& name : o.methods) {
    const auto& r = results[name];
    if (!r.diverged.empty()) {
      fmt::print("{:<8} diverged: {}\n", name, r.diverged);
      if (r.curve.empty()) continue;
    }
    const std::string seen = r.seen_accuracy >= 0 ? fmt::format("{:.4f}", r.seen_accuracy) : "-";
    fmt::print("{:<8} {:>9.4f} {:>9} {:>14} {:>9} {:>14} {:>9} {:>9} {:>9} {:>8.1f} {:>8.1f}%\n", name, r.accuracy, seen,
               r.uplink_bytes, ratio_text(dense ? dense->uplink_bytes : 0, r.uplink_bytes), r.downlink_bytes,
               ratio_text(dense ? dense->downlink_bytes : 0, r.downlink_bytes),
               ratio_text(dense ? total_bytes(*dense, o.nodes) : 0, total_bytes(r, o.nodes)), r.messages, r.wall_seconds,
               100.0 * r.compress_seconds / std::max(1e-9, r.train_seconds));
  }

  if (!o.json_path.empty()) {
    nlohmann::json j;
    j["benchmark"] = "compression";
    j["config"] = {{"preset", o.preset}, {"model", o.model},
                   {"window", is_temporal(o.model) ? nlohmann::json(o.window) : nlohmann::json(nullptr)},
                   {"data", is_temporal(o.model) ? "moving-fashion-mnist" : d.kind}, {"nodes", o.nodes}, {"epochs", o.epochs},
                   {"input", {d.train.channels, d.train.rows, d.train.cols}},
                   {"train_sites", d.train_sites}, {"held_out_sites", d.held_out_sites},
                   {"seen_test_images", d.seen_test.size()},
                   {"train_images", d.train.size()}, {"test_images", d.test.size()},
                   {"batch_per_node", o.batch}, {"lr", o.lr}, {"momentum", o.momentum},
                   {"density", o.density}, {"downlink_density", o.downlink_density}, {"warmup_fraction", o.warmup_fraction},
                   {"criterion", criterion_name(o.criterion)}, {"values", value_coding_name(o.values)},
                   {"trigger_age", o.trigger_age}, {"trigger_nnz", o.trigger_nnz},
                   {"trigger_norm", o.trigger_norm}, {"fedavg_steps", o.fedavg_steps},
                   {"dirichlet_alpha", o.dirichlet_alpha}, {"seed", o.seed},
                   {"threads", o.threads}, {"hardware_threads", std::thread::hardware_concurrency()}};
    for (const auto& name : o.methods) j["methods"][name] = to_json(results[name], dense, o.nodes);
    report.write(j);
  }
  return 0;
}

namespace {
// The options as typed: the criterion and value coding by name.
struct CommandOptions : BenchOptions {
  std::string criterion_text = criterion_name(criterion), values_text = value_coding_name(values);
};
}  // namespace

void add_compression_bench_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<CommandOptions>();
  auto* c = parent.add_subcommand(
      "compression", "Simulated nodes on Fashion-MNIST: dense SGD vs DGC top-k vs two-step vs FedAvg");
  c->add_option("--preset", o->preset, "quick (CI, a few minutes) or full (where targets are judged); options given "
                 "beside it override its values")
      ->check(CLI::IsMember({"quick", "full"}))->capture_default_str()
      ->each([o](const std::string& p) { apply_preset(*o, p); });
  c->add_option("--model", o->model, "model registry name; crnn (recurrent) trains on moving Fashion-MNIST, class = direction")
      ->check(CLI::IsMember({"cnn", "mobilenet", "crnn"}))->capture_default_str();
  c->add_option("--window", o->window, "crnn: frames per sample")->check(CLI::Range(1, 64))->capture_default_str();
  c->add_option("--data", o->data_dir, "Fashion-MNIST folder (default: $SWARMLENS_FASHION_MNIST or the Debian package's), or "
                 "a folder of sites (swarmlens scenes): node K trains on site-K, the sites after the nodes' are held out (their "
                 "test splits measure accuracy; --train-limit, --test-limit and --alpha are Fashion-MNIST's)");
  c->add_option("--input-width", o->input_width, "site folders: model input width (default: the images')")->check(CLI::Range(8, 1024));
  c->add_option("--input-height", o->input_height, "site folders: model input height (default: the images')")->check(CLI::Range(8, 1024));
  c->add_option("--nodes", o->nodes, "simulated nodes")->check(CLI::Range(1, 256))->capture_default_str();
  c->add_option("--epochs", o->epochs, "passes over each node's shard")->check(CLI::Range(1, 1000))->capture_default_str();
  c->add_option("--train-limit", o->train_limit, "training images used (0 = all)")->capture_default_str();
  c->add_option("--test-limit", o->test_limit, "test images used (0 = all)")->capture_default_str();
  c->add_option("--batch-size,--batch", o->batch, "batch size per node")->check(CLI::Range(1, 4096))->capture_default_str();
  c->add_option("--learning-rate,--lr", o->lr, "learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  c->add_option("--momentum", o->momentum, "momentum")->check(CLI::Range(0.0, 0.999))->capture_default_str();
  c->add_option("--density", o->density, "share of entries sent per step after warm-up")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  c->add_option("--downlink-density", o->downlink_density, "all but dense: share of the parameters one published model "
                 "delta may move (swarmlens-broker --downlink-density)")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  c->add_option("--warmup-fraction", o->warmup_fraction, "share of the run in sparsity warm-up")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  c->add_option("--criterion", o->criterion_text, "selection: topk, sampled-topk or randomk (threshold needs a fixed magnitude, which this benchmark does not take)")
      ->check(CLI::IsMember({"topk", "sampled-topk", "randomk"}))->capture_default_str();
  c->add_option("--values", o->values_text, "value coding on the wire: fp32, fp16, int8, sign (a bit a value, a "
                 "magnitude per block of 64)")
      ->check(CLI::IsMember({"fp32", "fp16", "int8", "sign"}))->capture_default_str();
  c->add_option("--clip-norm", o->clip_norm, "local gradient clipping L2 bound (0 = off)")->check(CLI::NonNegativeNumber)->capture_default_str();
  c->add_option("--trigger-age", o->trigger_age, "two-step: release after this many steps (0 = off)")->capture_default_str();
  c->add_option("--trigger-nnz", o->trigger_nnz, "two-step: release at this many pending entries (0 = off)")->capture_default_str();
  c->add_option("--trigger-norm", o->trigger_norm, "two-step: release at this pending L2 norm (0 = off)")->check(CLI::NonNegativeNumber)->capture_default_str();
  c->add_option("--fedavg-steps", o->fedavg_steps, "FedAvg local steps per round")->check(CLI::Range(1, 100000))->capture_default_str();
  c->add_option("--alpha", o->dirichlet_alpha, "non-IID shards with Dirichlet(alpha); 0 = IID")->check(CLI::NonNegativeNumber)->capture_default_str();
  c->add_option("--seed", o->seed, "seed for weights, shards and sampling")->capture_default_str();
  c->add_option("--threads", o->threads, "LibTorch threads (0 = its default)")->capture_default_str();
  c->add_option("--methods", o->methods, "methods to run, in order")
      ->check(CLI::IsMember({"dense", "topk", "twostep", "fedavg"}))->delimiter(',')->capture_default_str();
  c->add_option("--json", o->json_path, "write results as JSON to this file");
  commands.add(c, [o] {
    o->criterion = *parse_criterion(o->criterion_text);
    o->values = *parse_value_coding(o->values_text);
    return run_compression_bench(*o);
  });
}

}  // namespace swarmlens
