#include "bench_attacks.h"

#include <fmt/core.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <fstream>
#include <random>

#include "bench_report.h"
#include "broker_service.h"
#include "compressor.h"
#include "dataset.h"
#include "metrics.h"
#include "model.h"

namespace swarmlens {

namespace {

struct AttacksOptions {
  uint32_t rounds = 100;        // every node steps once a round
  size_t train_limit = 20000;
  size_t test_limit = 0;         // all 10,000
  double lr = NodeTrainerConfig::kDefaultLr;
  std::vector<std::string> attacks = {"signflip", "noise", "huge", "sybil"};
  bool undefended = false;      // also run each attack with every bound off (to show it bites)
  double clip_factor = NormBoundConfig::kDefaultClipFactor;
  std::vector<uint32_t> sizes = {5, 10};  // federations run: 1 in 5 malicious
  std::string json_path;
};

struct RunResult {
  double accuracy = 0;
  uint64_t honest_sent = 0, honest_accepted = 0;
  double seconds = 0;
  BrokerStats stats;
};

std::vector<uint8_t> malicious(const std::string& attack, const std::vector<uint8_t>& honest, std::mt19937& rng,
                               uint32_t sybil_id) {
  auto d = decode_update(honest).value;
  const double norm = d.update.l2_norm();
  if (attack == "signflip" || attack == "sybil") {
    for (float& v : d.update.value) v *= -25.0f;
  } else if (attack == "noise") {
    std::normal_distribution<float> g(0.0f, 1.0f);
    for (float& v : d.update.value) v = g(rng);
    const double n = d.update.l2_norm();
    for (float& v : d.update.value) v = float(v * 25.0 * norm / std::max(n, 1e-12));
  } else if (attack == "huge") {
    for (float& v : d.update.value) v *= 1e30f / float(std::max(norm, 1e-12));
  }
  if (attack == "sybil") d.header.node_id = sybil_id;
  return encode_update(d.header, d.update, {std::nullopt, ValueCoding::Fp32});
}

RunResult run(const Dataset& train, const Dataset& test, uint32_t nodes, uint32_t bad, const std::string& attack,
              bool defended, const AttacksOptions& o) {
  auto model = Model::create({}, 1);
  const uint32_t dim = uint32_t(model->num_params());
  BrokerConfig bc;
  bc.model_id = "attacks";
  bc.aggregation.server_lr = averaging_server_lr(o.lr, nodes);
  bc.rate.updates_per_s = 0;  // rounds run faster than real time: the rate limit is not what is measured
  bc.aggregation.norm.clip_factor = o.clip_factor;
  if (!defended) {
    bc.aggregation.norm.clip_factor = 0;
    bc.aggregation.norm.max_norm = 0;
    bc.max_model_norm_factor = 0;
  }
  BrokerService broker(bc, nullptr);
  const Shards shards = shard_iid(train.size(), nodes, 7);
  std::vector<TwoStepCompressor> comp;
  for (uint32_t n = 0; n < nodes; ++n) {
    CompressorConfig cc;
    cc.sparsify.density = 0.01;
    cc.sparsify.seed = 100 + n;
    cc.trigger.max_age_steps = 1;
    comp.emplace_back(dim, cc, NodeIdentity{"attacks", model->layout_hash(), n});
  }
  std::mt19937 rng(3);
  std::vector<float> images;
  std::vector<int64_t> labels;
  RunResult r;
  uint32_t sybil = 1000000;
  const uint32_t batch = 32;
  const auto t0 = std::chrono::steady_clock::now();
  for (uint32_t round = 0; round < o.rounds; ++round) {
    for (uint32_t n = 0; n < nodes; ++n) {
      const Snapshot global = broker.snapshot();
      model->set_params(global.params.data());
      const auto& shard = shards[n];
      const size_t first = (size_t(round) * batch) % (shard.size() - batch);
      make_batch(train, shard.data() + first, batch, images, labels);
      model->compute_gradient({images.data(), labels.data(), labels.size()});
      std::optional<std::vector<uint8_t>> msg;
      try {
        msg = comp[n].step(model->grad(), batch, global.version);
      } catch (const std::invalid_argument&) {  // a wrecked model: NaN gradients, skipped as a node does
        continue;
      }
      if (!msg) continue;
      const bool evil = n >= nodes - bad;
      if (evil) {
        broker.submit(malicious(attack, *msg, rng, sybil++));
      } else {
        ++r.honest_sent;
        if (broker.submit(*msg).empty()) ++r.honest_accepted;
      }
    }
    broker.publish_if_changed();  // the model check runs before each publish, as the daemon's does
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const Snapshot s = broker.snapshot();
  model->set_params(s.params.data());
  r.accuracy = evaluate_accuracy(*model, test, o.test_limit);
  r.stats = broker.stats();
  return r;
}

int run_attacks(const AttacksOptions& o) {
  const JsonReport report(o.json_path);
  set_compute_threads(1);
  Dataset train = load_fashion_mnist(default_fashion_mnist_dir(), true);
  if (o.train_limit) train.truncate(o.train_limit);
  Dataset test = load_fashion_mnist(default_fashion_mnist_dir(), false);
  nlohmann::json runs = nlohmann::json::array();
  auto record = [&](const std::string& attack, uint32_t nodes, uint32_t bad, bool defended, const RunResult& r,
                    double clean) {
    const double ratio = r.honest_sent ? double(r.honest_accepted) / double(r.honest_sent) : 0;
    fmt::print("{:<9} {:>2} of {:<2} {:<10} accuracy {:.4f} ({:+.1f} points vs clean)  honest accepted {:.3f}  "
               "clipped {}  refused {}  {:.1f} s\n",
               attack, bad, nodes, defended ? "default" : "undefended", r.accuracy, 100 * (r.accuracy - clean), ratio,
               r.stats.clipped, r.stats.updates_in - r.stats.accepted, r.seconds);
    runs.push_back({{"attack", attack}, {"nodes", nodes}, {"malicious", bad}, {"defended", defended},
                    {"accuracy", r.accuracy}, {"clean_accuracy", clean}, {"points_vs_clean", 100 * (r.accuracy - clean)},
                    {"honest_sent", r.honest_sent}, {"honest_accepted", r.honest_accepted}, {"clipped", r.stats.clipped},
                    {"rejected", r.stats.rejected}, {"models_refused", r.stats.models_refused}, {"seconds", r.seconds}});
  };
  for (const uint32_t nodes : o.sizes) {
    const uint32_t bad = nodes / 5;
    const RunResult clean = run(train, test, nodes, 0, "none", true, o);
    record("none", nodes, 0, true, clean, clean.accuracy);
    // What the defences cost an honest federation: the clean run with every bound off.
    if (o.undefended && nodes == 5) record("none", nodes, 0, false, run(train, test, nodes, 0, "none", false, o), clean.accuracy);
    for (const auto& a : o.attacks) {
      record(a, nodes, bad, true, run(train, test, nodes, bad, a, true, o), clean.accuracy);
      if (o.undefended && nodes == 5) record(a, nodes, bad, false, run(train, test, nodes, bad, a, false, o), clean.accuracy);
    }
  }
  report.write({{"rounds", o.rounds}, {"clip_factor", o.clip_factor}, {"train_limit", o.train_limit},
                {"test_limit", o.test_limit}, {"lr", o.lr}, {"runs", runs}});
  return 0;
}

}  // namespace

void add_attacks_bench_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<AttacksOptions>();
  auto* c = parent.add_subcommand("attacks", "Accuracy under attack (sign-flip, noise, huge norm, Sybil ids) with 1 of 5 "
                                             "and 2 of 10 nodes malicious, default broker settings, against a clean run");
  c->add_option("--rounds", o->rounds, "rounds (every node steps once a round)")->check(CLI::Range(1, 100000))->capture_default_str();
  c->add_option("--train-limit", o->train_limit, "training images used (0 = all)")->capture_default_str();
  c->add_option("--test-limit", o->test_limit, "test images evaluated (0 = all)")->capture_default_str();
  c->add_option("--learning-rate,--lr", o->lr, "nodes' learning rate")->check(CLI::PositiveNumber)->capture_default_str();
  c->add_option("--attack", o->attacks, "attacks to run")->check(CLI::IsMember({"signflip", "noise", "huge", "sybil"}))
      ->capture_default_str();
  c->add_flag("--undefended", o->undefended, "also run each attack (1 of 5) with every bound off");
  c->add_option("--clip-factor", o->clip_factor, "the broker's adaptive clip: this many times the median norm")
      ->check(CLI::NonNegativeNumber)->capture_default_str();
  c->add_option("--nodes", o->sizes, "federation sizes run, one in five malicious")->check(CLI::Range(5, 1000))
      ->capture_default_str();
  c->add_option("--json", o->json_path, "write results as JSON to this file");
  commands.add(c, [o] { return run_attacks(*o); });
}

}  // namespace swarmlens
