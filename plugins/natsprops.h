// The NATS properties swarmtrain and swarmclassify share (nats-url, nats-credentials, nats-tls-ca),
// and a NodeLink whose events end up on the element's bus. No LibTorch here.
#pragma once

#include <gst/gst.h>

#include <memory>
#include <string>

#include "model.h"
#include "node_link.h"

namespace swarmlens {

struct NatsSettings {
  std::string url, credentials, tls_ca;
  std::string model_key;  // the broker's public key (signing.h): 64 hex digits or a .pub file
};

inline constexpr guint kNatsProperties = 4;
// Installs the kNatsProperties properties with ids first, first + 1, ... (mutable in READY).
void nats_install_properties (GObjectClass * klass, guint first);
// Set/get for ids in [first, first + kNatsProperties); false if the id is not one of them.
bool nats_set_property (NatsSettings & s, guint first, guint id, const GValue * v);
bool nats_get_property (const NatsSettings & s, guint first, guint id, GValue * v);

// The link options for `element`: the URL list split at commas, the client named after the element.
NatsOptions nats_options (GstElement * element, const NatsSettings & s);

// Connects for `element` (posts GST_ELEMENT_ERROR and returns null if it cannot, or if model-key is
// not a key). Models and acks are verified with model-key; without one a bus warning says they are
// trusted blindly. Link events go to the bus: a reconnect as info, everything else (disconnect, a
// refused model) as a warning. A served model of another layout than `runs` is refused, said once on
// the bus with both models' descriptions.
std::unique_ptr<NodeLink> nats_open_link (GstElement * element, const NatsSettings & s, const std::string & model_id,
    const ModelSpec & runs, NodeLink::ModelHandler on_model);

}  // namespace swarmlens
