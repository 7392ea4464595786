// `swarmlens bench attacks`: the federation's accuracy under attack, default settings. Honest nodes
// train the CNN on Fashion-MNIST shards (two-step compression, as camera nodes do) against a broker
// service in this process; a share of them are malicious and send, each round, in place of their
// honest update: a sign-flipped one blown up 25x (signflip), Gaussian noise 25x an honest norm
// (noise), an update of norm ~1e31 (huge), or the sign-flipped one under a new node id every time
// (sybil). Reported per attack: test accuracy for 1 of 5 and 2 of 10 nodes malicious, against the
// clean run of the same size, and the honest updates the broker accepted. docs/benchmarks.md.
#pragma once

#include <CLI/CLI.hpp>

#include "command.h"

namespace swarmlens {

void add_attacks_bench_command(CLI::App& parent, Commands& commands);

}  // namespace swarmlens
