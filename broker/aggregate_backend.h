// swarmaggregate's two jobs behind one interface, so that the element is only GStreamer glue:
//  - serving (make_serving_backend): this is the aggregator, the same BrokerService that runs in
//    swarmlens-broker: updates merged into the shared model, a newer model served every interval;
//  - forwarding (make_forwarding_backend): a site gateway: the local updates summed into one
//    (UpdateMerger) and sent on every interval under the gateway's node id, over the acknowledged
//    uplink (ReliableUplink) when there is NATS, and out of the element to a chained aggregator.
// No GStreamer here: the element hands in its trainers' updates, asks for each interval's output,
// and passes on models and warnings.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker_service.h"
#include "node_link.h"
#include "reliable_uplink.h"
#include "update_merger.h"

namespace swarmlens {

struct AggregateStats {
  uint64_t updates_in = 0, bytes_in = 0, accepted = 0;
  std::map<std::string, uint64_t> rejected;  // by reason
  uint64_t updates_out = 0, bytes_out = 0;   // forwarding: combined updates sent on
  uint64_t models_out = 0;                   // serving: models sent out of the element
  uint64_t pending = 0;                      // forwarding: local updates merged, not sent yet
  uint64_t version = 0;                      // the newest model (forwarding: from upstream)
};

// A problem for the element's bus: what happened, and the detail.
struct AggregateWarning {
  std::string what, detail;
};

// What one interval sends out of the element.
struct AggregateOutput {
  std::shared_ptr<const Snapshot> model;      // serving: a model newer than the last one sent
  std::optional<CombinedUpdate> update;       // forwarding: the interval's combined update
  std::optional<AggregateWarning> warning;
};

class AggregateBackend {
 public:
  // A newer model for the local trainers (serving: each one served; forwarding: upstream's,
  // translated to name the trainers' own updates). Called on any thread.
  using ModelForTrainers = std::function<void(const Snapshot&)>;
  virtual ~AggregateBackend() = default;

  // One update from a local trainer: "" when accepted, else "reason: detail" (counted by reason).
  virtual std::string submit(const std::vector<uint8_t>& update) = 0;
  // The interval's output. Forwarding: the element then says where the update went (delivered()).
  virtual AggregateOutput tick() = 0;
  // Forwarding: whether the element's src pad took the update tick() gave. It is sent upstream
  // over NATS as well when there is a link; an update that went nowhere joins the next one.
  virtual void delivered(const CombinedUpdate& c, bool pushed_downstream) { (void)c, (void)pushed_downstream; }
  // Forwarding: a model from the aggregator upstream that came through the element. Throws
  // std::invalid_argument for another layout.
  virtual void model_from_upstream(const Snapshot& s) { (void)s; }
  // At stop: serving publishes the last model; forwarding sends what is merged and waits (3 s)
  // for the broker's answer. What could not be done, for the bus.
  virtual std::vector<AggregateWarning> finish() = 0;
  virtual AggregateStats stats() const = 0;
  // Whether the element's src pad is only a copy (forwarding with NATS): not linked is fine then.
  virtual bool src_is_optional() const { return false; }
};

// Serving: the service's first model (resumed, or the seed's) goes to the trainers at once.
std::unique_ptr<AggregateBackend> make_serving_backend(const BrokerConfig& cfg, std::unique_ptr<NatsLink> link,
                                                       AggregateBackend::ModelForTrainers to_trainers);

struct ForwardConfig {
  std::string model_id = NodeTrainerConfig::kDefaultModelId;
  ModelSpec model;          // the trainers' model: its layout is what updates are checked against
  MergerConfig merger;
  UplinkOptions uplink;
};
// Opens the NATS link to the broker upstream, given the handler for the models it delivers; null
// for no NATS (the element reports why, if it failed).
using OpenUpstream = std::function<std::unique_ptr<NodeLink>(NodeLink::ModelHandler)>;
// Forwarding. With `open_upstream` a link is opened (a null link from it throws std::runtime_error).
std::unique_ptr<AggregateBackend> make_forwarding_backend(const ForwardConfig& cfg, OpenUpstream open_upstream,
                                                          AggregateBackend::ModelForTrainers to_trainers);

}  // namespace swarmlens
