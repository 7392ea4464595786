// swarmlens-broker: the aggregator as a daemon. Subscribes to swarmlens.<model>.update, merges the
// updates, publishes the model on swarmlens.<model>.model (snapshots and deltas, kept in JetStream)
// and, as JSON on swarmlens.<model>.metrics, its counters and the global model's test accuracy (with
// --test-data; without, the nodes' own held-out accuracy, node_accuracy.h). Ctrl-C / SIGTERM: publishes, writes the snapshot and exits 0.
#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <signal.h>

#include <atomic>

#include "camera_model.h"
#include "daemon.h"
#include "image_folder.h"
#include "nats_cli.h"
#include "version.h"

namespace {
std::atomic<bool> g_stop{false};

// --fleet-size: the fleet rule's buffer, rate and grace, where the command line did not set them.
void apply_fleet_size(uint32_t nodes, const CLI::App& app, swarmlens::AggregatorConfig& a) {
  using namespace swarmlens;
  const FleetAggregation f = fleet_aggregation(NodeTrainerConfig::kDefaultLr, nodes,
                                               node_compression_defaults().trigger.max_age_steps);
  if (!app.count("--buffer-size")) a.buffer_size = f.buffer_size;
  if (!app.count("--server-lr")) a.server_lr = f.server_lr;
  if (!app.count("--staleness-grace")) a.staleness_grace = f.staleness_grace;
}
void on_signal(int) { g_stop = true; }
}  // namespace

// --metrics-listen, --dashboard-listen, --metrics-max-nodes: the operator's endpoints.
void add_operator_options(CLI::App& app, swarmlens::OperatorConfig& ops) {
  const auto listen = [](const std::string& option) {
    return CLI::Validator([option](std::string& v) { return swarmlens::listen_address_error(v, option); }, "HOST:PORT");
  };
  app.add_option("--metrics-listen", ops.metrics_listen, "serve Prometheus metrics at http://HOST:PORT/metrics (empty: "
                 "off; 127.0.0.1:9464 keeps them on this machine)")->check(listen("--metrics-listen"));
  app.add_option("--dashboard-listen", ops.dashboard_listen, "serve the live fleet dashboard at http://HOST:PORT/ (empty: "
                 "off; the address of --metrics-listen shares its port)")->check(listen("--dashboard-listen"));
  app.add_option("--metrics-max-nodes", ops.max_nodes, "nodes with series of their own in /metrics and rows on the "
                 "dashboard, the most recently heard first (bounds Prometheus' cardinality)")
      ->check(CLI::Range(0, 100000))->capture_default_str();
}

int main(int argc, char** argv) {
  using namespace swarmlens;
  CLI::App app{"swarmlens-broker: merges compressed updates from camera nodes into the shared model"};
  DaemonConfig d;
  NatsOptions& nats = d.nats;
  BrokerConfig& cfg = d.broker;
  std::string url = nats.urls.front();
  add_nats_options(app, {&url, &nats.credentials_file, &nats.tls_ca}, "NATS server URL(s), comma-separated");
  app.add_option("--user", nats.user, "NATS user");
  app.add_option("--password", nats.password, "NATS password");
  app.add_option("--token", nats.token, "NATS token");
  app.add_option("--tls-cert", nats.tls_cert, "client certificate (mutual TLS)");
  app.add_option("--tls-key", nats.tls_key, "client key (mutual TLS)");
  app.add_option("--model-id", cfg.model_id, "model id (subjects swarmlens.<id>.*)")->capture_default_str();
  std::string model = cfg.model.name;
  int input_width = 0, input_height = 0, classes = 0, window = 1;
  std::string class_names_file;
  app.add_option("--model", model, "model registry name: cnn (grey 28x28), mobilenet (RGB, any input size) or crnn "
                 "(grey frames, a window of them)")->check(CLI::IsMember(Model::names()))->capture_default_str();
  app.add_option("--input-width", input_width, "model input width (0: 28, as the elements' default)")->check(CLI::Range(0, 1024))->capture_default_str();
  app.add_option("--input-height", input_height, "model input height (0: 28, as the elements' default)")->check(CLI::Range(0, 1024))->capture_default_str();
  app.add_option("--classes", classes, "classes the model tells apart (0: the model's own, 10; crnn 4; "
                 "or as many as --class-names or --test-data's folders name)")->check(CLI::Range(0, 1000))->capture_default_str();
  app.add_option("--class-names", class_names_file, "file with one class name per line: the class count and the "
                 "names every snapshot carries")->check(CLI::ExistingFile);
  app.add_option("--window", window, "crnn: frames per sample")->check(CLI::Range(1, 64))->capture_default_str();
  app.add_option("--seed", cfg.seed, "seed of the initial weights (as the nodes')")->capture_default_str();
  app.add_option("--snapshot", cfg.snapshot_path, "resume from and keep writing this snapshot file (and journal accepted updates in <file>.journal)");
  bool no_journal = false;
  app.add_flag("--no-journal", no_journal, "do not journal accepted updates (a crash then loses those since the last publish)");
  app.add_flag("--replicated-journal", cfg.replicated_journal, "journal accepted updates in a JetStream stream (--stream-replicas "
               "copies) and keep the server model there at each publish, instead of files: another broker resumes with "
               "every accepted update");
  app.add_option("--lease-ms", d.lease_ms, "run as one of several brokers of the model: the one holding a NATS key-value lease "
                 "(expiring this long after its last renewal) serves, the others stand by and take over when it lapses "
                 "(0 = serve at once, alone; else at least 300; needs --replicated-journal)")->check(CLI::Range(0, 600000))->capture_default_str();
  app.add_option("--instance", d.instance, "this broker's name in the lease (default: <hostname>:<pid>)");
  app.add_option("--server-lr", cfg.aggregation.server_lr, "server learning rate: the mean of buffer-size updates (gradients) is applied at this rate; buffer-size x the nodes' lr / nodes averages them")->check(CLI::PositiveNumber)->capture_default_str();
  app.add_option("--server-momentum", cfg.aggregation.server_momentum, "server momentum (dense synchronous SGD; 0 = off)")->check(CLI::Range(0.0, 0.999))->capture_default_str();
  app.add_option("--buffer-size", cfg.aggregation.buffer_size, "updates per model version (FedBuff K)")->check(CLI::Range(1, 100000))->capture_default_str();
  NormBoundConfig& norm = cfg.aggregation.norm;
  app.add_option("--clip-norm", norm.clip_norm, "fixed L2 bound per update, larger ones scaled down (0 = adaptive: --clip-factor x the median of recent accepted norms)")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--clip-factor", norm.clip_factor, "adaptive bound: clip updates to this many times the median norm of recent accepted ones (0 = off)")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--reject-factor", norm.reject_factor, "refuse updates above this many times that median (0 = off)")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--max-norm,--reject-norm", norm.max_norm, "absolute ceiling: refuse updates with an L2 norm above this (0 = none)")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--max-model-norm-factor", cfg.max_model_norm_factor, "refuse to publish a model whose parameter norm exceeds this many times the initial model's (0 = finiteness only)")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--rate-updates", cfg.rate.updates_per_s, "updates per second per node id (0 = no limit)")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--rate-bytes", cfg.rate.bytes_per_s, "update bytes per second per node id (0 = no limit)")->check(CLI::NonNegativeNumber)->capture_default_str();
  app.add_option("--max-sequence-ahead", cfg.aggregation.max_sequence_ahead_s, "refuse update sequences more than this many seconds ahead of the clock (nodes number updates in microseconds; 0 = no check)")->capture_default_str();
  app.add_option("--signing-key", cfg.signing_key_path, "Ed25519 secret key file: sign every model and ack (created with its .pub if missing; nodes verify with model-key = the .pub)");
  uint32_t fleet_size = 0;
  app.add_option("--fleet-size", fleet_size, "the fleet's size: sets --buffer-size, --server-lr and --staleness-grace as "
                 "bench fleet measured best for it with the nodes' default learning rate and trigger (those options given "
                 "explicitly win; 0 = off)")->check(CLI::Range(0u, 10000000u))->capture_default_str();
  app.add_option("--max-staleness", cfg.aggregation.max_staleness, "reject updates this many versions behind")->capture_default_str();
  app.add_option("--staleness-grace", cfg.aggregation.staleness_grace, "versions behind still weighted 1")->capture_default_str();
  app.add_option("--decode-threads", cfg.decode_threads, "threads that decode and merge updates, each node's on one of them in "
                 "order (0 = on the NATS delivery thread)")->check(CLI::Range(0, 64))->capture_default_str();
  app.add_option("--publish-interval-ms", d.publish_interval_ms, "at most one model per interval")->check(CLI::Range(10, 3600000))->capture_default_str();
  app.add_option("--downlink-density", cfg.downlink.density, "share of the parameters one published model delta may move: "
                 "the largest differences from the model the nodes hold; the rest waits in the server residual")
      ->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  // Gone with the model stream: said plainly rather than as an unknown option (in config files too).
  app.add_option("--full-every", [](const CLI::results_t&) -> bool {
       throw CLI::ValidationError("--full-every", "gone: no full snapshots go to the nodes any more; the model comes down as "
                                                  "a stream of deltas with fp16 keyframes kept in JetStream (see "
                                                  "--downlink-density, docs/wire-format.md)");
     })->group("");
  bool no_retain = false;
  app.add_option("--stream-replicas", cfg.stream_replicas, "copies of the model's JetStream streams in a NATS cluster "
                 "(3 survives a server's loss; at most the cluster's size)")->check(CLI::Range(1, 5))->capture_default_str();
  app.add_flag("--no-retain", no_retain, "do not keep the model in JetStream (for a server without -js)");
  app.add_option("--eval-interval-ms", d.eval_interval_ms, "at most one test evaluation per interval")->check(CLI::Range(10, 3600000))->capture_default_str();
  app.add_option("--stats-interval-ms", d.stats_interval_ms, "a stats line on stdout this often (0 = none)")->check(CLI::Range(0, 86400000))->capture_default_str();
  double stats_s = -1;
  app.add_option("--stats", stats_s, "the same in seconds (the spelling before --stats-interval-ms)")->check(CLI::Range(0.0, 86400.0));
  app.add_option("--test-data", d.test_data, "Fashion-MNIST folder or image folder (one sub-folder per class): evaluate the "
                 "model on it and publish its accuracy (without: the nodes' own held-out accuracy, from nodes with "
                 "swarmtrain holdout-every)");
  app.add_option("--test-limit", d.test_limit, "test images evaluated")->capture_default_str();
  add_operator_options(app, d.ops);
  app.set_config("--config", "", "INI file of these options by their long names (command-line options win)");
  app.set_version_flag("--version", version());
  app.allow_config_extras(CLI::config_extras_mode::error);  // an unknown key in --config is an error
  CLI11_PARSE(app, argc, argv);
  if (stats_s >= 0) d.stats_interval_ms = int(stats_s * 1000);
  try {
    cfg.class_names = class_names_file.empty() ? std::vector<std::string>{} : read_class_names(class_names_file);
    if (classes == 0 && !cfg.class_names.empty()) classes = int(cfg.class_names.size());
    if (classes == 0 && !d.test_data.empty() && is_image_folder(d.test_data)) classes = count_class_folders(d.test_data);
    const ModelSpec defaults;  // the elements' input-width and input-height defaults too
    cfg.model = camera_model_spec(model, input_width ? input_width : defaults.width, input_height ? input_height : defaults.height,
                                  is_temporal(model) ? window : 1, classes);
  } catch (const std::exception& e) {
    fmt::print(stderr, "swarmlens-broker: error: {}\n", e.what());
    return 2;
  }
  if (fleet_size > 0) apply_fleet_size(fleet_size, app, cfg.aggregation);
  if (d.lease_ms > 0 && d.lease_ms < 300) {
    fmt::print(stderr, "swarmlens-broker: error: --lease-ms {}: at least 300 (renewed every third of it over the network)\n",
               d.lease_ms);
    return 2;
  }
  cfg.journal = !no_journal;
  cfg.retain = !no_retain;
  nats.urls = CLI::detail::split(url, ',');
  nats.name = "swarmlens-broker";

  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);
  try {
    BrokerDaemon(d).run(g_stop);
  } catch (const std::exception& e) {
    fmt::print(stderr, "swarmlens-broker: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
