#include "command.h"

#include <fmt/core.h>

#include <exception>

#include "launch.h"
#include "version.h"

namespace swarmlens {

namespace {

// A config file key that no option of its section takes is an error, not silently ignored.
void refuse_config_extras(CLI::App& app) {
  app.allow_config_extras(CLI::config_extras_mode::error);
  for (CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; })) refuse_config_extras(*sub);
}

}  // namespace

int run_command_line(CLI::App& app, const Commands& commands, int argc, char** argv) {
  app.set_version_flag("--version", version());
  refuse_config_extras(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  use_build_plugin_dir();
  try {
    return commands.run_parsed();
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}

}  // namespace swarmlens
