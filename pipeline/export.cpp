#include "export.h"

#include <cstdio>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <memory>

#include <fstream>
#include <optional>
#include <stdexcept>

#include "camera_model.h"
#include "dataset.h"
#include "model.h"
#include "model_channel.h"
#include "nats_cli.h"
#include "nats_link.h"
#include "onnx_export.h"
#include "snapshot.h"
#include "command.h"

namespace swarmlens {

namespace {

Snapshot fetch_live(const ExportOptions& o) {
  NatsOptions n;
  n.urls = {o.nats_url};
  n.name = "swarmlens-export";
  n.credentials_file = o.credentials_file;
  auto link = NatsLink::connect(n);
  const std::string none = "no model of id '" + o.model_id + "' is kept in JetStream on " + o.nats_url +
                           " (is a broker serving it?)";
  ModelTrust trust;
  if (o.model_key.empty())
    std::fprintf(stderr, "swarmlens export: no --model-key: the live model is trusted blindly\n");
  else
    trust.key = parse_public_key(o.model_key);
  std::optional<Snapshot> model;
  try {
    model = fetch_retained_model(*link, o.model_id, trust);
  } catch (const NatsError& e) {
    throw std::runtime_error(none + ": " + e.what());
  }
  if (!model) throw std::runtime_error(none);
  return *model;
}

// The model the snapshot holds: its own description (format 2; the options may only repeat it), or,
// for an older snapshot without one, the options (defaults as the elements').
ModelSpec exported_spec(const ExportOptions& o, const Snapshot& s) {
  if (s.description.described()) {
    const ModelSpec spec = described_spec(s);
    if ((!o.model.empty() && o.model != spec.name) || (o.input_width && o.input_width != spec.width) ||
        (o.input_height && o.input_height != spec.height) || (o.classes && o.classes != spec.classes))
      throw std::runtime_error(fmt::format("the snapshot holds {}; --model, --input-width, --input-height and --classes "
                                           "say otherwise (leave them out: the snapshot describes its model)",
                                           describe(s.model, s.description)));
    return spec;
  }
  const ModelSpec d;  // the elements' defaults
  return camera_model_spec(o.model.empty() ? s.model : o.model, o.input_width ? o.input_width : d.width,
                           o.input_height ? o.input_height : d.height, 1, o.classes);
}

std::vector<std::string> class_names(const ExportOptions& o, const Snapshot& s, const ModelSpec& spec) {
  std::vector<std::string> names = !o.classes_file.empty() ? read_class_names(o.classes_file) : s.description.class_names;
  if (names.empty() && o.classes_file.empty() && spec.classes == ModelSpec::kDefaultClasses && spec.channels == 1)
    names = fashion_mnist_class_names();  // an older snapshot of the Fashion-MNIST model
  if (!names.empty() && names.size() != size_t(spec.classes))
    throw std::runtime_error(fmt::format("{} class names for a model of {} classes", names.size(), spec.classes));
  return names;
}

}  // namespace

int run_export(const ExportOptions& o) {
  if (o.format != "onnx") throw std::invalid_argument("unknown format '" + o.format + "' (onnx)");
  if (o.snapshot.empty() == o.nats_url.empty())
    throw std::invalid_argument("give one source: --snapshot FILE or --nats-url URL");
  const Snapshot s = o.snapshot.empty() ? fetch_live(o) : load_snapshot(o.snapshot);
  const ModelSpec spec = exported_spec(o, s);
  auto model = Model::create(spec, 1);
  if (model->layout_hash() != s.layout_hash || model->num_params() != s.params.size())
    throw std::runtime_error(fmt::format(
        "the model (version {}) is {}, not {}: give --model, --input-width, --input-height and --classes as the "
        "nodes trained it", s.version, describe(s.model, s.description), describe(spec.name, describe_model(spec))));
  model->set_params(s.params.data());
  OnnxExportInfo info;
  info.model_id = o.model_id;
  info.version = s.version;
  info.class_names = class_names(o, s, spec);
  const Normalisation norm = frame_normalisation(spec.channels);
  info.input_mean = norm.mean;
  info.input_std = norm.std;
  const std::string bytes = export_onnx(*model, info);
  std::ofstream f(o.output, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  f.close();
  if (!f) throw std::runtime_error("cannot write " + o.output);
  fmt::print(stderr, "wrote {} ({} bytes): {}, version {}, checked by the ONNX checker\n", o.output, bytes.size(),
             describe(spec.name, describe_model(spec, info.class_names)), s.version);
  return 0;
}


void add_export_command(CLI::App& parent, Commands& commands) {
  auto o = std::make_shared<ExportOptions>();
  auto* c = parent.add_subcommand("export", "Write the shared model (a snapshot file, or live from NATS) as ONNX");
  c->add_option("--format", o->format, "file format")->check(CLI::IsMember({"onnx"}))->capture_default_str();
  c->add_option("-o,--output", o->output, "the file to write")->required();
  c->add_option("--snapshot", o->snapshot, "a snapshot file (a node's checkpoint, the broker's --snapshot)");
  add_nats_options(*c, {&o->nats_url, &o->credentials_file, nullptr, true, &o->model_key}, "take the latest model kept in JetStream on this server");
  c->add_option("--model-id", o->model_id, "model id (NATS subjects swarmlens.<id>.*)")->capture_default_str();
  c->add_option("--model", o->model, "registry name (default: the snapshot's)")->check(CLI::IsMember(Model::names()));
  c->add_option("--input-width", o->input_width, "model input width (default: the snapshot's; an older snapshot: 28)")->check(CLI::Range(8, 1024));
  c->add_option("--input-height", o->input_height, "model input height (default: the snapshot's; an older snapshot: 28)")->check(CLI::Range(8, 1024));
  c->add_option("--classes", o->classes, "number of classes (default: the snapshot's; an older snapshot: 10)")->check(CLI::Range(2, 1000));
  c->add_option("--class-names", o->classes_file, "file with one class name per line (default: the snapshot's, or Fashion-MNIST's for its model)");
  commands.add(c, [o] { return run_export(*o); });
}

}  // namespace swarmlens
