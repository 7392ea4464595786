// swarmlens-broker: the aggregator as a daemon. Subscribes to swarmlens.<model>.update, merges the
// updates, publishes the model on swarmlens.<model>.model (snapshots and deltas, kept in JetStream)
// and, as JSON on swarmlens.<model>.metrics, its counters and (with --test-data) the global model's
// test accuracy. Ctrl-C / SIGTERM: publishes, writes the snapshot and exits 0.
#include <algorithm>
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <signal.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "broker_service.h"
#include "dataset.h"
#include "idle_policy.h"
#include "metrics.h"

namespace {
std::atomic<bool> g_stop{false};
void on_signal(int) { g_stop = true; }
}  // namespace

int main(int argc, char** argv) {
  using namespace swarmlens;
  CLI::App app{"swarmlens-broker: merges compressed updates from camera nodes into the shared model"};
  NatsOptions nats;
  BrokerConfig cfg;
  std::string url = "nats://127.0.0.1:4222", test_data;
  int publish_ms = 500, stats_s = 10, eval_ms = 2000;
  size_t test_limit = 2000;
  app.add_option("--nats", url, "NATS server URL(s), comma-separated")->capture_default_str();
  app.add_option("--user", nats.user, "NATS user");
  app.add_option("--password", nats.password, "NATS password");
  app.add_option("--token", nats.token, "NATS token");
  app.add_option("--credentials,--creds", nats.credentials_file,
                 "NATS credentials file: a .creds file, one line user:password, or a token (keeps secrets off the command line)")
      ->check(CLI::ExistingFile);
  app.add_option("--tls-ca", nats.tls_ca, "CA bundle to verify the server (turns TLS on)");
  app.add_option("--tls-cert", nats.tls_cert, "client certificate (mutual TLS)");
  app.add_option("--tls-key", nats.tls_key, "client key (mutual TLS)");
  app.add_option("--model-id", cfg.model_id, "model id (subjects swarmlens.<id>.*)")->capture_default_str();
  app.add_option("--model", cfg.model.name, "model registry name")->check(CLI::IsMember({"cnn"}))->capture_default_str();
  app.add_option("--seed", cfg.seed, "seed of the initial weights (as the nodes')")->capture_default_str();
  app.add_option("--snapshot", cfg.snapshot_path, "resume from and keep writing this snapshot file (and journal accepted updates in <file>.journal)");
  bool no_journal = false;
  app.add_flag("--no-journal", no_journal, "do not journal accepted updates (a crash then loses those since the last publish)");
  app.add_option("--server-lr", cfg.aggregation.server_lr, "server learning rate: the mean of buffer-size updates (gradients) is applied at this rate; buffer-size x the nodes' lr / nodes averages them")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--server-momentum", cfg.aggregation.server_momentum, "server momentum (dense synchronous SGD; 0 = off)")->check(CLI::Range(0.0, 0.999))->capture_default_str();
  app.add_option("--buffer-size", cfg.aggregation.buffer_size, "updates per model version (FedBuff K)")->check(CLI::Range(1, 100000))->capture_default_str();
  app.add_option("--clip-norm", cfg.aggregation.clip_norm, "L2 bound per update (0 = off)")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--reject-norm", cfg.aggregation.reject_norm, "reject updates with an L2 norm above this (0 = off)")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--max-staleness", cfg.aggregation.max_staleness, "reject updates this many versions behind")->capture_default_str();
  app.add_option("--staleness-grace", cfg.aggregation.staleness_grace, "versions behind still weighted 1")->capture_default_str();
  app.add_option("--publish-interval-ms", publish_ms, "at most one model per interval")->check(CLI::Range(10, 3600000))->capture_default_str();
  app.add_option("--full-every", cfg.full_every, "a full snapshot every N model publishes, deltas between")->check(CLI::Range(1, 1000000))->capture_default_str();
  bool no_retain = false;
  app.add_flag("--no-retain", no_retain, "do not keep the model in JetStream (for a server without -js)");
  app.add_option("--eval-interval-ms", eval_ms, "at most one test evaluation per interval")->check(CLI::Range(10, 3600000))->capture_default_str();
  app.add_option("--stats", stats_s, "seconds between stats lines (0 = none)")->capture_default_str();
  app.add_option("--test-data", test_data, "Fashion-MNIST folder: evaluate the model and publish metrics");
  app.add_option("--test-limit", test_limit, "test images evaluated")->capture_default_str();
  app.set_config("--config", "", "INI file of these options by their long names (command-line options win)");
  CLI11_PARSE(app, argc, argv);
  cfg.journal = !no_journal;
  nats.urls = CLI::detail::split(url, ',');
  nats.name = "swarmlens-broker";
  cfg.retain = !no_retain;

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  try {
    BrokerService broker(cfg, NatsLink::connect(nats, [](LinkState s) {
      fmt::print(stderr, "swarmlens-broker: NATS link {}\n", link_state_name(s));
    }));
    // The test evaluation runs on its own thread (at lowest priority), so a slow evaluation never
    // holds back taking updates or publishing the model.
    std::mutex eval_lock;
    std::condition_variable eval_wake;
    double accuracy = -1.0;
    uint64_t evaluated = UINT64_MAX;
    size_t test_images = 0;
    bool eval_quit = false;
    std::thread evaluator;
    if (!test_data.empty()) {
      auto test = std::make_shared<Dataset>(load_fashion_mnist(test_data, false));
      test->truncate(test_limit);
      test_images = test->size();
      evaluator = std::thread([&, test] {
        set_thread_nice(19);
        auto eval = Model::create(cfg.model, cfg.seed);
        std::unique_lock<std::mutex> g(eval_lock);
        while (!eval_quit) {
          g.unlock();
          if (broker.stats().version != evaluated) {
            const Snapshot s = broker.snapshot();
            eval->set_params(s.params.data());
            const double a = evaluate_accuracy(*eval, *test);
            g.lock();
            accuracy = a;
            evaluated = s.version;
          } else {
            g.lock();
          }
          eval_wake.wait_for(g, std::chrono::milliseconds(eval_ms), [&] { return eval_quit; });
        }
      });
    }
    struct JoinEvaluator {  // stops the evaluator however this scope ends
      std::mutex& lock;
      std::condition_variable& wake;
      bool& quit;
      std::thread& t;
      ~JoinEvaluator() {
        {
          std::lock_guard<std::mutex> g(lock);
          quit = true;
        }
        wake.notify_all();
        if (t.joinable()) t.join();
      }
    } join_evaluator{eval_lock, eval_wake, eval_quit, evaluator};
    auto metrics_link = NatsLink::connect(nats);
    const BrokerStats first = broker.stats();
    fmt::print(stderr, "swarmlens-broker: serving model '{}' on {} (version {}{})\n", cfg.model_id, url, first.version,
               first.resumed_from.empty() ? ", fresh weights" : ", resumed from the " + first.resumed_from);
    if (first.journal_replayed || first.journal_skipped)
      fmt::print(stderr, "swarmlens-broker: journal: {} accepted updates merged again, {} already in the snapshot\n",
                 first.journal_replayed, first.journal_skipped);
    auto last_stats = std::chrono::steady_clock::now(), last_eval = last_stats - std::chrono::hours(1);
    BrokerStats prev = first;
    // The first model goes out at once (a node joining now gets it), then at most one per interval;
    // the wait is cut short by a stop signal however long the interval.
    auto next_publish = std::chrono::steady_clock::now();
    uint64_t journal_errors_seen = 0;
    while (!g_stop) {
      if (std::chrono::steady_clock::now() < next_publish) {
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(
            next_publish - std::chrono::steady_clock::now(), std::chrono::milliseconds(50)));
        continue;
      }
      next_publish = std::chrono::steady_clock::now() + std::chrono::milliseconds(publish_ms);
      try {
        broker.publish_if_changed();
      } catch (const std::exception& e) {  // link down: the next round tries again
        fmt::print(stderr, "swarmlens-broker: cannot publish the model: {}\n", e.what());
      }
      if (const BrokerStats st = broker.stats(); st.journal_errors > journal_errors_seen) {
        fmt::print(stderr, "swarmlens-broker: journal: {} write(s) failed ({}): updates accepted since the last "
                   "snapshot would be lost in a crash\n", st.journal_errors - journal_errors_seen, st.journal_error);
        journal_errors_seen = st.journal_errors;
      }
      auto now = std::chrono::steady_clock::now();
      if (now - last_eval >= std::chrono::milliseconds(eval_ms)) {
        last_eval = now;
        const BrokerStats st = broker.stats();
        nlohmann::json m = {{"source", "broker"}, {"model_version", st.version}, {"updates_in", st.updates_in},
                            {"bytes_in", st.bytes_in}, {"accepted", st.accepted}, {"rejected", st.rejected},
                            {"models_out", st.models_out}, {"bytes_out", st.bytes_out}, {"journal_errors", st.journal_errors}};
        {
          std::lock_guard<std::mutex> g(eval_lock);
          if (accuracy >= 0) {
            m["test_accuracy"] = accuracy;
            m["evaluated_version"] = evaluated;
            m["test_images"] = test_images;
          }
        }
        const std::string text = m.dump();
        try {
          metrics_link->publish(metrics_subject(cfg.model_id), std::vector<uint8_t>(text.begin(), text.end()));
        } catch (const std::exception& e) {
          fmt::print(stderr, "swarmlens-broker: cannot publish metrics: {}\n", e.what());
        }
      }
      now = std::chrono::steady_clock::now();
      if (stats_s > 0 && now - last_stats >= std::chrono::seconds(stats_s)) {
        const BrokerStats st = broker.stats();
        const double secs = std::chrono::duration<double>(now - last_stats).count();
        std::string rejected;
        for (const auto& [why, n] : st.rejected) rejected += fmt::format(" {}={}", why, n);
        double acc;
        {
          std::lock_guard<std::mutex> g(eval_lock);
          acc = accuracy;
        }
        fmt::print("stats: {:.1f} updates/s, in {} B, out {} B ({} snapshots, {} deltas), model v{}, accuracy {}, rejected:{}\n",
                   double(st.updates_in - prev.updates_in) / secs, st.bytes_in, st.bytes_out, st.snapshots_out,
                   st.deltas_out, st.version,
                   acc < 0 ? std::string("-") : fmt::format("{:.4f}", acc), rejected.empty() ? " none" : rejected);
        std::fflush(stdout);
        prev = st;
        last_stats = now;
      }
    }
    broker.publish_if_changed();  // the last version goes out (and into the snapshot) before exit
    fmt::print(stderr, "swarmlens-broker: stopped at model version {}\n", broker.stats().version);
  } catch (const std::exception& e) {
    fmt::print(stderr, "swarmlens-broker: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
