#include "bench_field.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <memory>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <stdexcept>
#include <thread>

#include "bench_report.h"
#include "codec.h"
#include "compressor.h"
#include "dataset.h"
#include "methods.h"
#include "nats_cli.h"
#include "metrics.h"
#include "model_channel.h"
#include "node_link.h"
#include "node_trainer.h"
#include "reliable_uplink.h"
#include "command.h"

namespace swarmlens {
namespace {

using Clock = std::chrono::steady_clock;
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }

double since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

NatsOptions nats_options(const std::string& urls, const std::string& credentials, const std::string& name) {
  NatsOptions n;
  n.urls = {urls};
  n.credentials_file = credentials;
  n.name = name;
  n.request_timeout_ms = 30000;  // a congested link with stalls takes seconds to answer
  n.connect_timeout_ms = 10000;
  return n;
}

// The node's shard, replayed in a fresh seeded order each pass.
class ShardStream {
 public:
  ShardStream(const Dataset& d, std::vector<uint32_t> shard, uint64_t seed) : d_(d), shard_(std::move(shard)), rng_(seed) {
    if (shard_.empty()) throw std::invalid_argument("empty shard");
    std::shuffle(shard_.begin(), shard_.end(), rng_);
  }
  void next(uint32_t n, std::vector<float>& images, std::vector<int64_t>& labels) {
    idx_.clear();
    while (idx_.size() < n) {
      if (pos_ == shard_.size()) {
        std::shuffle(shard_.begin(), shard_.end(), rng_);
        pos_ = 0;
      }
      idx_.push_back(shard_[pos_++]);
    }
    make_batch(d_, idx_.data(), idx_.size(), images, labels);
  }

 private:
  const Dataset& d_;
  std::vector<uint32_t> shard_, idx_;
  std::mt19937_64 rng_;
  size_t pos_ = 0;
};

// The newest model the link delivered, and a wait for one newer than a version.
class ModelBox {
 public:
  void offer(std::shared_ptr<const Snapshot> m) {
    std::lock_guard<std::mutex> g(mu_);
    if (!latest_ || m->version > latest_->version) latest_ = std::move(m);
    cv_.notify_all();
  }
  // Waits until a model newer than `version` is in, or stop. Null on stop.
  std::shared_ptr<const Snapshot> wait_newer(uint64_t version) {
    std::unique_lock<std::mutex> g(mu_);
    while (!g_stop && !(latest_ && latest_->version > version)) cv_.wait_for(g, std::chrono::milliseconds(100));
    return g_stop ? nullptr : latest_;
  }
  std::shared_ptr<const Snapshot> latest() const {
    std::lock_guard<std::mutex> g(mu_);
    return latest_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const Snapshot> latest_;
};

struct NodeCounters {
  uint64_t steps = 0, samples = 0, messages = 0, update_bytes = 0, rounds = 0;
  double wait_seconds = 0;  // synchronous methods: time spent waiting for the round's model
  uint64_t held_back = 0;   // two-step: releases merged back because the previous update was on the wire
  uint64_t resent = 0, refused = 0;  // two-step: updates sent again (no answer in time), refused by the broker
  std::map<std::string, uint64_t> refused_by;  // two-step: the broker's reasons
};

void report(NodeLink& link, const FieldNodeOptions& o, const NodeCounters& c, double elapsed) {
  const NodeLinkStats s = link.stats();
  nlohmann::json m = {{"source", "field-node"},  {"node_id", o.node_id},       {"method", o.method},
                      {"elapsed", elapsed},       {"steps", c.steps},           {"samples", c.samples},
                      {"messages", c.messages},   {"update_bytes", c.update_bytes},
                      {"updates_sent", s.updates_sent}, {"updates_refused", s.updates_refused},
                      {"models_in", s.models_in}, {"model_bytes_in", s.bytes_in}, {"model_version", s.model_version},
                      {"rounds", c.rounds},       {"wait_seconds", c.wait_seconds}, {"held_back", c.held_back},
                      {"resent", c.resent},       {"refused", c.refused},       {"refused_by", c.refused_by},
                      {"connected", s.connected}};
  link.publish_metrics(m.dump());
}

// The last report, at the node's stop; a stalled link may keep it from arriving.
void final_report(NodeLink& link, const FieldNodeOptions& o, const NodeCounters& c, double elapsed) {
  report(link, o, c, elapsed);
  try {
    link.flush(5000);
  } catch (const std::exception&) {
  }
}

// Sends one round's update, waiting out a down link (a synchronous round cannot go on without it).
void send_blocking(NodeLink& link, const std::vector<uint8_t>& msg) {
  while (!g_stop && !link.send_update(msg)) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  while (!g_stop) {  // short flushes, so SIGTERM is seen within a second on a slow link
    try {
      link.flush(1000);
      return;
    } catch (const std::exception&) {
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

int run_synchronous(const FieldNodeOptions& o, const Dataset& train, std::vector<uint32_t> shard) {
  ModelSpec spec;
  auto model = Model::create(spec, o.seed);  // the broker's seed: the same initial weights
  const uint32_t dim = uint32_t(model->num_params());
  ModelBox box;
  NodeLink link(nats_options(o.nats, o.credentials, fmt::format("field-node-{}", o.node_id)), o.model_id,
                [&](std::shared_ptr<const Snapshot> m) { box.offer(std::move(m)); },
                [&](const std::string& e) { fmt::print(stderr, "field-node {}: {}\n", o.node_id, e); });
  ShardStream stream(train, std::move(shard), o.seed * 7919 + o.node_id);
  MethodConfig mc;
  mc.method = *parse_method(o.method);
  mc.lr = o.lr;
  mc.momentum = o.momentum;
  mc.fedavg_steps = o.fedavg_steps;
  mc.compression.sparsify.density = o.density;
  mc.compression.sparsify.momentum = o.momentum;
  mc.compression.sparsify.warmup_stage_steps = o.warmup_steps;
  mc.compression.sparsify.seed = o.seed * 1000 + o.node_id;
  MethodNode node(mc, dim, NodeIdentity{o.model_id, model->layout_hash(), o.node_id});
  const bool fedavg = mc.method == Method::FedAvg;
  std::vector<float> global = model->params_copy();
  uint64_t version = 0;
  if (auto m = box.latest()) {
    global = m->params;
    version = m->version;
  }
  std::vector<float> images;
  std::vector<int64_t> labels;
  NodeCounters c;
  const auto t0 = Clock::now();
  auto last_report = t0;
  while (!g_stop && (o.duration <= 0 || since(t0) < o.duration)) {
    std::optional<std::vector<uint8_t>> msg;
    const uint32_t local_steps = fedavg ? o.fedavg_steps : 1;
    for (uint32_t h = 0; h < local_steps; ++h) {
      stream.next(o.batch, images, labels);
      model->set_params(node.weights(global));
      model->compute_gradient({images.data(), labels.data(), labels.size()});
      ++c.steps;
      c.samples += labels.size();
      msg = node.step(model->grad(), o.batch, version);
    }
    if (fedavg) msg = node.end_round(global, version, uint64_t(o.batch) * local_steps);
    if (!msg) throw std::runtime_error("top-k selected nothing (an all-zero gradient)");
    send_blocking(link, *msg);
    ++c.messages;
    c.update_bytes += msg->size();
    const auto tw = Clock::now();
    auto next = box.wait_newer(version);  // the round closes when every node's update is in
    c.wait_seconds += since(tw);
    if (!next) break;
    global = next->params;
    version = next->version;
    ++c.rounds;
    if (since(last_report) >= o.report_interval) {
      report(link, o, c, since(t0));
      last_report = Clock::now();
    }
  }
  final_report(link, o, c, since(t0));
  return 0;
}

int run_twostep(const FieldNodeOptions& o, const Dataset& train, std::vector<uint32_t> shard) {
  NodeTrainerConfig cfg;
  cfg.model_id = o.model_id;
  cfg.node_id = o.node_id;
  cfg.seed = o.seed;
  cfg.batch_size = o.batch;
  cfg.lr = own_step_lr(o.local_lr, o.lr);  // the broker applies lr / nodes
  cfg.compression.sparsify.density = o.density;
  cfg.compression.sparsify.momentum = o.momentum;
  cfg.compression.sparsify.warmup_stage_steps = o.warmup_steps;
  cfg.compression.sparsify.seed = o.seed * 1000 + o.node_id;
  cfg.compression.trigger.max_age_steps = o.trigger_age;
  cfg.buffer_frames = 2 * o.batch;
  cfg.checkpoint = o.checkpoint;
  NodeTrainer trainer(cfg);
  NodeLink link(nats_options(o.nats, o.credentials, fmt::format("field-node-{}", o.node_id)), o.model_id,
                [&](std::shared_ptr<const Snapshot> m) { trainer.offer_model(std::move(m)); },
                [&](const std::string& e) { fmt::print(stderr, "field-node {}: {}\n", o.node_id, e); },
                /*follow=*/false);
  // One update on the wire until the broker answers; after each answer the node pulls the newest
  // model, so a slow downlink carries one model per exchange instead of every one published.
  UplinkOptions uo;
  uo.ack_timeout_ms = 30000;  // stalls of seconds are normal on these links: resend only after long silence
  uo.pull_after_ack = true;
  ReliableUplink uplink(link, o.node_id, uo);
  trainer.set_uplink([&](const std::vector<uint8_t>& msg) { return uplink.offer(msg); });
  trainer.start();
  ShardStream stream(train, std::move(shard), o.seed * 7919 + o.node_id);
  std::vector<float> images;
  std::vector<int64_t> labels;
  const size_t fs = trainer.frame_size();
  const auto t0 = Clock::now();
  auto last_report = t0;
  NodeCounters c;
  auto count = [&] {
    const TrainStats s = trainer.stats();
    c.steps = s.steps;
    c.samples = s.samples;
    c.messages = link.stats().updates_sent;
    c.update_bytes = link.stats().bytes_sent;
    const UplinkStats us = uplink.stats();
    c.held_back = us.held_back;
    c.resent = us.resent;
    c.refused = us.refused;
    c.refused_by = us.refused_by;
  };
  while (!g_stop && (o.duration <= 0 || since(t0) < o.duration)) {
    stream.next(o.batch, images, labels);
    for (uint32_t i = 0; i < o.batch && !g_stop; ++i) trainer.push(images.data() + i * fs, int(labels[i]), true);
    if (!trainer.error().empty()) throw std::runtime_error(trainer.error());
    if (since(last_report) >= o.report_interval) {
      count();
      report(link, o, c, since(t0));
      last_report = Clock::now();
    }
  }
  trainer.stop();  // writes the checkpoint (weights, residual, pending update)
  uplink.wait_idle(std::chrono::seconds(5));  // the update on the wire gets its answer, if it comes
  count();
  final_report(link, o, c, since(t0));
  return 0;
}

}  // namespace

int run_field_node(const FieldNodeOptions& o) {
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  if (o.node_id >= o.nodes) {
    fmt::print(stderr, "field-node: --node-id {} is out of range for --nodes {}\n", o.node_id, o.nodes);
    return 2;
  }
  try {
    set_compute_threads(1);  // one core per camera node
    const Dataset train = load_fashion_mnist(o.data.empty() ? default_fashion_mnist_dir() : o.data, true);
    auto shard = shard_iid(train.size(), o.nodes, o.seed)[o.node_id];
    if (o.method == "twostep") return run_twostep(o, train, std::move(shard));
    if (o.method == "dense" || o.method == "fedavg" || o.method == "topk") return run_synchronous(o, train, std::move(shard));
    fmt::print(stderr, "field-node: unknown method '{}' (dense, fedavg, topk, twostep)\n", o.method);
    return 2;
  } catch (const std::exception& e) {
    fmt::print(stderr, "field-node {}: error: {}\n", o.node_id, e.what());
    return 1;
  }
}

int run_field_watch(const FieldWatchOptions& o) {
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  try {
    const JsonReport report(o.json_path);
    const std::string dir = o.data.empty() ? default_fashion_mnist_dir() : o.data;
    Dataset test = load_fashion_mnist(dir, false);
    std::mutex mu;
    std::map<uint32_t, nlohmann::json> nodes;
    nlohmann::json broker_last;
    const auto t0 = Clock::now();
    auto link = NatsLink::connect(nats_options(o.nats, o.credentials, "field-watch"));
    link->subscribe(metrics_subject(o.model_id), [&](const std::string&, std::vector<uint8_t> payload) {
      nlohmann::json m = nlohmann::json::parse(payload.begin(), payload.end(), nullptr, false);
      if (m.is_discarded() || !m.is_object()) return;
      const double t = since(t0);
      if (t > o.duration) return;  // the record ends with the run
      std::lock_guard<std::mutex> g(mu);
      if (m.value("source", "") == "broker") {
        broker_last = m;
      } else if (m.value("source", "") == "field-node") {
        m["t"] = t;
        nodes[m.value("node_id", 0u)] = m;
      }
    });
    link->flush();
    // During the run only the kept model is sampled (a JetStream read every interval, the same
    // cost whatever the method); every sample is evaluated after the run, when nothing competes
    // for the CPU, so a busy machine cannot delay or thin out the accuracy curve.
    struct Sample {
      double t;
      std::shared_ptr<const Snapshot> model;
    };
    std::vector<Sample> samples;
    std::shared_ptr<const Snapshot> latest;
    NodeLink sampler(nats_options(o.nats, o.credentials, "field-watch-models"), o.model_id,
                     [&](std::shared_ptr<const Snapshot> m) { latest = std::move(m); }, {}, /*follow=*/false);
    auto next = t0;
    while (!g_stop && since(t0) < o.duration) {
      if (Clock::now() >= next) {
        sampler.pull_model();
        if (latest) samples.push_back({since(t0), latest});
        next += std::chrono::milliseconds(int64_t(o.sample_interval * 1000));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    // The nodes' last reports come at their stop; the final model is the one kept in JetStream.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    std::optional<Snapshot> final_model;
    try {
      final_model = fetch_retained_model(*link, o.model_id);
    } catch (const std::exception& e) {
      fmt::print(stderr, "field-watch: no final model: {}\n", e.what());
    }
    auto model = Model::create(ModelSpec{}, 1);
    Dataset curve_test = test;
    curve_test.truncate(o.curve_images);
    nlohmann::json curve = nlohmann::json::array();
    double reached = -1;
    std::map<uint64_t, double> by_version;
    for (const Sample& s : samples) {
      auto it = by_version.find(s.model->version);
      if (it == by_version.end()) {
        model->set_params(s.model->params.data());
        it = by_version.emplace(s.model->version, evaluate_accuracy(*model, curve_test)).first;
      }
      curve.push_back({{"t", s.t}, {"version", s.model->version}, {"accuracy", it->second}});
      if (reached < 0 && it->second >= o.target) reached = s.t;
    }
    double final_accuracy = -1;
    if (final_model) {
      model->set_params(final_model->params.data());
      final_accuracy = evaluate_accuracy(*model, test);
    }
    std::lock_guard<std::mutex> g(mu);
    nlohmann::json node_list = nlohmann::json::array();
    for (auto& [id, n] : nodes) node_list.push_back(n);
    nlohmann::json out = {{"label", o.label},
                          {"target", o.target},
                          {"duration", o.duration},
                          {"time_to_target", reached < 0 ? nlohmann::json(nullptr) : nlohmann::json(reached)},
                          {"final_accuracy", final_accuracy},
                          {"final_version", final_model ? final_model->version : 0},
                          {"test_images", test.size()},
                          {"curve_test_images", curve_test.size()},
                          {"sample_interval", o.sample_interval},
                          {"curve", curve},
                          {"broker", broker_last},
                          {"nodes", node_list}};
    report.write(out);
    fmt::print("field-watch {}: target {:.2f} {}, final accuracy {:.4f} (version {}), {} nodes reported\n", o.label,
               o.target, reached < 0 ? std::string("not reached") : fmt::format("reached at {:.1f} s", reached),
               final_accuracy, final_model ? final_model->version : 0, node_list.size());
    return 0;
  } catch (const std::exception& e) {
    fmt::print(stderr, "field-watch: error: {}\n", e.what());
    return 1;
  }
}


void add_field_node_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<FieldNodeOptions>();
  auto* c = parent.add_subcommand("field-node", "One node of the field testbed (bench/field/run): trains its shard "
                                      "as fast as its core allows with one method, over NATS");
  add_nats_options(*c, {&o->nats, &o->credentials}, "NATS server URL");
  c->add_option("--model-id", o->model_id, "model id")->capture_default_str();
  c->add_option("--method", o->method, "dense, fedavg, topk (synchronous, no trigger) or twostep")
      ->check(CLI::IsMember({"dense", "fedavg", "topk", "twostep"}))->capture_default_str();
  c->add_option("--data", o->data, "Fashion-MNIST folder");
  c->add_option("--node-id", o->node_id, "this node's id and shard")->capture_default_str();
  c->add_option("--nodes", o->nodes, "shards")->check(CLI::Range(1, 100000))->capture_default_str();
  c->add_option("--batch-size,--batch", o->batch, "batch per step")->check(CLI::Range(1, 4096))->capture_default_str();
  c->add_option("--learning-rate,--lr", o->lr, "learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  c->add_option("--local-learning-rate,--local-lr", o->local_lr, "twostep: rate of the node's own steps (0 = --lr; the broker applies lr / nodes)")->check(CLI::NonNegativeNumber)->capture_default_str();
  c->add_option("--momentum", o->momentum, "momentum")->check(CLI::Range(0.0, 0.999))->capture_default_str();
  c->add_option("--density", o->density, "topk, twostep: share of entries sent")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  c->add_option("--warmup-steps", o->warmup_steps, "steps per sparsity warm-up stage")->capture_default_str();
  c->add_option("--trigger-age", o->trigger_age, "twostep: release after this many steps")->check(CLI::Range(1, 1000000))->capture_default_str();
  c->add_option("--fedavg-steps", o->fedavg_steps, "fedavg: local steps per round")->check(CLI::Range(1, 100000))->capture_default_str();
  c->add_option("--seed", o->seed, "seed (as the broker's)")->capture_default_str();
  c->add_option("--duration", o->duration, "seconds (0 = until SIGTERM)")->capture_default_str();
  c->add_option("--checkpoint", o->checkpoint, "twostep: resume from and write this checkpoint");
  commands.add(c, [o] { return run_field_node(*o); });
}

void add_field_watch_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<FieldWatchOptions>();
  auto* c = parent.add_subcommand("field-watch", "The field testbed's recorder: accuracy over wall time, every "
                                       "node's counters, the final model's accuracy on the whole test set, as JSON");
  add_nats_options(*c, {&o->nats, &o->credentials}, "NATS server URL");
  c->add_option("--model-id", o->model_id, "model id")->capture_default_str();
  c->add_option("--data", o->data, "Fashion-MNIST folder");
  c->add_option("--duration", o->duration, "seconds to record")->check(CLI::Range(1.0, 86400.0))->capture_default_str();
  c->add_option("--target", o->target, "accuracy whose first crossing is timed")->check(CLI::Range(0.0, 1.0))->capture_default_str();
  c->add_option("--sample-interval", o->sample_interval, "seconds between samples of the kept model")->check(CLI::Range(0.1, 3600.0))->capture_default_str();
  c->add_option("--curve-images", o->curve_images, "test images per curve point")->check(CLI::Range(100, 10000))->capture_default_str();
  c->add_option("--json", o->json_path, "write the record here")->required();
  c->add_option("--label", o->label, "free text kept in the record");
  commands.add(c, [o] { return run_field_watch(*o); });
}

}  // namespace swarmlens
