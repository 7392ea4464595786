#include "demo.h"

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <gst/gst.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "command.h"
#include "aggregator.h"
#include "dataset.h"
#include "launch.h"
#include "launch_desc.h"
#include "nats_cli.h"
#include "model_channel.h"
#include "nats_link.h"
#include "browser.h"
#include "process.h"
#include "snapshot_sender.h"
#include "properties.h"
#include "signing.h"
#include "snapshot.h"

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace swarmlens {

namespace {

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::string human_bytes(double b) {
  if (b >= 1e9) return fmt::format("{:.2f} GB", b / 1e9);
  if (b >= 1e6) return fmt::format("{:.2f} MB", b / 1e6);
  if (b >= 1e3) return fmt::format("{:.1f} kB", b / 1e3);
  return fmt::format("{:.0f} B", b);
}

// The node pipeline as a gst-launch description. Frames are played live at `fps`; swarmtrain samples
// them when it is busy, as it would a camera.
std::string node_pipeline(const NodeOptions& o, const std::string& data) {
  const FederationSettings& f = o.fed;
  const bool overlay = !o.overlay_png.empty() || o.view || o.snapshot_interval > 0;
  const LaunchElement train = LaunchElement("swarmtrain name=train")
                                  .set(props::kModelId, f.model_id)
                                  .set(props::kNodeId, o.node_id)
                                  .set(props::kNatsUrl, o.nats)
                                  .set_if(props::kModelKey, o.model_key)
                                  .set(props::kLearningRate, own_step_lr(f.local_lr, f.lr))
                                  .set(props::kMomentum, f.momentum)
                                  .set(props::kDensity, f.dense ? 1.0 : f.density)
                                  .set_if(props::kValueCoding, f.dense ? std::string("fp16") : std::string())
                                  .set(props::kTriggerAge, f.dense ? uint64_t(1) : f.trigger_age)
                                  .set(props::kWarmupSteps, f.dense ? uint64_t(0) : f.warmup_steps)
                                  .set(props::kBatchSize, f.batch)
                                  .set(props::kStatsInterval, o.stats_interval_ms);
  std::string d = fmt::format("swarmsrc location={} shard-index={} shard-count={} {}loop=true is-live=true fps-n={} {} ! {}",
                              quoted(data), o.node_id, o.nodes, f.alpha > 0 ? fmt::format("alpha={} ", f.alpha) : "",
                              o.fps, overlay ? "width=280 height=280 format=BGRx" : "", train.str());
  if (!overlay) return d + " ! fakesink sync=false";
  // Classify with the global model from the aggregator, a couple of frames a second.
  d += fmt::format(
      " ! tee name=t t. ! queue ! fakesink sync=false "
      "t. ! queue leaky=downstream max-size-buffers=4 ! videorate drop-only=true ! video/x-raw,framerate=2/1 ! "
      "{} ! {} ! videoconvert ! tee name=o",
      LaunchElement("swarmclassify").set(props::kModelId, f.model_id).set(props::kNatsUrl, o.nats)
          .set_if(props::kModelKey, o.model_key).str(),
      LaunchElement("swarmoverlay").set(props::kModelId, f.model_id).str());
  if (!o.overlay_png.empty()) d += fmt::format(" o. ! queue ! pngenc ! multifilesink location=\"{}\"", o.overlay_png);
  if (o.view) d += " o. ! queue ! videoconvert ! autovideosink sync=false";
  if (o.snapshot_interval > 0) d += " o. ! " + SnapshotSender::branch();
  return d;
}

}  // namespace

int run_node(const NodeOptions& o) {
  const std::string data = o.data.empty() ? default_fashion_mnist_dir() : o.data;
  if (o.snapshot_interval <= 0)
    return run_launch(node_pipeline(o, data), fmt::format("swarmlens node {}", o.node_id), o.duration);
  NatsOptions nats;
  nats.urls = CLI::detail::split(o.nats, ',');
  nats.name = "swarmlens-node-snapshots";
  SnapshotSender snapshots(nats, o.fed.model_id, o.snapshot_interval);
  snapshots.set_node(o.node_id);
  LaunchHooks hooks;
  hooks.on_pipeline = [&](void* pipeline) { snapshots.attach(pipeline); };
  return run_launch(node_pipeline(o, data), fmt::format("swarmlens node {}", o.node_id), o.duration, hooks);
}

namespace {

// What the demo hears on the metrics subject.
struct Sample {
  double seconds = 0;
  uint64_t version = 0;
  double accuracy = -1;
  uint64_t bytes_in = 0, updates_in = 0;
};

class MetricsWatch {
 public:
  MetricsWatch(NatsLink& link, const std::string& model_id, Clock::time_point t0) : t0_(t0) {
    link.subscribe(metrics_subject(model_id), [this](const std::string&, std::vector<uint8_t> p) { on(p); });
    link.flush();
  }
  // Broker messages heard so far.
  uint64_t broker_messages() const {
    std::lock_guard<std::mutex> g(m_);
    return broker_messages_;
  }
  // Waits for `count` broker messages after now; false on timeout or stop.
  bool wait_broker(int count, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> l(m_);
    const uint64_t want = broker_messages_ + uint64_t(count);
    return cv_.wait_for(l, timeout, [&] { return broker_messages_ >= want; });
  }
  std::vector<Sample> samples() const {
    std::lock_guard<std::mutex> g(m_);
    return samples_;
  }
  json broker() const {
    std::lock_guard<std::mutex> g(m_);
    return broker_;
  }
  std::map<uint32_t, json> nodes() const {
    std::lock_guard<std::mutex> g(m_);
    return nodes_;
  }

 private:
  void on(const std::vector<uint8_t>& p) {
    const json m = json::parse(p.begin(), p.end(), nullptr, false);
    if (m.is_discarded() || !m.is_object()) return;
    std::lock_guard<std::mutex> g(m_);
    if (m.value("source", "") == "node" && m.contains("node")) {
      nodes_[m["node"].get<uint32_t>()] = m;
    } else if (m.value("source", "") == "broker") {
      broker_ = m;
      ++broker_messages_;
      if (m.contains("test_accuracy"))
        samples_.push_back({seconds_since(t0_), m.value("model_version", uint64_t(0)), m.value("test_accuracy", -1.0),
                            m.value("bytes_in", uint64_t(0)), m.value("updates_in", uint64_t(0))});
    }
    cv_.notify_all();
  }
  Clock::time_point t0_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  std::vector<Sample> samples_;
  json broker_ = json::object();
  std::map<uint32_t, json> nodes_;
  uint64_t broker_messages_ = 0;
};

struct RunResult {
  std::string method;
  double seconds = 0;
  std::vector<Sample> samples;
  json broker = json::object();
  std::map<uint32_t, json> nodes;
  bool interrupted = false;
  bool dashboard_png = false;  // this run took report/dashboard.png
  uint64_t sum(const char* field) const {
    uint64_t s = 0;
    for (const auto& [id, n] : nodes) s += n.value(field, uint64_t(0));
    return s;
  }
};

std::string log_tail(const std::string& path) {
  std::ifstream f(path);
  std::string line, out;
  std::vector<std::string> lines;
  while (std::getline(f, line)) lines.push_back(line);
  for (size_t i = lines.size() > 5 ? lines.size() - 5 : 0; i < lines.size(); ++i) out += "    " + lines[i] + "\n";
  return out;
}

RunResult run_federation(const DemoOptions& o, FederationSettings fed, const std::string& method, const std::string& url,
                         const std::string& data) {
  RunResult r;
  r.method = method;
  fed.model_id = o.fed.model_id + "-" + method;
  const std::string logs = o.report + "/logs";
  auto link = NatsLink::connect([&] {
    NatsOptions n;
    n.urls = {url};
    n.name = "swarmlens-demo";
    return n;
  }());
  const auto t0 = Clock::now();
  MetricsWatch watch(*link, fed.model_id, t0);

  const std::string broker_log = logs + "/broker-" + method + ".log";
  // A key pair of this run's own: the broker signs every model and ack, the nodes refuse what it did
  // not sign (a forged model on the open loopback server is not adopted).
  const std::string key_path = logs + "/broker-" + method + ".key";
  std::remove(key_path.c_str());
  const SigningKey key = generate_signing_key();
  save_signing_key(key_path, key);
  const std::string model_key = public_key_hex(key.public_key);
  std::vector<std::string> broker_argv{
      find_sibling("swarmlens-broker", "broker"), "--nats", url, "--model-id", fed.model_id, "--signing-key", key_path,
      "--server-lr", fmt::format("{}", averaging_server_lr(fed.lr, o.nodes)), "--buffer-size", "1", "--staleness-grace",
      std::to_string(4 * o.nodes), "--max-staleness", "1000", "--publish-interval-ms", "200", "--eval-interval-ms", "1000",
      "--test-data", data, "--test-limit", "1000", "--stats", "5"};
  std::string dashboard;  // its URL, when on
  if (o.dashboard) {
    const std::string at = "127.0.0.1:" + std::to_string(free_loopback_port());
    broker_argv.insert(broker_argv.end(), {"--dashboard-listen", at, "--metrics-listen", at});
    dashboard = "http://" + at + "/";
  }
  Process broker(broker_argv, broker_log);
  // The broker's first metrics message says it is up; one that exits is noticed within 100 ms.
  while (watch.broker_messages() == 0) {
    if (!broker.running())
      throw std::runtime_error(fmt::format("swarmlens-broker exited at start (status {}); its log ({}):\n{}",
                                           broker.exit_status(), broker_log, log_tail(broker_log)));
    if (seconds_since(t0) > 30)
      throw std::runtime_error("swarmlens-broker did not come up in 30 s; its log (" + broker_log + "):\n" + log_tail(broker_log));
    watch.wait_broker(1, std::chrono::milliseconds(100));
  }

  std::vector<std::unique_ptr<Process>> nodes;
  for (uint32_t i = 0; i < o.nodes; ++i) {
    std::vector<std::string> argv = {self_dir() + "/swarmlens", "node", "--nats", url, "--data", data,
                                     "--node-id", std::to_string(i), "--nodes", std::to_string(o.nodes),
                                     "--fps", std::to_string(o.fps), "--model-id", fed.model_id,
                                     "--lr", fmt::format("{}", fed.lr), "--local-lr", fmt::format("{}", fed.local_lr),
                                     "--momentum", fmt::format("{}", fed.momentum),
                                     "--density", fmt::format("{}", fed.density), "--trigger-age", std::to_string(fed.trigger_age),
                                     "--warmup-steps", std::to_string(fed.warmup_steps), "--batch", std::to_string(fed.batch),
                                     "--model-key", model_key};
    if (fed.dense) argv.push_back("--dense");
    if (i == 0 && method == "twostep") {
      argv.insert(argv.end(), {"--overlay-png", o.report + "/overlay.png"});
      if (o.dashboard) argv.insert(argv.end(), {"--snapshot-interval", "2"});  // its overlay on the dashboard
      if (o.view) argv.push_back("--view");
    }
    nodes.push_back(std::make_unique<Process>(argv, logs + "/node-" + std::to_string(i) + "-" + method + ".log"));
  }

  if (!o.quiet) fmt::print("{}: {} nodes on {}, for {:.0f} s\n", method, o.nodes, url, o.duration);
  if (!dashboard.empty())
    fmt::print("{}: live dashboard on {} (Prometheus metrics on {}metrics)\n", method, dashboard, dashboard);
  std::fflush(stdout);
  auto last_line = Clock::now();
  while (seconds_since(t0) < o.duration && !stop_requested()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    for (auto& n : nodes)
      if (!n->running() && n->exit_status() != 0)
        throw std::runtime_error(fmt::format("a node exited with status {}; see {}/", n->exit_status(), logs));
    if (!broker.running())
      throw std::runtime_error("swarmlens-broker exited; its log (" + broker_log + "):\n" + log_tail(broker_log));
    if (!o.quiet && std::chrono::duration<double>(Clock::now() - last_line).count() >= 2.0) {
      last_line = Clock::now();
      const json b = watch.broker();
      std::string steps;
      uint64_t up = 0;
      for (const auto& [id, n] : watch.nodes()) {
        steps += fmt::format(" {}", n.value("steps", uint64_t(0)));
        up += n.value("bytes_sent", uint64_t(0));
      }
      const double acc = b.value("test_accuracy", -1.0);
      fmt::print("[{:4.0f}s] model v{:<5} test accuracy {}  uplink {:>9}  updates {:<6} steps per node:{}\n",
                 seconds_since(t0), b.value("model_version", uint64_t(0)), acc < 0 ? "  -  " : fmt::format("{:.3f}", acc),
                 human_bytes(double(up)), b.value("updates_in", uint64_t(0)), steps);
      std::fflush(stdout);
    }
  }
  r.interrupted = stop_requested();
  if (!dashboard.empty() && !r.interrupted && !fs::exists(o.report + "/dashboard.png")) {
    std::string why;  // the dashboard at the end of the run, the nodes still training
    if (screenshot(dashboard, o.report + "/dashboard.png", &why))
      r.dashboard_png = true;
    else
      fmt::print(stderr, "swarmlens demo: no dashboard.png: {}\n", why);
  }
  // Stop the nodes first (each sends what it still holds), let the broker merge and evaluate the
  // last updates, then stop it.
  for (auto& n : nodes) n->stop(SIGTERM, std::chrono::seconds(20));
  r.seconds = seconds_since(t0);
  watch.wait_broker(2, std::chrono::seconds(10));
  broker.stop(SIGTERM, std::chrono::seconds(10));
  r.samples = watch.samples();
  r.broker = watch.broker();
  r.nodes = watch.nodes();
  return r;
}

void write_report(const DemoOptions& o, const std::vector<RunResult>& runs) {
  {
    std::ofstream csv(o.report + "/accuracy.csv");
    csv << "method,seconds,model_version,test_accuracy,uplink_bytes,updates\n";
    for (const auto& r : runs)
      for (const auto& s : r.samples)
        csv << fmt::format("{},{:.2f},{},{:.4f},{},{}\n", r.method, s.seconds, s.version, s.accuracy, s.bytes_in, s.updates_in);
  }
  {
    std::ofstream gp(o.report + "/accuracy.gp");
    gp << "# gnuplot accuracy.gp (run in the report folder): accuracy.png from accuracy.csv\n"
          "set terminal pngcairo size 1200,480 font ',11'\n"
          "set output 'accuracy.png'\n"
          "set datafile separator ','\n"
          "set multiplot layout 1,2 title 'Swarmlens demo: global test accuracy'\n"
          "set grid; set yrange [0:1]; set key bottom right\n"
          "set xlabel 'seconds'; set ylabel 'test accuracy'\n";
    std::string plot_t = "plot ", plot_b = "plot ";
    for (size_t i = 0; i < runs.size(); ++i) {
      const std::string sel = fmt::format("(strcol(1) eq '{}' ? $4 : NaN)", runs[i].method);
      plot_t += fmt::format("{}'accuracy.csv' every ::1 using 2:{} with linespoints title '{}'", i ? ", " : "", sel, runs[i].method);
      plot_b += fmt::format("{}'accuracy.csv' every ::1 using ($5/1e6):{} with linespoints title '{}'", i ? ", " : "", sel, runs[i].method);
    }
    gp << plot_t << "\n"
       << "set xlabel 'uplink MB received by the aggregator'; set logscale x\n"
       << plot_b << "\n"
       << "unset multiplot\n";
  }
  // A plot of nothing is no plot: without a single evaluation there is no accuracy.png.
  bool evaluated = false;
  for (const auto& r : runs) evaluated = evaluated || !r.samples.empty();
  bool plotted = false;
  std::remove((o.report + "/accuracy.png").c_str());  // an older run's is not this one's
  if (evaluated) {
    const std::string cmd = "cd '" + o.report + "' && gnuplot accuracy.gp 2>gnuplot.log";
    plotted = std::system(cmd.c_str()) == 0;
    if (!plotted) fmt::print(stderr, "swarmlens demo: gnuplot failed (see {}/gnuplot.log); the CSV is there\n", o.report);
  }

  json summary = {{"nodes", o.nodes}, {"seconds_per_run", o.duration}, {"fps_per_node", o.fps}, {"alpha", o.fed.alpha},
                  {"runs", json::array()}};
  std::string text = fmt::format("Swarmlens demo: {} camera nodes on {} Fashion-MNIST shards, {:.0f} s per run\n\n", o.nodes,
                                 o.fed.alpha > 0 ? fmt::format("non-IID (Dirichlet {})", o.fed.alpha) : "IID", o.duration);
  for (const auto& r : runs) {
    const uint64_t sent = r.sum("bytes_sent"), dense = r.sum("dense_bytes"), steps = r.sum("steps");
    const uint64_t down = r.sum("bytes_in");  // the model stream and what catch-ups read, all nodes
    const double acc = r.samples.empty() ? -1.0 : r.samples.back().accuracy;
    const double ratio = sent ? double(dense) / double(sent) : 0.0;
    const uint64_t received = r.broker.value("bytes_in", uint64_t(0));
    json j = {{"method", r.method}, {"seconds", r.seconds}, {"test_accuracy", acc},
              {"model_version", r.broker.value("model_version", uint64_t(0))}, {"steps", steps},
              {"uplink_bytes_sent", sent}, {"uplink_bytes_received", received},
              {"updates", r.broker.value("updates_in", uint64_t(0))}, {"rejected", r.broker.value("rejected", json::object())},
              {"dense_equivalent_bytes", dense}, {"ratio_vs_dense", ratio},
              {"uplink_bytes_per_step", steps ? double(sent) / double(steps) : 0.0},
              {"downlink_bytes_received", down}, {"downlink_bytes_per_node", double(down) / double(std::max(1u, o.nodes))},
              {"interrupted", r.interrupted}};
    if (acc < 0) j["test_accuracy"] = nullptr;  // stopped before the first evaluation
    text += fmt::format("{:8} {} at model v{}; {} steps; uplink {} in {} updates ({:.1f}x less than "
                        "dense fp32 gradients every step); downlink {} per node{}\n",
                        r.method, acc < 0 ? std::string("no evaluation yet") : fmt::format("test accuracy {:.3f}", acc),
                        j["model_version"].get<uint64_t>(), steps, human_bytes(double(sent)),
                        j["updates"].get<uint64_t>(), ratio, human_bytes(double(down) / double(std::max(1u, o.nodes))),
                        r.interrupted ? " [interrupted]" : "");
    summary["runs"].push_back(j);
  }
  if (runs.size() == 2 && runs[0].sum("steps") && runs[1].sum("steps") && runs[0].sum("bytes_sent")) {
    const double a = double(runs[0].sum("bytes_sent")) / double(runs[0].sum("steps"));
    const double b = double(runs[1].sum("bytes_sent")) / double(runs[1].sum("steps"));
    summary["measured_ratio_vs_dense_run"] = b / a;
    text += fmt::format("\nPer training step, the {} run sent {:.1f}x fewer uplink bytes than the {} run.\n", runs[0].method,
                        b / a, runs[1].method);
  }
  // Only the files this run wrote.
  std::string files = "accuracy.csv";
  files += plotted ? ", accuracy.png (gnuplot accuracy.gp)" : ", accuracy.gp (no plot: nothing evaluated)";
  if (fs::exists(o.report + "/overlay.png")) files += ", overlay.png (node 0)";
  for (const auto& r : runs)
    if (r.dashboard_png) files += ", dashboard.png (the live dashboard at the end of the " + r.method + " run)";
  text += "\nFiles: " + files + ", summary.txt, summary.json, logs/\n";
  std::ofstream(o.report + "/summary.json") << summary.dump(2) << "\n";
  std::ofstream(o.report + "/summary.txt") << text;
  if (!o.quiet) fmt::print("\n{}", text);
}

}  // namespace

int run_demo(const DemoOptions& o) {
  catch_stop_signals();
  const std::string data = o.data.empty() ? default_fashion_mnist_dir() : o.data;
  // The report folder must take files now, not after the run.
  std::error_code ec;
  fs::create_directories(o.report + "/logs", ec);
  try {
    check_writable(o.report + "/summary.json", "the report in");
    check_writable(o.report + "/logs/nats-server.log", "the logs in");
  } catch (const std::exception& e) {
    fmt::print(stderr, "swarmlens demo: {}\n", e.what());
    return 1;
  }
  fs::remove(o.report + "/overlay.png", ec);  // an older run's is not this one's
  fs::remove(o.report + "/dashboard.png", ec);
  std::unique_ptr<LocalNatsServer> server;  // embedded unless --nats: our own, its store removed after
  std::string url = o.nats;
  if (url.empty()) {
    server = std::make_unique<LocalNatsServer>(o.report + "/logs/nats-server.log");
    url = server->url();
  }
  std::vector<RunResult> runs;
  int rc = 0;
  try {
    runs.push_back(run_federation(o, o.fed, o.fed.dense ? "dense" : "twostep", url, data));
    if (o.baseline && !o.fed.dense && !stop_requested()) {
      FederationSettings dense = o.fed;
      dense.dense = true;
      runs.push_back(run_federation(o, dense, "dense", url, data));
    }
  } catch (const std::exception& e) {
    fmt::print(stderr, "swarmlens demo: {}\n", e.what());
    rc = 1;
  }
  server.reset();
  if (!runs.empty()) write_report(o, runs);
  if (stop_requested() && rc == 0) fmt::print("swarmlens demo: interrupted; every process stopped, report written\n");
  return rc;
}

namespace {

void add_federation_options(CLI::App* app, swarmlens::FederationSettings& f) {
  app->add_option("--model-id", f.model_id, "model id (NATS subjects swarmlens.<id>.*)")->capture_default_str();
  app->add_option("--learning-rate,--lr", f.lr, "learning rate of one node's update")->check(CLI::PositiveNumber)->capture_default_str();
  app->add_option("--local-learning-rate,--local-lr", f.local_lr, "rate of a node's step on its own view (0 = --lr; the broker applies lr / nodes)")->check(CLI::NonNegativeNumber)->capture_default_str();
  app->add_option("--momentum", f.momentum, "momentum, corrected locally")->check(CLI::Range(0.0, 0.999))->capture_default_str();
  app->add_option("--density", f.density, "share of gradient entries sent after warm-up")->check(CLI::Range(1e-6, 1.0))->capture_default_str();
  app->add_option("--trigger-age", f.trigger_age, "release the pending update after this many steps")->check(CLI::Range(1, 1000000))->capture_default_str();
  app->add_option("--warmup-steps", f.warmup_steps, "steps per sparsity warm-up stage")->capture_default_str();
  app->add_option("--alpha", f.alpha, "non-IID shards: each node's classes drawn from Dirichlet(alpha) (small = "
                  "few classes per node, as cameras that each see their own scene); 0 = IID")
      ->check(CLI::Range(0.0, 1000.0))->capture_default_str();
  app->add_option("--batch-size,--batch", f.batch, "frames per training step")->check(CLI::Range(1, 4096))->capture_default_str();
  app->add_flag("--dense", f.dense, "no compression: every gradient entry every step (the baseline)");
}

}  // namespace

void add_demo_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<DemoOptions>();
  auto* c = parent.add_subcommand(
      "demo", "The federation on this machine: nats-server (JetStream), swarmlens-broker and N camera-node "
              "pipelines on Fashion-MNIST shards; live progress, then a report folder");
  c->add_option("--nodes", o->nodes, "camera nodes, each its own process and pipeline")->check(CLI::Range(1, 64))->capture_default_str();
  c->add_option("--duration", o->duration, "seconds per run")->check(CLI::Range(3.0, 86400.0))->capture_default_str();
  c->add_option("--report", o->report, "report folder (accuracy.csv/png, overlay.png, summary)")->capture_default_str();
  add_nats_options(*c, {&o->nats}, "use this NATS server (with JetStream) instead of starting one");
  c->add_option("--data", o->data, "Fashion-MNIST folder (default: the Debian package's)");
  c->add_option("--fps", o->fps, "frames per second each node plays")->check(CLI::Range(1, 10000))->capture_default_str();
  c->add_flag("--baseline", o->baseline, "then run dense (no compression) for as long, and compare");
  c->add_flag("--view", o->view, "show node 0's overlay in a window (needs a display)");
  c->add_flag("--quiet", o->quiet, "no live progress lines");
  c->add_flag("--dashboard,!--no-dashboard", o->dashboard, fmt::format("the broker's live dashboard on a free loopback "
              "port (its URL printed), and a screenshot of it in the report (dashboard.png, headless Chromium); {} by "
              "default", o->dashboard ? "on" : "off"));
  add_federation_options(c, o->fed);

  commands.add(c, [o] {
    if (o->view && !std::getenv("DISPLAY") && !std::getenv("WAYLAND_DISPLAY")) {
      fmt::print(stderr, "swarmlens demo: --view needs a display (DISPLAY or WAYLAND_DISPLAY); running without the window\n");
      o->view = false;
    }
    return run_demo(*o);
  });
}

void add_node_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<NodeOptions>();
  auto* c = parent.add_subcommand("node", "One camera node: plays its Fashion-MNIST shard as live video into "
                                          "swarmtrain, federated over NATS (what the demo starts N of)");
  add_nats_options(*c, {&o->nats, nullptr, nullptr, true, &o->model_key}, "NATS server URL(s)");
  c->add_option("--data", o->data, "Fashion-MNIST folder");
  c->add_option("--node-id", o->node_id, "this node's id and shard index")->capture_default_str();
  c->add_option("--nodes", o->nodes, "number of shards")->check(CLI::Range(1, 100000))->capture_default_str();
  c->add_option("--fps", o->fps, "frames per second played")->check(CLI::Range(1, 10000))->capture_default_str();
  c->add_option("--duration", o->duration, "seconds (0 = until Ctrl-C / SIGTERM)")->capture_default_str();
  c->add_option("--stats-interval-ms", o->stats_interval_ms, "a stats line and the metrics JSON this often")->check(CLI::Range(100, 3600000))->capture_default_str();
  c->add_option("--overlay-png", o->overlay_png, "also classify and draw the overlay; a PNG of it here each second");
  c->add_flag("--view", o->view, "also show the overlay in a window");
  c->add_option("--snapshot-interval", o->snapshot_interval, "also send the overlay to the broker's dashboard as a small "
                "JPEG every this many seconds (0: off, else at least 1)")->check(SnapshotSender::interval_error)->capture_default_str();
  add_federation_options(c, o->fed);

  commands.add(c, [o] {
    if (o->node_id >= o->nodes) throw std::invalid_argument("--node-id must be below --nodes");
    return run_node(*o);
  });
}

}  // namespace swarmlens
