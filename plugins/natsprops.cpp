#include "natsprops.h"

#include <sstream>

#include "camera_model.h"
#include "properties.h"

namespace swarmlens {

void nats_install_properties (GObjectClass * klass, guint first) {
  const auto ready = GParamFlags (G_PARAM_READWRITE | G_PARAM_STATIC_STRINGS | GST_PARAM_MUTABLE_READY);
  g_object_class_install_property (klass, first, g_param_spec_string (props::kNatsUrl, "NATS URL",
      "NATS server URL(s), comma-separated (nats://[user:password@]host:port, tls://...); empty = no "
      "network, the model stays in this process", "", ready));
  g_object_class_install_property (klass, first + 1, g_param_spec_string (props::kNatsCredentials, "NATS credentials",
      "NATS credentials file: a .creds file (JWT and nkey seed), or one line user:password, or one line "
      "with a token; keep it readable only by the service user", "", ready));
  g_object_class_install_property (klass, first + 2, g_param_spec_string (props::kNatsTlsCa, "NATS TLS CA",
      "CA bundle to verify the NATS server (turns TLS on)", "", ready));
  g_object_class_install_property (klass, first + 3, g_param_spec_string (props::kModelKey, "Model key",
      "The broker's Ed25519 public key (64 hex digits, or the path of the broker's .pub file): models and "
      "acks not signed with it are refused and counted; empty = trusted blindly (a warning says so)", "", ready));
}

namespace {
template <typename S> auto &nats_field (S & s, guint index) {
  return index == 0 ? s.url : index == 1 ? s.credentials : index == 2 ? s.tls_ca : s.model_key;
}
}  // namespace

bool nats_set_property (NatsSettings & s, guint first, guint id, const GValue * v) {
  if (id < first || id >= first + kNatsProperties) return false;
  const char *text = g_value_get_string (v);
  nats_field (s, id - first) = text ? text : "";
  return true;
}

bool nats_get_property (const NatsSettings & s, guint first, guint id, GValue * v) {
  if (id < first || id >= first + kNatsProperties) return false;
  g_value_set_string (v, nats_field (s, id - first).c_str ());
  return true;
}

NatsOptions nats_options (GstElement * element, const NatsSettings & s) {
  NatsOptions opts;
  opts.urls.clear ();
  std::stringstream list (s.url);
  for (std::string u; std::getline (list, u, ',');)
    if (!u.empty ()) opts.urls.push_back (u);
  opts.name = std::string ("swarmlens-") + GST_OBJECT_NAME (element);
  opts.credentials_file = s.credentials;
  opts.tls_ca = s.tls_ca;
  return opts;
}

std::unique_ptr<NodeLink> nats_open_link (GstElement * element, const NatsSettings & s, const std::string & model_id,
    const ModelSpec & runs, NodeLink::ModelHandler on_model) {
  const NatsOptions opts = nats_options (element, s);
  // The element outlives the link (the element closes it in stop()), so the raw pointer is safe.
  auto on_event = [element] (const std::string & what) {
    if (what.find ("reconnected") != std::string::npos)
      GST_ELEMENT_INFO (element, RESOURCE, READ, ("NATS link reconnected"), ("%s", what.c_str ()));
    else
      GST_ELEMENT_WARNING (element, RESOURCE, READ, ("NATS: %s", what.c_str ()), (nullptr));
  };
  ModelTrust trust;
  try {
    trust.layout_hash = model_layout (runs).hash;
    trust.runs = describe (runs.name, describe_model (runs));
    if (!s.model_key.empty ()) trust.key = parse_public_key (s.model_key);
  } catch (const std::exception & e) {
    GST_ELEMENT_ERROR (element, RESOURCE, SETTINGS, ("Bad %s or model", props::kModelKey), ("%s", e.what ()));
    return nullptr;
  }
  try {
    return std::make_unique<NodeLink> (opts, model_id, std::move (on_model), on_event, true, trust);
  } catch (const std::exception & e) {
    GST_ELEMENT_ERROR (element, RESOURCE, OPEN_READ_WRITE, ("Cannot connect to NATS at %s", s.url.c_str ()),
        ("%s", e.what ()));
    return nullptr;
  }
}

}  // namespace swarmlens
