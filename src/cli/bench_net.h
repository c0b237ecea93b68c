// `tern bench net`: loopback throughput of the network layer in one process,
// sender and receiver on two threads: plain TCP frames (the baseline), one
// Noise-encrypted secure channel, and a blob fetch with chunk verification
// between two nodes. Prints a table or one JSON object. Registered under
// `tern bench` by add_bench_command (bench.cpp).
#pragma once

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace tern::cli {

Command add_bench_net_command(CLI::App& bench);

}  // namespace tern::cli
