#include "command.h"

#include <fmt/core.h>

#include <exception>

#include "launch.h"

namespace swarmlens {

int run_command_line(CLI::App& app, const Commands& commands, int argc, char** argv) {
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
