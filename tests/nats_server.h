// A real nats-server for tests (pipeline/process.h's LocalNatsServer): JetStream on, a free loopback
// port, its own store folder; quiet unless SWARMLENS_NATS_LOG is set, since its log would bury the
// test output.
#pragma once

#include <cstdlib>

#include "process.h"

namespace swarmlens::testing {

using swarmlens::free_loopback_port;

class NatsServer : public LocalNatsServer {
 public:
  explicit NatsServer(std::vector<std::string> extra_args = {})
      : LocalNatsServer(std::getenv("SWARMLENS_NATS_LOG") ? "" : "/dev/null", std::move(extra_args)) {}
};

}  // namespace swarmlens::testing
