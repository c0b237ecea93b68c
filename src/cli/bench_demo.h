// `tern bench demo`: simulated multi-worker training of the `tiny` preset on the
// demo corpus, dense AdamW (fp32 all-reduce) against DeMo at several top-k and
// value encodings, for the same number of tokens; reports validation losses and
// bytes each worker sends per parameter per step, as a table or one JSON object.
// Registered under `tern bench` by add_bench_command (bench.cpp).
#pragma once

#include <CLI/CLI.hpp>

#include "cli/commands.h"

namespace tern::cli {

// Adds the `demo` subcommand to `bench`; run() is called only if it was selected.
Command add_bench_demo_command(CLI::App& bench);

}  // namespace tern::cli
