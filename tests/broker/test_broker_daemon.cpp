// The swarmlens-broker daemon as a process: real nats-server, real update in, model and metrics out,
// SIGTERM, restart from its snapshot without losing the published version.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "broker_service.h"
#include "nats_server.h"

using namespace swarmlens;
using swarmlens::testing::NatsServer;

namespace {

// With test_data false the broker has no test set: it publishes the nodes' own held-out accuracy.
pid_t spawn_broker(const std::string& url, const std::string& snapshot, bool test_data = true) {
  const char* exe = std::getenv("SWARMLENS_BROKER_EXE");
  REQUIRE(exe);
  const pid_t pid = fork();
  if (pid == 0) {
    if (test_data)
      execl(exe, exe, "--nats", url.c_str(), "--model-id", "daemon", "--snapshot", snapshot.c_str(),
            "--publish-interval-ms", "50", "--test-data", "/usr/share/datasets/fashion-mnist", "--test-limit", "200",
            "--stats", "0", static_cast<char*>(nullptr));
    else
      execl(exe, exe, "--nats", url.c_str(), "--model-id", "daemon", "--snapshot", snapshot.c_str(),
            "--publish-interval-ms", "50", "--eval-interval-ms", "100", "--stats", "0", static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

int stop(pid_t pid) {
  kill(pid, SIGTERM);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

struct Latest {
  std::mutex m;
  std::condition_variable cv;
  uint64_t version = 0;
  bool metrics = false;
  bool wait(std::function<bool()> pred) {
    std::unique_lock<std::mutex> l(m);
    return cv.wait_for(l, std::chrono::seconds(20), pred);
  }
};

}  // namespace

TEST_CASE("swarmlens-broker serves the model, publishes metrics, and resumes from its snapshot", "[daemon]") {
  NatsServer server;
  NatsOptions opts;
  opts.urls = {server.url()};
  const std::string snap = "daemon_test.swm";
  std::remove(snap.c_str());
  auto node = NatsLink::connect(opts);
  Latest latest;
  ModelReceiver receiver;  // snapshots and deltas
  node->subscribe(model_subject("daemon"), [&](const std::string& s, std::vector<uint8_t> p) {
    const auto model = receiver.receive(p.data(), p.size(), s);
    if (!model) return;
    std::lock_guard<std::mutex> g(latest.m);
    latest.version = model->version;
    latest.cv.notify_all();
  });
  node->subscribe(metrics_subject("daemon"), [&](const std::string&, std::vector<uint8_t> p) {
    std::lock_guard<std::mutex> g(latest.m);
    latest.metrics = std::string(p.begin(), p.end()).find("\"test_accuracy\"") != std::string::npos;
    latest.cv.notify_all();
  });
  node->flush();

  pid_t broker = spawn_broker(server.url(), snap);
  const auto model = Model::create({}, 1);
  SparseVector s;
  s.dim = uint32_t(model->num_params());
  s.index = {1, 2, 3};
  s.value = {0.1f, 0.2f, 0.3f};
  // Keep sending (sequence increasing) until the daemon is up and has published a merged model.
  uint64_t seq = 0;
  for (int i = 0; i < 200; ++i) {
    node->publish(update_subject("daemon", 1), encode_update({"daemon", model->layout_hash(), 0, 1, ++seq, 32}, s, {}));
    std::unique_lock<std::mutex> l(latest.m);
    if (latest.cv.wait_for(l, std::chrono::milliseconds(100), [&] { return latest.version >= 1 && latest.metrics; })) break;
  }
  REQUIRE(latest.wait([&] { return latest.version >= 1 && latest.metrics; }));
  CHECK(stop(broker) == 0);
  const uint64_t published = load_snapshot(snap).version;
  CHECK(published >= 1);

  // A restarted broker starts from the version it had published, not from zero: from its snapshot
  // file, and without the file from the model it kept in JetStream.
  for (const bool keep_file : {true, false}) {
    INFO("snapshot file kept: " << keep_file);
    if (!keep_file) std::remove(snap.c_str());
    const uint64_t before = receiver.latest()->version;
    broker = spawn_broker(server.url(), snap);
    // One more update: the restarted broker publishes a version after the one it resumed from.
    for (int i = 0; i < 200; ++i) {
      node->publish(update_subject("daemon", 1), encode_update({"daemon", model->layout_hash(), before, 1, ++seq, 32}, s, {}));
      std::unique_lock<std::mutex> l(latest.m);
      if (latest.cv.wait_for(l, std::chrono::milliseconds(100), [&] { return latest.version > before; })) break;
    }
    REQUIRE(latest.wait([&] { return latest.version > before; }));
    CHECK(stop(broker) == 0);
    CHECK(load_snapshot(snap).version > published);
  }
}

TEST_CASE("swarmlens-broker without test data publishes the nodes' own held-out accuracy", "[daemon][node-accuracy]") {
  NatsServer server;
  NatsOptions opts;
  opts.urls = {server.url()};
  const std::string snap = "daemon_nodes_test.swm";
  std::remove(snap.c_str());
  auto node = NatsLink::connect(opts);
  std::mutex m;
  std::condition_variable cv;
  nlohmann::json latest = nlohmann::json::object();
  node->subscribe(metrics_subject("daemon"), [&](const std::string&, std::vector<uint8_t> p) {
    auto j = nlohmann::json::parse(p.begin(), p.end(), nullptr, false);
    if (j.is_discarded() || j.value("source", "") != "broker") return;
    std::lock_guard<std::mutex> g(m);
    latest = std::move(j);
    cv.notify_all();
  });
  node->flush();
  const pid_t broker = spawn_broker(server.url(), snap, false);
  auto send = [&](const std::string& json) {
    node->publish(metrics_subject("daemon"), std::vector<uint8_t>(json.begin(), json.end()));
  };
  bool seen = false;
  for (int i = 0; i < 200 && !seen; ++i) {  // until the broker is up and has heard both nodes
    send(R"({"source":"node","node":1,"steps":40,"holdout_accuracy":0.6,"holdout_samples":100})");
    send(R"({"source":"node","node":2,"steps":40,"holdout_accuracy":0.8,"holdout_samples":300})");
    send(R"({"source":"node","node":3,"holdout_accuracy":7,"holdout_samples":300})");  // refused: out of range
    std::unique_lock<std::mutex> l(m);
    seen = cv.wait_for(l, std::chrono::milliseconds(100),
                       [&] { return latest.value("node_holdout_nodes", 0) == 2 && latest.value("node_reports_refused", 0) > 0; });
  }
  REQUIRE(seen);
  std::lock_guard<std::mutex> g(m);
  CHECK(latest["node_holdout_accuracy"].get<double>() == Approx((0.6 * 100 + 0.8 * 300) / 400));
  CHECK(latest["node_holdout_samples"] == 400);
  CHECK_FALSE(latest.contains("test_accuracy"));
  CHECK(stop(broker) == 0);
  std::remove(snap.c_str());
}
