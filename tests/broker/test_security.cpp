// The NATS configuration shipped in samples/nats: TLS with a CA and certificates this test makes
// with samples/nats/make-certs, users with per-subject permissions. A real nats-server runs the
// shipped file unchanged (secrets and paths come from the environment, as in a deployment).
#include <catch2/catch.hpp>
#include <stdlib.h>

#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <string>
#include <thread>

#include "broker_service.h"
#include "codec.h"
#include "model_channel.h"
#include "inbox.h"
#include "nats_server.h"
#include "node_link.h"
#include "reliable_uplink.h"

using namespace swarmlens;
using swarmlens::testing::Inbox;
using swarmlens::testing::NatsServer;

namespace {

const std::string kSamples = SWARMLENS_SAMPLES_DIR;

// Certificates made once for the whole suite; the server's environment carries the secrets.
struct SecureServer {
  std::string dir = "security-certs";
  std::unique_ptr<NatsServer> server;
  SecureServer() {
    const std::string cmd = kSamples + "/nats/make-certs " + dir + " localhost 127.0.0.1 >/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    setenv("SWARMLENS_TLS_CERT", (dir + "/server.pem").c_str(), 1);
    setenv("SWARMLENS_TLS_KEY", (dir + "/server-key.pem").c_str(), 1);
    setenv("SWARMLENS_TLS_CA", (dir + "/ca.pem").c_str(), 1);
    setenv("SWARMLENS_NODE_PASSWORD", "node-pw-1", 1);
    setenv("SWARMLENS_BROKER_PASSWORD", "broker-pw-2", 1);
    setenv("SWARMLENS_VIEWER_PASSWORD", "viewer-pw-3", 1);
    server = std::make_unique<NatsServer>(std::vector<std::string>{"-c", kSamples + "/nats/swarmlens-nats.conf"});
  }
  NatsOptions as(const std::string& who, const std::string& password, bool tls = true) const {
    NatsOptions o;
    o.urls = {server->url()};
    o.name = who;
    if (tls) o.tls_ca = dir + "/ca.pem";
    if (!who.empty()) {
      const std::string path = "creds-" + who + ".txt";
      std::ofstream(path) << who << ":" << password << "\n";
      o.credentials_file = path;
    }
    return o;
  }
};

}  // namespace

TEST_CASE("the sample NATS config refuses clients without TLS or credentials", "[security][nats]") {
  SecureServer s;
  CHECK(NatsLink::connect(s.as("node", "node-pw-1"))->connected());
  CHECK_THROWS_AS(NatsLink::connect(s.as("", "")), NatsError);              // TLS, no credentials
  CHECK_THROWS_AS(NatsLink::connect(s.as("node", "wrong")), NatsError);     // a wrong password
  CHECK_THROWS_AS(NatsLink::connect(s.as("node", "node-pw-1", false)), NatsError);  // no TLS
}

TEST_CASE("under the sample NATS config a node publishes updates but never a model", "[security][nats]") {
  SecureServer s;
  ModelSpec spec;
  BrokerConfig bc;
  bc.model_id = "sec";
  auto broker = std::make_unique<BrokerService>(bc, NatsLink::connect(s.as("broker", "broker-pw-2")));
  broker->publish_if_changed();  // version 0 kept in JetStream and published: allowed for the broker

  // The node reads the kept model through JetStream (its only JetStream right) and follows models.
  std::mutex mu;
  std::vector<uint64_t> versions;
  NodeLink node(s.as("node", "node-pw-1"), "sec", [&](std::shared_ptr<const Snapshot> m) {
    std::lock_guard<std::mutex> g(mu);
    versions.push_back(m->version);
  }, [](const std::string& e) { WARN("node: " << e); });
  {
    std::lock_guard<std::mutex> g(mu);
    REQUIRE(versions == std::vector<uint64_t>{0});
  }

  // Its update reaches the broker and is merged.
  const Snapshot base = broker->snapshot();
  SparseVector u;
  u.dim = uint32_t(base.params.size());
  u.index = {1, 5};
  u.value = {0.5f, -0.25f};
  UpdateHeader h{"sec", base.layout_hash, 0, 3, 1, 32};
  {
    ReliableUplink uplink(node, 3);  // the broker's answer comes back on the node's ack subject
    REQUIRE(uplink.offer(encode_update(h, u, {})));
    REQUIRE(uplink.wait_idle(std::chrono::seconds(10)));
    CHECK(uplink.stats().delivered == 1);
  }
  CHECK(broker->stats().accepted == 1);

  // Only the broker answers: a node cannot tell another that its update was taken.
  Inbox acks;  // declared before the link that feeds it, so it outlives its callbacks
  auto listener = NatsLink::connect(s.as("node", "node-pw-1"));
  listener->subscribe(ack_subject("sec", 5), acks.handler());
  listener->flush();
  auto liar = NatsLink::connect(s.as("node", "node-pw-1"));
  const std::string fake = encode_ack(UpdateAck{5, 1, "accepted", 1, 0, 1.0});
  liar->publish(ack_subject("sec", 5), std::vector<uint8_t>(fake.begin(), fake.end()));
  liar->flush();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  {
    std::lock_guard<std::mutex> g(acks.m);
    CHECK(acks.payloads.empty());
  }

  // A viewer follows the model subject; the node forges a model there and into the retained
  // subjects, then the broker publishes the real one. The server drops the node's (it flushed them
  // before the broker published, so they would have come first): the viewer sees only the broker's.
  Inbox seen;
  auto viewer = NatsLink::connect(s.as("viewer", "viewer-pw-3"));
  viewer->subscribe(model_subject("sec"), seen.handler());
  viewer->flush();
  auto forger = NatsLink::connect(s.as("node", "node-pw-1"));
  const Snapshot forged("cnn", base.layout_hash, 999, std::vector<float>(base.params.size(), 7.0f));
  const std::vector<uint8_t> bytes = encode_snapshot(forged);
  forger->publish(model_subject("sec"), bytes);
  forger->publish(retained_prefix("sec", "full") + ".0", bytes);
  forger->flush();
  REQUIRE(broker->publish_if_changed());  // version 1, with the node's update
  REQUIRE(seen.wait_for(1));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  {
    std::lock_guard<std::mutex> g(seen.m);
    REQUIRE(seen.payloads.size() == 1);
    CHECK(seen.payloads[0] != bytes);
  }
  // What JetStream keeps is still the broker's model: a late node starts from version 1, not 999.
  NatsOptions vo = s.as("viewer", "viewer-pw-3");
  vo.request_timeout_ms = 1000;
  CHECK_THROWS_AS(fetch_retained_model(*NatsLink::connect(vo), "sec"), NatsError);  // no JetStream for viewers
  NodeLink late(s.as("node", "node-pw-1"), "sec", {});
  REQUIRE(late.latest());
  CHECK(late.latest()->version == 1);
  CHECK(late.latest()->params[0] != 7.0f);

  // A viewer may publish nothing: its update never reaches the broker.
  viewer->publish(update_subject("sec", 4), encode_update(UpdateHeader{"sec", base.layout_hash, 1, 4, 1, 32}, u, {}));
  viewer->flush();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(broker->stats().updates_in == 1);
}

TEST_CASE("per-node logins made by samples/nats/add-node speak for their own node id only", "[security][nats][identity]") {
  const std::string dir = "security-nodes";
  REQUIRE(std::system(("rm -rf " + dir + " && " + kSamples + "/nats/add-node " + dir + " 7 >/dev/null && " + kSamples +
                       "/nats/add-node " + dir + " 8 >/dev/null").c_str()) == 0);
  SecureServer base;  // certificates and the environment the shipped file reads
  base.server.reset();
  NatsServer server(std::vector<std::string>{"-c", dir + "/swarmlens-nats.conf"});
  auto with = [&](const std::string& who, const std::string& creds) {
    NatsOptions o;
    o.urls = {server.url()};
    o.tls_ca = base.dir + "/ca.pem";
    o.name = who;
    o.credentials_file = creds;
    return o;
  };
  std::ofstream("creds-broker.txt") << "broker:broker-pw-2\n";
  BrokerConfig bc;
  bc.model_id = "ids";
  bc.retain = false;
  BrokerService broker(bc, NatsLink::connect(with("broker", "creds-broker.txt")));
  const Snapshot s = broker.snapshot();
  SparseVector u;
  u.dim = uint32_t(s.params.size());
  u.index = {1};
  u.value = {0.5f};
  Inbox other;  // before the link that feeds it: destroyed after it
  auto node7 = NatsLink::connect(with("node-7", dir + "/node-7.creds"));
  node7->publish(update_subject("ids", 8), encode_update(UpdateHeader{"ids", s.layout_hash, 0, 8, 1, 32}, u, {}));  // as node 8
  node7->publish(update_subject("ids", 7), encode_update(UpdateHeader{"ids", s.layout_hash, 0, 8, 2, 32}, u, {}));  // claims 8
  node7->publish(update_subject("ids", 7), encode_update(UpdateHeader{"ids", s.layout_hash, 0, 7, 1, 32}, u, {}));  // itself
  node7->flush();
  for (int i = 0; i < 100 && broker.stats().updates_in < 2; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  const BrokerStats st = broker.stats();
  CHECK(st.updates_in == 2);  // the server dropped the one on node 8's subject
  CHECK(st.rejected.at("identity_mismatch") == 1);
  CHECK(st.accepted == 1);
  // Node 7's acks and inboxes are its own: reading node 8's is refused by the server.
  node7->subscribe(ack_subject("ids", 8), other.handler());
  node7->subscribe("_INBOX.broker.>", other.handler());
  auto broker_side = NatsLink::connect(with("broker", "creds-broker.txt"));
  const std::string ack = encode_ack(UpdateAck{8, 1, "accepted", 1, 0, 1.0});
  broker_side->publish(ack_subject("ids", 8), std::vector<uint8_t>(ack.begin(), ack.end()));
  // A JetStream request of the broker's: its reply comes to _INBOX.broker.<...>, not for node 7's eyes.
  try {
    broker_side->fetch_retained(retention_stream("ids"), retained_prefix("ids", "full"));
  } catch (const NatsError&) {  // no such stream: an answer all the same, sent to the broker's inbox
  }
  broker_side->flush();
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  std::lock_guard<std::mutex> g(other.m);
  CHECK(other.payloads.empty());
}
