// The tern subcommands. Each registers itself on the CLI11 app and, when
// selected, runs and returns a process exit code (0 success, 1 failure with a
// message on stderr, written by fail()). Bad flags are reported by CLI11 before
// anything runs.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string_view>

#include "core/status.h"

namespace tern::cli {

// A registered subcommand: run() is called only if the user selected it.
struct Command {
  CLI::App* app;
  std::function<int()> run;
};

// Prints "tern <command>: <message>" to stderr and returns 1, the failure exit code:
// `return fail("data prepare", status);`.
int fail(std::string_view command, const Status& status);

Command add_info_command(CLI::App& root);
Command add_pretrain_command(CLI::App& root);
Command add_demo_command(CLI::App& root);
Command add_tokenizer_command(CLI::App& root);
Command add_convert_command(CLI::App& root);
Command add_data_command(CLI::App& root);
Command add_finetune_command(CLI::App& root);
Command add_generate_command(CLI::App& root);
Command add_eval_command(CLI::App& root);
Command add_bench_command(CLI::App& root);
Command add_keygen_command(CLI::App& root);
Command add_ledger_command(CLI::App& root);
Command add_coordinator_command(CLI::App& root);
Command add_join_command(CLI::App& root);

}  // namespace tern::cli
