// The operator's view: the HTTP endpoint (routes, bounds), the nodes' reports as hostile input,
// /metrics checked by Prometheus' own promtool and against the broker's stats after real traffic,
// and the dashboard in a real browser (headless Chromium) over a real federation.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <regex>
#include <set>
#include <cstring>
#include <thread>

#include "browser.h"
#include "camera_metrics.h"
#include "daemon.h"
#include "http_server.h"
#include "model.h"
#include "nats_server.h"
#include "node_board.h"
#include "overlay_snapshots.h"
#include "prom_text.h"

using namespace swarmlens;
using namespace std::chrono_literals;
using swarmlens::testing::NatsServer;

namespace {

// One raw HTTP exchange on 127.0.0.1:port: the answer up to `max_bytes`, or until the server closes.
std::string http_raw(int port, const std::string& request, size_t max_bytes = 1 << 20) {
  const int fd = connect_loopback(port);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, request.data(), request.size()) == ssize_t(request.size()));
  std::string out;
  char buf[4096];
  while (out.size() < max_bytes) {
    const ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  close(fd);
  return out;
}

std::string get(int port, const std::string& path) {
  return http_raw(port, "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
}

int status_of(const std::string& response) {
  return response.size() > 12 ? std::atoi(response.c_str() + 9) : 0;
}

// An event stream held open: its socket, read until `events` events came.
struct Stream {
  int fd = -1;
  std::string text;
  explicit Stream(int port) {
    fd = connect_loopback(port);
    REQUIRE(fd >= 0);
    const std::string req = "GET /events HTTP/1.1\r\nHost: x\r\n\r\n";
    REQUIRE(write(fd, req.data(), req.size()) == ssize_t(req.size()));
  }
  ~Stream() { close(fd); }
  // Reads until `n` events ("data: ...\n\n") came; their data lines.
  std::vector<std::string> events(size_t n) {
    std::vector<std::string> out;
    char buf[4096];
    for (;;) {
      out.clear();
      for (size_t at = 0; (at = text.find("data: ", at)) != std::string::npos;) {
        const size_t end = text.find("\n\n", at);
        if (end == std::string::npos) break;
        out.push_back(text.substr(at + 6, end - at - 6));
        at = end;
      }
      if (out.size() >= n) return out;
      const ssize_t got = read(fd, buf, sizeof buf);
      if (got <= 0) return out;
      text.append(buf, size_t(got));
    }
  }
};

// `promtool check metrics` (Debian's prometheus package) on the text: its complaints, "" when clean.
std::string promtool_check(const std::string& text) {
  const std::string path = "operator-metrics.txt";
  std::ofstream(path) << text;
  FILE* p = popen(("promtool check metrics < " + path + " 2>&1; echo \"rc=$?\"").c_str(), "r");
  REQUIRE(p);
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p)) out += buf;
  pclose(p);
  std::remove(path.c_str());
  if (out.find("rc=0") != std::string::npos) return "";
  return out.empty() ? "promtool did not run" : out;
}

// Sample lines of a text exposition: "name{labels}" -> value.
std::map<std::string, double> samples(const std::string& text) {
  std::map<std::string, double> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    out[line.substr(0, space)] = std::stod(line.substr(space + 1));
  }
  return out;
}

// Every swarmlens_ metric the Grafana dashboard and the alert rules in deploy/ query is one the
// broker (`broker_text`) or a camera (CameraMetrics) exports: a renamed metric fails here, not on
// the operator's wall.
void check_deploy_files_name(const std::string& broker_text) {
  StatsFields f;
  for (const char* k : {"samples", "dropped", "steps", "node-id", "connected", "holdout-accuracy", "bytes-sent"})
    f.numbers[k] = 1;
  f.strings["state"] = "training";
  CameraMetrics camera("ops");
  camera.take(f);
  const std::string exported = broker_text + camera.text();
  std::set<std::string> families;
  const std::regex type_line(R"(# TYPE (\w+) )");
  for (auto it = std::sregex_iterator(exported.begin(), exported.end(), type_line); it != std::sregex_iterator(); ++it)
    families.insert((*it)[1]);
  const char* root = std::getenv("SWARMLENS_SOURCE_ROOT");
  REQUIRE(root);
  size_t queried = 0;
  for (const char* file : {"/deploy/grafana/swarmlens-fleet.json", "/deploy/prometheus/swarmlens-rules.yml"}) {
    std::ifstream in(std::string(root) + file);
    REQUIRE(in);
    const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const std::regex name(R"(\b(swarmlens_\w+|process_\w+))");
    for (auto it = std::sregex_iterator(text.begin(), text.end(), name); it != std::sregex_iterator(); ++it) {
      std::string n = (*it)[1];
      for (const char* suffix : {"_bucket", "_count", "_sum"})
        if (n.size() > std::strlen(suffix) && n.compare(n.size() - std::strlen(suffix), std::string::npos, suffix) == 0 &&
            families.count(n.substr(0, n.size() - std::strlen(suffix))))
          n = n.substr(0, n.size() - std::strlen(suffix));
      if (n == "swarmlens_broker_updates_rejected_total") ++queried;
      INFO(file << " queries " << n);
      CHECK(families.count(n) == 1);
    }
  }
  CHECK(queried >= 2);  // both files were read
}

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

TEST_CASE("listen addresses: HOST:PORT or an error naming the option", "[operator]") {
  const ListenAddress a = ListenAddress::parse("127.0.0.1:9464", "--metrics-listen");
  CHECK(a.host == "127.0.0.1");
  CHECK(a.port == 9464);
  CHECK(a.loopback());
  CHECK_FALSE(ListenAddress::parse("0.0.0.0:80", "--x").loopback());
  CHECK(ListenAddress::parse("localhost:1", "--x").loopback());
  for (const char* bad : {"", "9464", ":9464", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "127.0.0.1:9x",
                          "example.com:80", "[::1]:80"}) {
    INFO(bad);
    try {
      ListenAddress::parse(bad, "--metrics-listen");
      FAIL("accepted");
    } catch (const std::invalid_argument& e) {
      CHECK(std::string(e.what()).find("--metrics-listen") != std::string::npos);
    }
  }
}

TEST_CASE("the HTTP endpoint: routes, GET only, bounded event streams with a cursor each", "[operator]") {
  const int port = free_loopback_port();
  HttpServer server(ListenAddress::parse("127.0.0.1:" + std::to_string(port), "--x"), 2);
  CHECK(server.port() == port);
  server.route("/metrics", [](const std::string&) { return HttpResponse{200, kPromContentType, "a 1\n"}; });
  server.route("/files/", [](const std::string& path) { return HttpResponse{200, "text/plain", "file " + path}; });
  std::atomic<uint64_t> ticks{0};
  server.events("/events", [&](uint64_t& cursor) {
    const std::string e = "{\"from\":" + std::to_string(cursor) + "}";
    cursor = ++ticks + 100;
    return e;
  }, 20ms);

  const std::string m = get(port, "/metrics");
  CHECK(status_of(m) == 200);
  CHECK(m.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
  CHECK(m.substr(m.size() - 4) == "a 1\n");
  CHECK(get(port, "/files/a.jpg").find("file /files/a.jpg") != std::string::npos);
  CHECK(status_of(get(port, "/nothing")) == 404);
  CHECK(status_of(http_raw(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")) == 405);

  {
    Stream a(port), b(port);
    const auto ea = a.events(3);
    REQUIRE(ea.size() == 3);
    CHECK(ea[0] == "{\"from\":0}");                        // a stream's first event starts from 0
    CHECK(ea[1].rfind("{\"from\":10", 0) == 0);            // then from where its source left it
    REQUIRE(b.events(1).size() >= 1);
    CHECK(status_of(get(port, "/events")) == 503);         // a third, beyond max_streams
    CHECK(server.streams_refused() == 1);
  }
  // Closed streams free their places (the server notices at its next write).
  bool reopened = false;
  for (int i = 0; i < 100 && !reopened; ++i) {
    Stream c(port);
    reopened = c.events(1).size() >= 1;
    if (!reopened) std::this_thread::sleep_for(20ms);
  }
  CHECK(reopened);
  // Taken port: an error at start.
  CHECK_THROWS_WITH(HttpServer(ListenAddress::parse("127.0.0.1:" + std::to_string(port), "--x")),
                    Catch::Contains("cannot listen on 127.0.0.1:" + std::to_string(port)));
}

TEST_CASE("node reports are hostile: malformed, out of range or unknown states are refused and counted", "[operator]") {
  NodeBoard board;
  const auto take = [&](const std::string& s) {
    return board.take(reinterpret_cast<const uint8_t*>(s.data()), s.size(), 1000.0);
  };
  using T = NodeBoard::Take;
  CHECK(take(R"({"source":"node","node":3,"state":"training","steps":12,"samples":40,"dropped":2,"bytes_sent":900,)"
             R"("bytes_in":5000,"model_version":7,"holdout_accuracy":0.5})") == T::Used);
  CHECK(take(R"({"source":"broker","model_version":3})") == T::NotNode);
  uint64_t refused = 0;
  for (const std::string& bad : {std::string("not json"), std::string("[1,2]"),
                                std::string(R"({"source":"node","node":-1,"state":"training"})"),
                                std::string(R"({"source":"node","node":4294967296,"state":"training"})"),
                                std::string(R"({"source":"node","node":4,"state":"<script>"})"),
                                std::string(R"({"source":"node","node":4})"),
                                std::string(R"({"source":"node","node":4,"state":"training","steps":-5})"),
                                std::string(R"({"source":"node","node":4,"state":"training","steps":1.5})"),
                                std::string(R"({"source":"node","node":4,"state":"training","holdout_accuracy":2})"),
                                std::string(NodeBoard::kMaxReportBytes + 1, ' ')}) {
    INFO(bad.substr(0, 80));
    CHECK(take(bad) == T::Refused);
    CHECK(board.refused() == ++refused);
  }
  const auto nodes = board.nodes();
  REQUIRE(nodes.size() == 1);
  const NodeReport& r = nodes.at(3);
  CHECK(r.state == "training");
  CHECK(r.steps == 12);
  CHECK(r.frames == 42);
  CHECK(r.bytes_up == 900);
  CHECK(r.bytes_down == 5000);
  CHECK(r.model_version == 7);
  CHECK(r.holdout_accuracy == Approx(0.5));
  CHECK(r.seen == 1000.0);
}

TEST_CASE("overlay snapshots are hostile: only JPEGs, bounded in size, rate and count", "[operator]") {
  OverlaySnapshots snaps;
  CHECK(OverlaySnapshots::node_of("swarmlens.m.snapshot.12") == 12u);
  CHECK_FALSE(OverlaySnapshots::node_of("swarmlens.m.snapshot.x1"));
  CHECK_FALSE(OverlaySnapshots::node_of("swarmlens.m.snapshot.4294967296"));
  CHECK_FALSE(OverlaySnapshots::node_of("swarmlens.m.update.12"));
  CHECK(OverlaySnapshots::node_of_file("12.jpg") == 12u);
  for (const char* bad : {".jpg", "12.png", "12", "a.jpg", "../1.jpg", "99999999999.jpg"}) CHECK_FALSE(OverlaySnapshots::node_of_file(bad));
  const std::vector<uint8_t> jpeg{0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3};
  CHECK(snaps.take(1, jpeg, 100.0));
  CHECK_FALSE(snaps.take(1, jpeg, 100.5));                          // within a second of the last
  CHECK_FALSE(snaps.take(2, {'G', 'I', 'F', '8'}, 100.0));           // not a JPEG
  std::vector<uint8_t> big(OverlaySnapshots::kMaxBytes + 1, 0);
  big[0] = 0xFF, big[1] = 0xD8, big[2] = 0xFF;
  CHECK_FALSE(snaps.take(3, big, 100.0));                            // too large
  CHECK(snaps.refused() == 3);
  REQUIRE(snaps.get(1));
  CHECK(*snaps.get(1) == jpeg);
  CHECK_FALSE(snaps.get(2));
  // Beyond kMaxNodes, the one heard from longest ago makes room.
  for (uint32_t n = 10; n < 10 + OverlaySnapshots::kMaxNodes; ++n) CHECK(snaps.take(n, jpeg, 200.0 + n));
  CHECK(snaps.times().size() == OverlaySnapshots::kMaxNodes);
  CHECK_FALSE(snaps.get(1));
  CHECK(snaps.get(10));
}

TEST_CASE("the exposition text passes promtool: counters, gauges, histograms with +Inf, escaped labels",
          "[operator][promtool]") {
  PromText p;
  p.counter("swarmlens_test_things_total", "Things.", 3, {{"model_id", "a\"b\\c\nd"}});
  p.counter("swarmlens_test_things_total", "Things.", 4, {{"model_id", "e"}});
  p.gauge("swarmlens_test_level", "A level.", 0.25);
  Histogram h({1, 2, 4});
  for (double v : {0.0, 1.0, 3.0, 9.0}) h.observe(v);
  p.histogram("swarmlens_test_seconds", "A time.", h);
  p.process();
  const std::string text = p.str();
  CHECK(promtool_check(text) == "");
  const auto s = samples(text);
  CHECK(s.at("swarmlens_test_seconds_bucket{le=\"1\"}") == 2);  // 0 and 1: le is inclusive
  CHECK(s.at("swarmlens_test_seconds_bucket{le=\"4\"}") == 3);
  CHECK(s.at("swarmlens_test_seconds_bucket{le=\"+Inf\"}") == 4);
  CHECK(s.at("swarmlens_test_seconds_count") == 4);
  CHECK(s.at("swarmlens_test_seconds_sum") == 13);
  CHECK(s.at("process_resident_memory_bytes") > 1e6);
  CHECK(s.at("process_start_time_seconds") > 1.6e9);
  CHECK(s.at("process_open_fds") >= 3);
}

TEST_CASE("swarmlens-broker's /metrics after real traffic: promtool passes, counters equal the broker's stats",
          "[operator][daemon]") {
  NatsServer server;
  DaemonConfig d;
  d.nats.urls = {server.url()};
  d.broker.model_id = "ops";
  d.broker.retain = false;
  d.publish_interval_ms = 50;
  d.stats_interval_ms = 0;
  const int port = free_loopback_port();
  d.ops.metrics_listen = "127.0.0.1:" + std::to_string(port);
  d.ops.dashboard_listen = d.ops.metrics_listen;
  d.ops.max_nodes = 2;  // three nodes send: the one heard from first has no series of its own
  BrokerDaemon daemon(d);
  CHECK(daemon.metrics_url() == "http://127.0.0.1:" + std::to_string(port) + "/metrics");
  std::atomic<bool> stop{false};
  std::thread loop([&] { daemon.run(stop); });

  NatsOptions opts;
  opts.urls = {server.url()};
  auto node = NatsLink::connect(opts);
  const auto model = Model::create({}, 1);
  SparseVector s;
  s.dim = uint32_t(model->num_params());
  s.index = {1, 2, 3};
  s.value = {0.01f, 0.02f, -0.01f};
  uint64_t seq = 1000;
  for (uint32_t n : {7u, 8u, 9u}) {
    for (int i = 0; i < 10; ++i)
      node->publish(update_subject("ops", n), encode_update({"ops", model->layout_hash(), 0, n, ++seq, 32}, s, {}));
    std::this_thread::sleep_for(50ms);  // 7 first, 9 last
  }
  node->publish(update_subject("ops", 8), std::vector<uint8_t>{1, 2, 3});  // malformed
  node->publish(update_subject("ops", 8), encode_update({"ops", model->layout_hash(), 0, 9, ++seq, 32}, s, {}));  // as another
  node->publish(update_subject("ops", 8), encode_update({"ops", model->layout_hash() + 1, 0, 8, ++seq, 32}, s, {}));  // layout
  const std::string report = R"({"source":"node","node":9,"state":"paused-load","steps":77,"samples":300,"bytes_sent":123,"bytes_in":4567,"model_version":3,"holdout_accuracy":0.625,"holdout_samples":40})";
  node->publish(metrics_subject("ops"), std::vector<uint8_t>(report.begin(), report.end()));
  const std::string forged = R"({"source":"node","node":9,"state":"owned"})";
  node->publish(metrics_subject("ops"), std::vector<uint8_t>(forged.begin(), forged.end()));
  node->flush();

  // Every update taken, and a round since (the view is the round's copy).
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (daemon.service().stats().updates_in < 33 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  std::this_thread::sleep_for(300ms);
  const BrokerStats st = daemon.service().stats();
  const auto traffic = daemon.service().node_traffic();
  const std::string text = get(port, "/metrics");
  const std::string state = get(port, "/api/state");
  stop = true;
  loop.join();

  REQUIRE(status_of(text) == 200);
  const std::string body = text.substr(text.find("\r\n\r\n") + 4);
  CHECK(promtool_check(body) == "");
  const auto m = samples(body);
  const std::string id = "model_id=\"ops\"";
  REQUIRE(st.updates_in == 33);
  CHECK(m.at("swarmlens_broker_updates_received_total{" + id + "}") == double(st.updates_in));
  CHECK(m.at("swarmlens_broker_updates_accepted_total{" + id + "}") == double(st.accepted));
  CHECK(st.accepted == 30);
  CHECK(st.rejected.size() == 3);
  for (const auto& [reason, n] : st.rejected)
    CHECK(m.at("swarmlens_broker_updates_rejected_total{" + id + ",reason=\"" + reason + "\"}") == double(n));
  CHECK(m.at("swarmlens_broker_update_bytes_total{" + id + "}") == double(st.bytes_in));
  CHECK(m.at("swarmlens_broker_model_bytes_total{" + id + "}") == double(st.bytes_out));
  CHECK(m.at("swarmlens_broker_model_version{" + id + "}") == double(st.version));
  CHECK(m.at("swarmlens_broker_update_staleness_versions_count{" + id + "}") == double(st.accepted));
  CHECK(m.at("swarmlens_broker_update_merge_duration_seconds_count{" + id + "}") == double(st.updates_in));
  CHECK(m.at("swarmlens_broker_serving{" + id + "}") == 1);
  CHECK(m.at("swarmlens_broker_nodes{" + id + "}") == 3);
  CHECK(m.at("swarmlens_broker_nodes_unlabelled{" + id + "}") == 1);
  CHECK(m.at("swarmlens_broker_node_reports_refused_total{" + id + "}") == 1);
  // Per node: the two heard from last have series, with the broker's own counts.
  CHECK(m.count("swarmlens_node_updates_accepted_total{" + id + ",node=\"7\"}") == 0);
  CHECK(m.at("swarmlens_node_updates_accepted_total{" + id + ",node=\"9\"}") == double(traffic.at(9).accepted));
  CHECK(traffic.at(9).accepted == 10);
  CHECK(m.at("swarmlens_node_updates_refused_total{" + id + ",node=\"8\"}") == 3);  // the subject's node
  CHECK(m.at("swarmlens_node_training_steps_total{" + id + ",node=\"9\"}") == 77);
  CHECK(m.at("swarmlens_node_state{" + id + ",node=\"9\",state=\"paused-load\"}") == 1);
  CHECK(m.at("swarmlens_node_last_seen_timestamp_seconds{" + id + ",node=\"9\"}") > unix_now() - 60);
  CHECK(m.at("process_cpu_seconds_total") > 0);
  CHECK(m.at("swarmlens_model_accuracy_ratio{" + id + ",source=\"node_holdout\"}") == 0.625);
  check_deploy_files_name(body);

  // The dashboard's state says the same.
  const auto j = nlohmann::json::parse(state.substr(state.find("\r\n\r\n") + 4));
  CHECK(j["accepted"] == st.accepted);
  CHECK(j["nodes_total"] == 3);
  REQUIRE(j["nodes"].size() == 2);
  CHECK(j["nodes"][1]["node"] == 9);
  CHECK(j["nodes"][1]["state"] == "paused-load");
  CHECK(j["nodes"][0]["last_refusal"] == "layout_mismatch");
}

TEST_CASE("the dashboard in headless Chromium over a real federation: nodes shown, accuracy moving, no console "
          "errors, a sane screenshot", "[operator][browser]") {
  const char* broker_exe = std::getenv("SWARMLENS_BROKER_EXE");
  const char* swarmlens_exe = std::getenv("SWARMLENS_EXE");
  REQUIRE(broker_exe);
  REQUIRE(swarmlens_exe);
  REQUIRE(find_chromium() != "");  // a required test dependency (scripts/setup-deps): never skipped
  NatsServer server;
  const int port = free_loopback_port();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/";
  const std::string data = "/usr/share/datasets/fashion-mnist";
  Process broker({broker_exe, "--nats", server.url(), "--model-id", "dash", "--dashboard-listen",
                  "127.0.0.1:" + std::to_string(port), "--test-data", data, "--test-limit", "500", "--eval-interval-ms",
                  "500", "--publish-interval-ms", "200", "--stats", "0", "--server-lr", "0.025", "--buffer-size", "1"},
                 "operator-broker.log");
  REQUIRE(wait_for_port(port, 30s));
  std::vector<std::unique_ptr<Process>> nodes;
  for (int i = 0; i < 2; ++i)
    nodes.push_back(std::make_unique<Process>(
        std::vector<std::string>{swarmlens_exe, "node", "--nats", server.url(), "--data", data, "--node-id",
                                 std::to_string(i), "--nodes", "2", "--fps", "300", "--model-id", "dash",
                                 "--stats-interval-ms", "500"},
        "operator-node-" + std::to_string(i) + ".log"));

  const auto accuracy_of = [](const std::string& dom) {
    std::smatch mt;
    return std::regex_search(dom, mt, std::regex(R"(id="accuracy">([^<]*)<)")) ? mt[1].str() : std::string();
  };
  // The page as a browser renders it, until both nodes show and an accuracy is in.
  PageCapture first;
  for (int i = 0; i < 20; ++i) {
    first = dump_dom(url, {1280, 1000, 2500});
    REQUIRE(first.ok);
    if (first.dom.find("data-node=\"1\"") != std::string::npos && accuracy_of(first.dom).find('%') != std::string::npos)
      break;
  }
  INFO("console:\n" << first.console);
  CHECK(first.console.empty());
  CHECK(first.dom.find("<tr data-node=\"0\">") != std::string::npos);
  CHECK(first.dom.find("<tr data-node=\"1\">") != std::string::npos);
  CHECK(first.dom.find(">training<") != std::string::npos);
  CHECK(first.dom.find("id=\"link\" class=\"live\"") != std::string::npos);
  const std::string acc0 = accuracy_of(first.dom);
  REQUIRE(acc0.find('%') != std::string::npos);
  // While the federation trains, the figure on the page moves.
  std::string acc1 = acc0;
  for (int i = 0; i < 20 && acc1 == acc0; ++i) {
    const PageCapture later = dump_dom(url, {1280, 1000, 2500});
    REQUIRE(later.ok);
    CHECK(later.console.empty());
    acc1 = accuracy_of(later.dom);
  }
  INFO("accuracy on the page: " << acc0 << " then " << acc1);
  CHECK(acc1 != acc0);

  // The screenshot: the expected size, not blank, its panels and charts drawn.
  const std::string png = "operator-dashboard.png";
  std::string why;
  REQUIRE(screenshot(url, png, &why, {1280, 1000, 3000}));
  const cv::Mat img = cv::imread(png, cv::IMREAD_COLOR);
  REQUIRE(!img.empty());
  CHECK(img.cols == 1280);
  CHECK(img.rows == 1000);
  cv::Scalar mean, dev;
  cv::meanStdDev(img, mean, dev);
  CHECK(dev[0] + dev[1] + dev[2] > 10);  // not one colour
  const auto share = [&](cv::Scalar bgr) {  // of the pixels within a few levels of one colour
    cv::Mat mask;
    cv::inRange(img, bgr - cv::Scalar(6, 6, 6), bgr + cv::Scalar(6, 6, 6), mask);
    return double(cv::countNonZero(mask)) / double(img.total());
  };
  CHECK(share({0x28, 0x20, 0x18}) > 0.15);   // the panels' background
  CHECK(share({0x50, 0xb9, 0x3f}) > 0.0005); // the accuracy lines (#3fb950)
  CHECK(share({0xff, 0xa6, 0x58}) > 0.001);  // the staleness bars (#58a6ff)
  for (auto& n : nodes) n->stop(SIGTERM, 20000ms);
  CHECK(broker.stop(SIGTERM, 20000ms) == 0);
  std::remove(png.c_str());
}
