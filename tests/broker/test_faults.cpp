// Faults, each asserting that nothing accepted is lost and nothing is merged twice:
//  - the broker's journal on its own (torn tail, compaction) and across a broker that stops
//    without publishing;
//  - kill -9 of the swarmlens-broker process mid-training, then a restart;
//  - a nats-server restart under the broker and the nodes;
//  - a training node cut off for 60 s by the impairment proxy (bench/field/impair.py).
// The counting nodes send synthetic updates whose values are exact in fp16 and whose sums are exact
// in fp32, with the broker set to apply each one at weight 1 (K = 1, server lr 1, no staleness
// discount): the final model must then equal the initial one minus the sum of every update sent,
// and one update lost or merged twice moves a weight by at least 1/256.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "broker_service.h"
#include "dataset.h"
#include "nats_server.h"
#include "temp_dir.h"
#include "node_link.h"
#include "node_trainer.h"
#include "process.h"
#include "reliable_uplink.h"
#include "served_broker.h"
#include "update_journal.h"
#include "stream_journal.h"
#include "model_channel.h"

using namespace swarmlens;
using swarmlens::testing::TempDir;
using namespace std::chrono_literals;
using swarmlens::testing::NatsServer;
namespace fs = std::filesystem;

namespace {

// Update k of node n: 16 entries spread over the model, values in {-3..3}/256 without 0.
SparseVector synthetic(uint32_t dim, uint32_t node, uint64_t k) {
  SparseVector v;
  v.dim = dim;
  for (uint32_t j = 0; j < 16; ++j) v.index.push_back((node * 7919u + uint32_t(k) * 104729u + j * (dim / 16)) % dim);
  std::sort(v.index.begin(), v.index.end());
  v.index.erase(std::unique(v.index.begin(), v.index.end()), v.index.end());
  for (size_t j = 0; j < v.index.size(); ++j) {
    const int q = int((node + k + j) % 6) - 3;
    v.value.push_back(float(q >= 0 ? q + 1 : q) / 256.0f);
  }
  return v;
}

std::vector<uint8_t> encode_synthetic(const std::string& model_id, uint64_t hash, uint32_t dim, uint32_t node,
                                      uint64_t k, uint64_t base) {
  UpdateHeader h;
  h.model_id = model_id;
  h.layout_hash = hash;
  h.base_version = base;
  h.node_id = node;
  h.sequence = k;
  h.samples = 1;
  return encode_update(h, synthetic(dim, node, k), CodecConfig{});
}

// A counting node: sends updates 1..count through its acknowledged uplink, one taken at a time;
// an update the uplink refuses stays with the node (pending) and is offered again.
class CountingNode {
 public:
  CountingNode(const NatsOptions& opts, const std::string& model_id, uint32_t node, uint64_t count)
      : model_id_(model_id), node_(node), count_(count),
        link_(opts, model_id, [](std::shared_ptr<const Snapshot>) {}, {}, /*follow=*/false),
        uplink_(link_, node, UplinkOptions{1000, false, {}}) {
    for (int i = 0; i < 300 && !link_.latest(); ++i) {  // the broker's first model, kept in JetStream
      std::this_thread::sleep_for(100ms);
      link_.pull_model();
    }
    REQUIRE(link_.latest());
    initial_ = link_.latest();
    thread_ = std::thread([this] {
      const uint32_t dim = uint32_t(initial_->params.size());
      for (uint64_t k = 1; k <= count_ && !quit_; ++k) {
        const auto msg = encode_synthetic(model_id_, initial_->layout_hash, dim, node_, k, 0);
        while (!quit_ && !uplink_.offer(msg)) std::this_thread::sleep_for(5ms);
        std::this_thread::sleep_for(10ms);
      }
    });
  }
  ~CountingNode() {
    quit_ = true;
    thread_.join();
  }
  bool finish(std::chrono::seconds timeout) {
    const auto end = std::chrono::steady_clock::now() + timeout;
    while (uplink_.stats().offered < count_ && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(20ms);
    return uplink_.stats().offered == count_ && uplink_.wait_idle(std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now()));
  }
  UplinkStats stats() const { return uplink_.stats(); }
  NodeLinkStats link_stats() const { return link_.stats(); }
  const Snapshot& initial() const { return *initial_; }
  uint32_t id() const { return node_; }
  uint64_t count() const { return count_; }

 private:
  std::string model_id_;
  uint32_t node_;
  uint64_t count_;
  NodeLink link_;
  ReliableUplink uplink_;
  std::shared_ptr<const Snapshot> initial_;
  std::atomic<bool> quit_{false};
  std::thread thread_;
};

// The model every node's updates 1..count lead to, applied at weight 1.
std::vector<double> expected_model(const Snapshot& initial, uint32_t nodes, uint64_t count) {
  std::vector<double> w(initial.params.begin(), initial.params.end());
  for (uint32_t n = 0; n < nodes; ++n)
    for (uint64_t k = 1; k <= count; ++k) {
      const SparseVector u = synthetic(uint32_t(w.size()), n, k);
      for (size_t j = 0; j < u.nnz(); ++j) w[u.index[j]] -= u.value[j];
    }
  return w;
}

double max_abs_diff(const std::vector<float>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(double(a[i]) - b[i]));
  return m;
}

std::vector<std::string> broker_argv(const std::string& url, const std::string& model_id, const std::string& snapshot) {
  const char* exe = std::getenv("SWARMLENS_BROKER_EXE");
  REQUIRE(exe);
  // Every update at weight 1 (no staleness weight, no norm clipping: the model is checked against the
  // exact sum), one model version each; a publish (and snapshot) only at start and at exit, so what is
  // accepted in between is in the journal alone.
  return {exe, "--nats", url, "--model-id", model_id, "--snapshot", snapshot, "--server-lr", "1", "--buffer-size", "1",
          "--staleness-grace", "1000000", "--max-staleness", "1000000", "--clip-factor", "0", "--publish-interval-ms",
          "600000", "--stats", "0"};
}

std::string read_text(const std::string& path) {
  std::ifstream f(path);
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

uint64_t total(const std::vector<std::unique_ptr<CountingNode>>& nodes, uint64_t UplinkStats::*field) {
  uint64_t n = 0;
  for (auto& c : nodes) n += c->stats().*field;
  return n;
}

void wait_until(const std::function<bool()>& done, std::chrono::seconds timeout) {
  const auto end = std::chrono::steady_clock::now() + timeout;
  while (!done() && std::chrono::steady_clock::now() < end) std::this_thread::sleep_for(20ms);
}

// After every node finished: the broker (stopped with SIGTERM, so it publishes and writes its
// snapshot) holds each node's updates 1..count exactly once.
void check_nothing_lost(const std::vector<std::unique_ptr<CountingNode>>& nodes, const Snapshot& final_model) {
  const uint64_t count = nodes.front()->count();
  for (auto& n : nodes) {
    const UplinkStats s = n->stats();
    INFO("node " << n->id());
    CHECK(s.offered == count);
    CHECK(s.delivered == count);
    CHECK(s.refused == 0);
    CHECK_FALSE(s.in_flight);
  }
  for (auto& n : nodes) CHECK(final_model.applied.at(n->id()) == count);
  CHECK(final_model.version == nodes.size() * count);  // one version per update: none twice
  CHECK(max_abs_diff(final_model.params, expected_model(nodes.front()->initial(), uint32_t(nodes.size()), count)) < 1e-4);
}
void check_nothing_lost(const std::vector<std::unique_ptr<CountingNode>>& nodes, const std::string& snapshot) {
  check_nothing_lost(nodes, load_snapshot(snapshot));
}

}  // namespace

TEST_CASE("the journal keeps appended updates, drops a torn tail, and compacts", "[journal]") {
  TempDir dir;
  const std::string path = dir.path + "/j";
  {
    UpdateJournal j(path);
    CHECK(j.recovered().empty());
    for (uint64_t k = 1; k <= 3; ++k) j.append({7, k, encode_synthetic("m", 1, 1000, 7, k, 0)});
    j.append({8, 1, encode_synthetic("m", 1, 1000, 8, 1, 0)});
  }
  {
    std::ofstream f(path, std::ios::app | std::ios::binary);
    f << "\x40\x00\x00\x00garbage";  // a record cut short by a crash mid-append
  }
  {
    UpdateJournal j(path);
    REQUIRE(j.recovered().size() == 4);
    CHECK(j.dropped_tail());
    CHECK(j.recovered()[2].node_id == 7);
    CHECK(j.recovered()[2].sequence == 3);
    CHECK(j.recovered()[3].node_id == 8);
    j.compact({{7, 2}});  // node 7's first two are in the snapshot now
    CHECK(j.size() == 2);
  }
  UpdateJournal j(path);
  REQUIRE(j.recovered().size() == 2);
  CHECK_FALSE(j.dropped_tail());
  CHECK(j.recovered()[0].sequence == 3);
  CHECK(j.recovered()[1].node_id == 8);
}

TEST_CASE("a broker that stops without publishing merges its journal again at start", "[journal]") {
  TempDir dir;
  BrokerConfig bc;
  bc.model_id = "jr";
  bc.snapshot_path = dir.path + "/model.snap";
  bc.aggregation.staleness_grace = 1000000;
  bc.aggregation.max_staleness = 1000000;
  // Exact sums: the adaptive clip's window of recent norms is not journalled, so a replay may clip
  // differently from the first merge (docs/security.md).
  bc.aggregation.norm.clip_factor = 0;
  std::vector<float> expected;
  uint64_t hash = 0;
  uint32_t dim = 0;
  {
    BrokerService b(bc, nullptr);
    const Snapshot s0 = b.snapshot();
    hash = s0.layout_hash;
    dim = uint32_t(s0.params.size());
    for (uint64_t k = 1; k <= 4; ++k) REQUIRE(b.submit(encode_synthetic("jr", hash, dim, 1, k, 0)).empty());
    b.publish_if_changed();  // the snapshot holds 1..4
    for (uint64_t k = 5; k <= 9; ++k) REQUIRE(b.submit(encode_synthetic("jr", hash, dim, 1, k, 0)).empty());
    CHECK(b.submit(encode_synthetic("jr", hash, dim, 1, 9, 0)) == "replayed");  // a resend is not merged twice
    expected = b.snapshot().params;
    // destroyed here without a publish, as a killed broker would be: 5..9 only in the journal
  }
  BrokerService b(bc, nullptr);
  const BrokerStats st = b.stats();
  CHECK(st.resumed_from == "snapshot file");
  CHECK(st.journal_replayed == 5);
  CHECK(st.journal_skipped == 0);
  CHECK(st.version == 9);
  CHECK(b.snapshot().params == expected);
  CHECK(b.snapshot().applied.at(1) == 9);
  CHECK(b.submit(encode_synthetic("jr", hash, dim, 1, 7, 0)) == "replayed");
}

TEST_CASE("the replicated journal is read back by another broker and trimmed to what a checkpoint holds", "[journal]") {
  NatsServer server;
  NatsOptions opts;
  opts.urls = {server.url()};
  auto link = NatsLink::connect(opts);
  const std::vector<std::pair<uint32_t, uint64_t>> order = {{1, 1}, {2, 1}, {1, 2}, {1, 3}, {2, 2}, {1, 4}};
  {
    StreamJournal j(*link, "sj", 1);
    CHECK(j.recovered().empty());
    for (const auto& [node, seq] : order) j.append({node, seq, encode_synthetic("sj", 7, 1024, node, seq, 0)});
    CHECK(j.size() == order.size());
  }
  auto reader = NatsLink::connect(opts);  // another broker's link
  StreamJournal j(*reader, "sj", 1);
  REQUIRE(j.recovered().size() == order.size());
  for (size_t i = 0; i < order.size(); ++i) {
    CHECK(j.recovered()[i].node_id == order[i].first);
    CHECK(j.recovered()[i].sequence == order[i].second);
    CHECK(j.recovered()[i].payload == encode_synthetic("sj", 7, 1024, order[i].first, order[i].second, 0));
  }
  // A checkpoint holding node 1 up to 3 and node 2 up to 1: the first four records go, (2, 2) and
  // (1, 4) stay.
  j.compact({{1, 3}, {2, 1}});
  CHECK(j.size() == 2);
  StreamJournal after(*link, "sj", 1);
  REQUIRE(after.recovered().size() == 2);
  CHECK(after.recovered()[0].node_id == 2);
  CHECK(after.recovered()[0].sequence == 2);
  CHECK(after.recovered()[1].sequence == 4);
  j.compact({{1, 4}, {2, 2}});
  CHECK(StreamJournal(*link, "sj", 1).recovered().empty());
}

TEST_CASE("a journal that cannot be written is counted with its reason, and the update is still merged", "[journal]") {
  TempDir dir;
  BrokerConfig bc;
  bc.model_id = "jf";
  bc.snapshot_path = dir.path + "/model.snap";
  BrokerService b(bc, nullptr);
  const Snapshot s0 = b.snapshot();
  const uint32_t dim = uint32_t(s0.params.size());
  // A full disk, as far as this process can tell: no file may grow past the journal's 4-byte header.
  rlimit old{};
  REQUIRE(getrlimit(RLIMIT_FSIZE, &old) == 0);
  auto old_handler = signal(SIGXFSZ, SIG_IGN);
  rlimit tight = old;
  tight.rlim_cur = 4;
  REQUIRE(setrlimit(RLIMIT_FSIZE, &tight) == 0);
  const std::string reason = b.submit(encode_synthetic("jf", s0.layout_hash, dim, 1, 1, 0));
  setrlimit(RLIMIT_FSIZE, &old);
  signal(SIGXFSZ, old_handler);
  CHECK(reason.empty());  // merged: the model has it, only its crash safety is gone
  const BrokerStats st = b.stats();
  CHECK(st.version == 1);
  CHECK(st.journal_errors == 1);
  CHECK(st.journal_error.find("cannot append to the journal") != std::string::npos);
  CHECK(b.snapshot().params != s0.params);
}

// A nats-server, a swarmlens-broker process with a snapshot (and so a journal), and three counting
// nodes sending 40 updates each; the fault is injected once 30 are answered.
struct CountingFleet {
  static constexpr uint32_t kCount = 40;
  explicit CountingFleet(const std::string& model_id)
      : snapshot(dir.path + "/model.snap"), log(dir.path + "/broker.log"),
        argv(broker_argv(server.url(), model_id, snapshot)) {
    start_broker();
    NatsOptions opts;
    opts.urls = {server.url()};
    for (uint32_t n = 0; n < 3; ++n) nodes.push_back(std::make_unique<CountingNode>(opts, model_id, n, kCount));
    wait_until([&] { return total(nodes, &UplinkStats::delivered) >= 30; }, 60s);
  }
  void start_broker() {  // and wait until it serves (the log says so once per start)
    auto starts = [&] {
      const std::string text = read_text(log);
      size_t n = 0;
      for (size_t at = text.find("serving model"); at != std::string::npos; at = text.find("serving model", at + 1)) ++n;
      return n;
    };
    const size_t before = starts();
    broker = std::make_unique<Process>(argv, log);
    wait_until([&] { return starts() > before; }, 30s);
  }
  uint64_t delivered() const { return total(nodes, &UplinkStats::delivered); }

  NatsServer server;
  TempDir dir;
  const std::string snapshot, log;
  const std::vector<std::string> argv;
  std::unique_ptr<Process> broker;
  std::vector<std::unique_ptr<CountingNode>> nodes;  // last: stopped before the broker and the server
};

TEST_CASE("kill -9 of the broker mid-training loses no accepted update and merges none twice", "[faults]") {
  CountingFleet f("kill");
  REQUIRE(f.broker->stop(SIGKILL, 0ms) == 128 + SIGKILL);
  const uint64_t delivered_at_kill = f.delivered();
  INFO("delivered before the kill: " << delivered_at_kill);
  REQUIRE(delivered_at_kill < f.nodes.size() * CountingFleet::kCount);
  std::this_thread::sleep_for(2500ms);  // nodes keep going: their updates wait at the node
  CHECK(f.delivered() == delivered_at_kill);  // nobody answers a dead broker
  uint64_t waiting = 0;
  for (auto& n : f.nodes) waiting += n->stats().in_flight ? 1 : 0;
  CHECK(waiting == f.nodes.size());  // each node holds its update until the broker answers

  f.start_broker();
  for (auto& n : f.nodes) REQUIRE(n->finish(120s));
  CHECK(total(f.nodes, &UplinkStats::resent) >= f.nodes.size());  // the updates sent into the outage went again
  REQUIRE(f.broker->stop(SIGTERM, 10000ms) == 0);

  // The restarted broker merged again what it had accepted and not yet published: all of it.
  std::smatch m;
  const std::string text = read_text(f.log);
  REQUIRE(std::regex_search(text, m, std::regex("journal: (\\d+) accepted updates merged again")));
  CHECK(std::stoull(m[1]) >= delivered_at_kill);
  std::printf("kill -9: %llu updates answered before the kill, %s merged again from the journal, %llu resent\n",
              (unsigned long long)delivered_at_kill, m[1].str().c_str(),
              (unsigned long long)total(f.nodes, &UplinkStats::resent));
  check_nothing_lost(f.nodes, f.snapshot);
}

TEST_CASE("after a nats-server restart every node reconnects by itself and delivers its update", "[faults]") {
  CountingFleet f("restart");
  f.server.stop();
  const uint64_t delivered_at_stop = f.delivered();
  REQUIRE(delivered_at_stop < f.nodes.size() * CountingFleet::kCount);
  std::this_thread::sleep_for(2s);
  CHECK(f.delivered() <= delivered_at_stop + f.nodes.size());  // answers in transit at most
  f.server.start();
  for (auto& n : f.nodes) REQUIRE(n->finish(120s));
  for (auto& n : f.nodes) {
    CHECK(n->link_stats().reconnects >= 1);
    CHECK(n->stats().catchups >= 1);
  }
  REQUIRE(f.broker->stop(SIGTERM, 10000ms) == 0);
  CHECK(read_text(f.log).find("reconnected") != std::string::npos);
  std::printf("nats-server restart: %llu updates answered before the stop, %llu resent\n",
              (unsigned long long)delivered_at_stop, (unsigned long long)total(f.nodes, &UplinkStats::resent));
  check_nothing_lost(f.nodes, f.snapshot);
}

TEST_CASE("a training node cut off for 60 s keeps training and delivers after reconnecting", "[faults][cutoff]") {
  const char* impair = std::getenv("SWARMLENS_IMPAIR");
  REQUIRE(impair);
  set_compute_threads(1);
  BrokerConfig bc;
  bc.model_id = "cut";
  bc.aggregation.server_lr = 0.05;
  bc.aggregation.max_staleness = 1000000;  // a node back from a long cut is weighted down, not refused
  testing::ServedBroker served(bc);
  auto& broker = served.broker;
  TempDir dir;

  // The cut-off node reaches the server only through the proxy: one 60 s outage from 8 s on.
  const int port = free_loopback_port();
  Process proxy({"python3", impair, "--listen", "127.0.0.1:" + std::to_string(port), "--upstream",
                 "127.0.0.1:" + std::to_string(served.server.port()), "--outage-start", "8", "--outage-every",
                 "100000", "--outage-for", "60", "--seed", "5"},
                dir.path + "/proxy.log");
  REQUIRE(wait_for_port(port, 10000ms));
  NatsOptions cut_opts;
  cut_opts.urls = {"nats://127.0.0.1:" + std::to_string(port)};

  NodeTrainerConfig cfg;
  cfg.model_id = "cut";
  cfg.node_id = 1;
  cfg.lr = 0.05;
  cfg.batch_size = 32;
  NodeTrainer trainer(cfg);
  NodeLink link(cut_opts, "cut", [&](std::shared_ptr<const Snapshot> m) { trainer.offer_model(m); });
  ReliableUplink uplink(link, 1, UplinkOptions{2000, false, {}});
  trainer.set_uplink([&](const std::vector<uint8_t>& m) { return uplink.offer(m); });
  trainer.start();
  std::atomic<bool> quit{false};
  std::thread camera([&] {
    auto data = load_fashion_mnist(default_fashion_mnist_dir(), true);
    std::vector<float> img;
    std::vector<int64_t> lab;
    for (uint32_t i = 0; !quit; i = (i + 1) % 5000) {
      make_batch(data, &i, 1, img, lab);
      trainer.push(img.data(), int(lab[0]), true);
    }
  });
  // Another node keeps the model moving meanwhile, straight to the server.
  CountingNode other(served.options(), "cut", 2, 100000);

  wait_until([&] { return !link.stats().connected; }, 30s);
  REQUIRE_FALSE(link.stats().connected);
  const uint64_t version_at_cut = broker.stats().version;
  const uint64_t samples_at_cut = trainer.stats().samples;
  const UplinkStats at_cut = uplink.stats();
  REQUIRE(at_cut.delivered >= 1);  // it was delivering before the cut

  wait_until([&] { return link.stats().reconnects >= 1; }, 90s);
  REQUIRE(link.stats().reconnects >= 1);
  const uint64_t version_at_back = broker.stats().version;
  const uint64_t samples_at_back = trainer.stats().samples;
  const UplinkStats at_back = uplink.stats();
  INFO("versions " << version_at_cut << " -> " << version_at_back << ", samples " << samples_at_cut << " -> "
                   << samples_at_back);
  CHECK(samples_at_back - samples_at_cut > 2000);  // it kept training through the cut
  CHECK(at_back.delivered == at_cut.delivered);
  CHECK(at_back.held_back + at_back.link_refused > at_cut.held_back + at_cut.link_refused);  // merged, kept
  REQUIRE(version_at_back > version_at_cut + 100);  // the model moved on without it

  wait_until([&] { return uplink.stats().delivered_samples >= samples_at_back - samples_at_cut; }, 60s);
  const UplinkStats after = uplink.stats();
  std::string refused_by;
  for (const auto& [why, n] : after.refused_by) refused_by += " " + why + "=" + std::to_string(n);
  INFO("refused:" << refused_by);
  // What it trained during the cut reached the broker, and it had the current model first.
  CHECK(after.delivered_samples - at_cut.delivered_samples >= samples_at_back - samples_at_cut);
  CHECK(after.catchups >= 1);
  CHECK(after.catchup_model_version + 50 >= version_at_back);
  CHECK(after.refused == 0);
  std::printf("60 s cut: the model went from version %llu to %llu meanwhile; the node trained %llu samples during "
              "the cut, caught up to version %llu, and delivered %llu samples' worth after it (last weight %.3f)\n",
              (unsigned long long)version_at_cut, (unsigned long long)version_at_back,
              (unsigned long long)(samples_at_back - samples_at_cut), (unsigned long long)after.catchup_model_version,
              (unsigned long long)(after.delivered_samples - at_cut.delivered_samples), after.last_ack.weight);
  quit = true;
  camera.join();
  trainer.stop();
  CHECK(trainer.error().empty());
  const Snapshot final_model = broker.snapshot();
  CHECK(std::all_of(final_model.params.begin(), final_model.params.end(), [](float w) { return std::isfinite(w); }));
}

namespace {

// Brokers standing in for each other (--lease-ms, --replicated-journal): weight 1 as broker_argv,
// a publish (and server checkpoint, and journal compaction) every 300 ms.
std::vector<std::string> standby_argv(const std::vector<std::string>& urls, const std::string& model_id,
                                      const std::string& instance, int replicas) {
  const char* exe = std::getenv("SWARMLENS_BROKER_EXE");
  REQUIRE(exe);
  std::string url_list;
  for (const auto& u : urls) url_list += (url_list.empty() ? "" : ",") + u;
  return {exe, "--nats", url_list, "--model-id", model_id, "--replicated-journal", "--lease-ms", "1500",
          "--stream-replicas", std::to_string(replicas), "--instance", instance, "--server-lr", "1", "--buffer-size", "1",
          "--staleness-grace", "1000000", "--max-staleness", "1000000", "--clip-factor", "0", "--publish-interval-ms",
          "300", "--stats", "0"};
}

size_t count_in(const std::string& path, const std::string& what) {
  const std::string text = read_text(path);
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The server model the serving broker kept at its last publish (its exit's, after SIGTERM).
Snapshot kept_server_model(const std::vector<std::string>& urls, const std::string& model_id) {
  NatsOptions opts;
  opts.urls = urls;
  auto link = NatsLink::connect(opts);
  auto s = fetch_server_checkpoint(*link, model_id);
  REQUIRE(s);
  return std::move(*s);
}

}  // namespace

TEST_CASE("a standby broker takes over from a killed one with every accepted update", "[faults][failover]") {
  NatsServer server;
  TempDir dir;
  const std::string log_a = dir.path + "/a.log", log_b = dir.path + "/b.log";
  Process a(standby_argv({server.url()}, "ha", "broker-a", 1), log_a);
  wait_until([&] { return count_in(log_a, "serving model") == 1; }, 30s);
  REQUIRE(count_in(log_a, "serving model") == 1);
  Process b(standby_argv({server.url()}, "ha", "broker-b", 1), log_b);
  wait_until([&] { return count_in(log_b, "standing by: broker-a serves") == 1; }, 30s);
  REQUIRE(count_in(log_b, "standing by: broker-a serves") == 1);
  CHECK(count_in(log_b, "serving model") == 0);

  NatsOptions opts;
  opts.urls = {server.url()};
  std::vector<std::unique_ptr<CountingNode>> nodes;
  for (uint32_t n = 0; n < 3; ++n) nodes.push_back(std::make_unique<CountingNode>(opts, "ha", n, CountingFleet::kCount));
  wait_until([&] { return total(nodes, &UplinkStats::delivered) >= 30; }, 60s);
  REQUIRE(a.stop(SIGKILL, 0ms) == 128 + SIGKILL);
  const auto killed = std::chrono::steady_clock::now();
  const uint64_t delivered_at_kill = total(nodes, &UplinkStats::delivered);
  REQUIRE(delivered_at_kill < nodes.size() * CountingFleet::kCount);
  wait_until([&] { return count_in(log_b, "serving model") == 1; }, 30s);
  REQUIRE(count_in(log_b, "serving model") == 1);
  const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  CHECK(read_text(log_b).find("resumed from the JetStream checkpoint") != std::string::npos);
  for (auto& n : nodes) REQUIRE(n->finish(120s));
  REQUIRE(b.stop(SIGTERM, 10000ms) == 0);
  std::printf("standby: serving %.1f s after the kill -9 of the active broker (lease 1.5 s); %llu updates answered "
              "before the kill, %llu resent\n", took, (unsigned long long)delivered_at_kill,
              (unsigned long long)total(nodes, &UplinkStats::resent));
  check_nothing_lost(nodes, kept_server_model({server.url()}, "ha"));
}

TEST_CASE("a serving broker frozen past its lease wakes to find another serving, steps down, and loses nothing",
          "[faults][failover]") {
  NatsServer server;
  TempDir dir;
  const std::string log_a = dir.path + "/a.log", log_b = dir.path + "/b.log";
  Process a(standby_argv({server.url()}, "frozen", "broker-a", 1), log_a);
  wait_until([&] { return count_in(log_a, "serving model") == 1; }, 30s);
  Process b(standby_argv({server.url()}, "frozen", "broker-b", 1), log_b);
  wait_until([&] { return count_in(log_b, "standing by: broker-a serves") == 1; }, 30s);
  REQUIRE(count_in(log_b, "standing by: broker-a serves") == 1);
  NatsOptions opts;
  opts.urls = {server.url()};
  std::vector<std::unique_ptr<CountingNode>> nodes;
  for (uint32_t n = 0; n < 3; ++n) nodes.push_back(std::make_unique<CountingNode>(opts, "frozen", n, CountingFleet::kCount));
  wait_until([&] { return total(nodes, &UplinkStats::delivered) >= 30; }, 60s);
  // Frozen (a partition, a VM paused): updates keep arriving in its socket while the standby takes
  // the lapsed lease over.
  REQUIRE(kill(a.pid(), SIGSTOP) == 0);
  wait_until([&] { return count_in(log_b, "serving model") == 1; }, 30s);
  REQUIRE(count_in(log_b, "serving model") == 1);
  std::this_thread::sleep_for(1s);
  REQUIRE(kill(a.pid(), SIGCONT) == 0);
  wait_until([&] { return count_in(log_a, "lost the lease") == 1; }, 30s);
  CHECK(count_in(log_a, "lost the lease") == 1);
  for (auto& n : nodes) REQUIRE(n->finish(120s));
  REQUIRE(b.stop(SIGTERM, 10000ms) == 0);
  a.stop(SIGTERM, 10000ms);
  std::printf("frozen broker: woke and stepped down; %llu resent, %llu answered journal_unavailable\n",
              (unsigned long long)total(nodes, &UplinkStats::resent), (unsigned long long)total(nodes, &UplinkStats::unavailable));
  check_nothing_lost(nodes, kept_server_model({server.url()}, "frozen"));
}

TEST_CASE("a serving broker cut off from NATS steps down, the standby serves, nothing is lost", "[faults][failover]") {
  const char* impair = std::getenv("SWARMLENS_IMPAIR");
  REQUIRE(impair);
  NatsServer server;
  TempDir dir;
  // Broker a reaches the server only through the proxy: one 8 s outage from 6 s on (a partition).
  const int port = free_loopback_port();
  Process proxy({"python3", impair, "--listen", "127.0.0.1:" + std::to_string(port), "--upstream",
                 "127.0.0.1:" + std::to_string(server.port()), "--outage-start", "6", "--outage-every", "100000",
                 "--outage-for", "8", "--seed", "5"},
                dir.path + "/proxy.log");
  REQUIRE(wait_for_port(port, 10000ms));
  const std::string log_a = dir.path + "/a.log", log_b = dir.path + "/b.log";
  Process a(standby_argv({"nats://127.0.0.1:" + std::to_string(port)}, "cutoff", "broker-a", 1), log_a);
  wait_until([&] { return count_in(log_a, "serving model") == 1; }, 30s);
  REQUIRE(count_in(log_a, "serving model") == 1);
  Process b(standby_argv({server.url()}, "cutoff", "broker-b", 1), log_b);
  NatsOptions opts;
  opts.urls = {server.url()};
  std::vector<std::unique_ptr<CountingNode>> nodes;
  // Enough updates (about 10 s of sending) to be under way through the outage.
  for (uint32_t n = 0; n < 3; ++n) nodes.push_back(std::make_unique<CountingNode>(opts, "cutoff", n, 800));
  wait_until([&] { return count_in(log_b, "serving model") == 1; }, 60s);
  const uint64_t delivered_at_takeover = total(nodes, &UplinkStats::delivered);
  CHECK(delivered_at_takeover < 3 * 800);
  REQUIRE(count_in(log_b, "serving model") == 1);  // the standby took over during the outage
  wait_until([&] { return count_in(log_a, "lost the lease") == 1; }, 30s);
  CHECK(count_in(log_a, "lost the lease") == 1);  // and a stepped down by itself
  for (auto& n : nodes) REQUIRE(n->finish(120s));
  REQUIRE(b.stop(SIGTERM, 10000ms) == 0);
  a.stop(SIGTERM, 10000ms);
  std::printf("cut off broker: stepped down; %llu updates answered when the standby took over, %llu resent, %llu "
              "answered journal_unavailable\n", (unsigned long long)delivered_at_takeover,
              (unsigned long long)total(nodes, &UplinkStats::resent), (unsigned long long)total(nodes, &UplinkStats::unavailable));
  check_nothing_lost(nodes, kept_server_model({server.url()}, "cutoff"));
}

TEST_CASE("a broker stopped with SIGTERM hands the lease over at once", "[faults][failover]") {
  NatsServer server;
  TempDir dir;
  const std::string log_a = dir.path + "/a.log", log_b = dir.path + "/b.log";
  Process a(standby_argv({server.url()}, "handover", "broker-a", 1), log_a);
  wait_until([&] { return count_in(log_a, "serving model") == 1; }, 30s);
  Process b(standby_argv({server.url()}, "handover", "broker-b", 1), log_b);
  wait_until([&] { return count_in(log_b, "standing by") == 1; }, 30s);
  REQUIRE(count_in(log_b, "standing by: broker-a serves") == 1);
  REQUIRE(a.stop(SIGTERM, 10000ms) == 0);
  CHECK(read_text(log_a).find("cannot release") == std::string::npos);
  wait_until([&] { return count_in(log_b, "serving model") == 1; }, 30s);
  CHECK(count_in(log_b, "serving model") == 1);
  REQUIRE(b.stop(SIGTERM, 10000ms) == 0);
}

TEST_CASE("one of three nats-servers killed: the broker and the nodes go on by themselves, nothing lost",
          "[faults][cluster]") {
  LocalNatsCluster cluster(3, "");
  TempDir dir;
  const std::string log = dir.path + "/broker.log";
  // JetStream elects its meta leader a few seconds after the routes form; the broker retries its start.
  std::unique_ptr<Process> broker;
  for (int attempt = 0; attempt < 30 && count_in(log, "serving model") == 0; ++attempt) {
    broker = std::make_unique<Process>(standby_argv(cluster.urls(), "cluster", "broker-a", 3), log);
    wait_until([&] { return count_in(log, "serving model") == 1 || !broker->running(); }, 30s);
    if (!broker->running()) std::this_thread::sleep_for(1s);
  }
  REQUIRE(count_in(log, "serving model") == 1);
  NatsOptions opts;
  opts.urls = cluster.urls();
  std::vector<std::unique_ptr<CountingNode>> nodes;
  for (uint32_t n = 0; n < 3; ++n) nodes.push_back(std::make_unique<CountingNode>(opts, "cluster", n, CountingFleet::kCount));
  wait_until([&] { return total(nodes, &UplinkStats::delivered) >= 30; }, 60s);
  cluster.server(0).kill();
  const uint64_t delivered_at_kill = total(nodes, &UplinkStats::delivered);
  REQUIRE(delivered_at_kill < nodes.size() * CountingFleet::kCount);
  for (auto& n : nodes)
    if (!n->finish(180s)) FAIL("node " << n->id() << " did not finish: " << n->stats().delivered << " delivered, "
                               << n->stats().unavailable << " journal_unavailable; broker log:\n" << read_text(log));
  INFO("broker log:\n" << read_text(log));
  REQUIRE(broker->running());
  REQUIRE(broker->stop(SIGTERM, 10000ms) == 0);
  std::printf("nats-server killed (1 of 3): %llu updates answered before, %llu resent, %llu node reconnects\n",
              (unsigned long long)delivered_at_kill, (unsigned long long)total(nodes, &UplinkStats::resent),
              [&] {
                unsigned long long r = 0;
                for (auto& n : nodes) r += n->link_stats().reconnects;
                return r;
              }());
  check_nothing_lost(nodes, kept_server_model({cluster.server(1).url(), cluster.server(2).url()}, "cluster"));
}
