// swarmlens-bench: the measuring rigs (`swarmlens bench ...` runs this program). Each benchmark
// declares its own options and run function; figures and commands are in docs/benchmarks.md.
#include <CLI/CLI.hpp>
#include <fmt/core.h>

#include <exception>

#include "bench_broker.h"
#include "bench_compression.h"
#include "bench_elements.h"
#include "bench_field.h"
#include "bench_gateway.h"
#include "bench_node.h"
#include "command.h"
#include "launch.h"

int main(int argc, char** argv) {
  using namespace swarmlens;
  CLI::App app{"swarmlens bench: Swarmlens' benchmarks (figures and how they were measured: docs/benchmarks.md)"};
  app.name("swarmlens bench");
  app.require_subcommand(1);
  Commands commands;
  add_compression_bench_command(app, commands);
  add_elements_bench_command(app, commands);
  add_broker_bench_command(app, commands);
  add_gateway_bench_command(app, commands);
  add_node_bench_command(app, commands);
  add_field_node_command(app, commands);
  add_field_watch_command(app, commands);
  CLI11_PARSE(app, argc, argv);
  use_build_plugin_dir();
  try {
    return commands.run_parsed();
  } catch (const std::exception& e) {
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
}
