// `tern bench swarm`: a real swarm run on this machine (a coordinator and N
// members as processes on loopback, cli/local_swarm.h) training the `small`
// preset on GCIDE text, twice: with unlimited upload, then with every
// member's upload capped so that sending one round's update takes at most
// half of a round's compute. Reports the step time of both, their ratio (how
// well the one-step overlap hides a slow uplink), the bytes each member
// uploads per parameter per step, and whether the members agree on the
// weights, as a summary or one JSON object. Registered under `tern bench` by
// add_bench_command (bench.cpp).
#pragma once

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace tern::cli {

Command add_bench_swarm_command(CLI::App& bench);

}  // namespace tern::cli
