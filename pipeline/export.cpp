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

std::vector<std::string> class_names(const ExportOptions& o) {
  if (o.classes_file.empty()) {
    if (o.classes != 10) return {};  // unnamed
    return fashion_mnist_class_names();
  }
  std::ifstream f(o.classes_file);
  if (!f) throw std::runtime_error("cannot read " + o.classes_file);
  std::vector<std::string> names;
  for (std::string line; std::getline(f, line);)
    if (!line.empty()) names.push_back(line);
  return names;
}

}  // namespace

int run_export(const ExportOptions& o) {
  if (o.format != "onnx") throw std::invalid_argument("unknown format '" + o.format + "' (onnx)");
  if (o.snapshot.empty() == o.nats_url.empty())
    throw std::invalid_argument("give one source: --snapshot FILE or --nats-url URL");
  const Snapshot s = o.snapshot.empty() ? fetch_live(o) : load_snapshot(o.snapshot);
  const std::string name = o.model.empty() ? s.model : o.model;
  const int fallback = name == "cnn" ? 28 : 96;
  ModelSpec spec = camera_model_spec(name, o.input_width ? o.input_width : fallback,
                                     o.input_height ? o.input_height : fallback);  // as the elements train it
  spec.classes = o.classes;
  auto model = Model::create(spec, 1);
  if (model->layout_hash() != s.layout_hash || model->num_params() != s.params.size())
    throw std::runtime_error(fmt::format(
        "the model ({}, version {}) does not fit {} {}x{}x{} with {} classes: give --model, --input-width, "
        "--input-height and --classes as the nodes trained it", s.model, s.version, spec.name, spec.channels,
        spec.height, spec.width, spec.classes));
  model->set_params(s.params.data());
  OnnxExportInfo info;
  info.model_id = o.model_id;
  info.version = s.version;
  info.class_names = class_names(o);
  const Normalisation norm = frame_normalisation(spec.channels);
  info.input_mean = norm.mean;
  info.input_std = norm.std;
  const std::string bytes = export_onnx(*model, info);
  std::ofstream f(o.output, std::ios::binary);
  f.write(bytes.data(), std::streamsize(bytes.size()));
  f.close();
  if (!f) throw std::runtime_error("cannot write " + o.output);
  fmt::print(stderr, "wrote {} ({} bytes): {} {}x{}x{}, {} classes, version {}, checked by the ONNX checker\n",
             o.output, bytes.size(), spec.name, spec.channels, spec.height, spec.width, spec.classes, s.version);
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
  c->add_option("--model", o->model, "registry name (default: the snapshot's)")->check(CLI::IsMember({"cnn", "mobilenet"}));
  c->add_option("--input-width", o->input_width, "model input width (default: cnn 28, others 96)")->check(CLI::Range(8, 1024));
  c->add_option("--input-height", o->input_height, "model input height (default: cnn 28, others 96)")->check(CLI::Range(8, 1024));
  c->add_option("--classes", o->classes, "number of classes")->check(CLI::Range(2, 100000))->capture_default_str();
  c->add_option("--class-names", o->classes_file, "file with one class name per line (default: Fashion-MNIST's)");
  commands.add(c, [o] { return run_export(*o); });
}

}  // namespace swarmlens
