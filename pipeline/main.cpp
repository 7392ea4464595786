// The swarmlens command. Each subcommand declares its own options and run function (add_*_command);
// `swarmlens bench ...` runs the benchmark program, swarmlens-bench, built in bench/.
#include <CLI/CLI.hpp>

#include "camera.h"
#include "command.h"
#include "demo.h"
#include "export.h"
#include "process.h"
#include "scenes_command.h"

int main(int argc, char** argv) {
  using namespace swarmlens;
  CLI::App app{"Swarmlens: video analytics pipelines that train on the camera nodes themselves"};
  app.require_subcommand(1);
  Commands commands;
  add_demo_command(app, commands);
  add_node_command(app, commands);
  add_camera_command(app, commands);
  add_export_command(app, commands);
  add_scenes_command(app, commands);
  auto* bench = app.add_subcommand("bench", "Benchmarks: compression, elements, input-size, broker, gateway, node, field-node, "
                                            "field-watch (swarmlens bench --help; the program swarmlens-bench)");
  bench->prefix_command();  // everything after `bench` goes to swarmlens-bench as it is
  bench->set_help_flag();
  commands.add(bench, [bench] { return exec_sibling("swarmlens-bench", "bench", bench->remaining()); });
  // A config file gives any option, by its long name without dashes, under [camera].
  app.set_config("--config", "", "INI file of options, one section per subcommand (e.g. [camera])");

  return run_command_line(app, commands, argc, argv);
}
