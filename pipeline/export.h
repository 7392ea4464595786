// `swarmlens export`: the current shared model as a file other runtimes read (ONNX).
#pragma once

#include <string>

#include "node_trainer.h"

namespace CLI {
class App;
}

namespace swarmlens {

class Commands;

struct ExportOptions {
  std::string format = "onnx";
  std::string output;            // the file written
  std::string snapshot;          // a snapshot file (SWLS: a checkpoint, the broker's --snapshot)...
  std::string nats_url;          // ...or the latest model kept in JetStream on this server
  std::string model_id = NodeTrainerConfig::kDefaultModelId;
  std::string credentials_file;  // NATS credentials file (NatsOptions::credentials_file), if the server wants them
  std::string model_key;         // the broker's public key: a live model not signed with it is refused
  // The model: a snapshot describes its own (these may only repeat it); for an older one without a
  // description, these say it (0 / "": the elements' defaults).
  std::string model;             // registry name; default: the snapshot's
  int input_width = 0, input_height = 0;
  int classes = 0;
  std::string classes_file;      // one class name per line; default: the snapshot's (or Fashion-MNIST's)
};

// Returns a process exit code; errors go to stderr.
int run_export(const ExportOptions& o);

// Declares `export` and its options under `parent`.
void add_export_command(CLI::App& parent, Commands& commands);

}  // namespace swarmlens
