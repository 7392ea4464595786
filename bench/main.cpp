// swarmlens-bench: the measuring rigs (`swarmlens bench ...` runs this program). Each benchmark
// declares its own options and run function; figures and commands are in docs/benchmarks.md.
#include <CLI/CLI.hpp>

#include "bench_attacks.h"
#include "bench_broker.h"
#include "bench_compression.h"
#include "bench_elements.h"
#include "bench_field.h"
#include "bench_fleet.h"
#include "bench_gateway.h"
#include "bench_input_size.h"
#include "bench_node.h"
#include "bench_swarm.h"

namespace swarmlens {
void add_failover_bench_command(CLI::App& parent, Commands& commands);  // bench_failover.cpp
}
#include "command.h"

int main(int argc, char** argv) {
  using namespace swarmlens;
  CLI::App app{"swarmlens bench: Swarmlens' benchmarks (figures and how they were measured: docs/benchmarks.md)"};
  app.name("swarmlens bench");
  app.require_subcommand(1);
  Commands commands;
  add_compression_bench_command(app, commands);
  add_attacks_bench_command(app, commands);
  add_elements_bench_command(app, commands);
  add_input_size_bench_command(app, commands);
  add_broker_bench_command(app, commands);
  add_gateway_bench_command(app, commands);
  add_node_bench_command(app, commands);
  add_field_node_command(app, commands);
  add_field_watch_command(app, commands);
  add_fleet_bench_command(app, commands);
  add_swarm_bench_command(app, commands);
  add_failover_bench_command(app, commands);
  return run_command_line(app, commands, argc, argv);
}
