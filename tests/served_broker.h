// Tests: swarmlens-broker's service on a real nats-server, with the publish timer the daemon's loop
// would run. Members are destroyed in reverse: the timer stops, then the broker, then the server.
//   testing::ServedBroker served(bc);
//   auto& [server, broker, publisher] = served;
#pragma once

#include "broker_service.h"
#include "nats_link.h"
#include "nats_server.h"
#include "publish_timer.h"

namespace swarmlens::testing {

struct ServedBroker {
  explicit ServedBroker(const BrokerConfig& bc) : broker(bc, NatsLink::connect(options())), publisher(broker) {}
  // Options for another client of the same server (a node, a peer).
  NatsOptions options() const {
    NatsOptions o;
    o.urls = {server.url()};
    return o;
  }

  NatsServer server;
  BrokerService broker;
  PublishTimer publisher;
};

}  // namespace swarmlens::testing
