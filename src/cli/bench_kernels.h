// `tern bench kernels`: throughput of the CPU kernels on the presets' linear
// shapes (ternary products, fp32 products, transposed products), matrix-vector
// weight bandwidth from DRAM and a STREAM-like copy, as a table or one JSON
// object. Registered under `tern bench` by add_bench_command (bench.cpp).
#pragma once

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace tern::cli {

// Adds the `kernels` subcommand to `bench`; run() is called only if it was selected.
Command add_bench_kernels_command(CLI::App& bench);

}  // namespace tern::cli
