// A command line of subcommands, each owning its options and its run function: a subcommand's
// add_*_command(parent, commands) declares its options on its own CLI11 App, over an options struct
// it keeps alive, and registers what runs when it is the one parsed. main() only adds them and
// calls run_command_line.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <utility>
#include <vector>

namespace swarmlens {

class Commands {
 public:
  using Run = std::function<int()>;
  void add(CLI::App* app, Run run) { commands_.emplace_back(app, std::move(run)); }
  // The exit code of the parsed subcommand's run (the deepest parsed one), 0 if none was parsed.
  int run_parsed() const {
    for (const auto& [app, run] : commands_)
      if (app->parsed()) return run();
    return 0;
  }

 private:
  std::vector<std::pair<CLI::App*, Run>> commands_;
};

// Adds --version, makes a config file's unknown keys errors (in every subcommand), parses the command
// line (a usage error, --help or --version ends there, as CLI11 says), finds the plugin in a
// build tree (use_build_plugin_dir), runs the parsed subcommand and returns its exit code; an
// exception from it is printed as "error: ..." with exit code 1.
int run_command_line(CLI::App& app, const Commands& commands, int argc, char** argv);

}  // namespace swarmlens
