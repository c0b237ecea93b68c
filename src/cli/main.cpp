// tern: train and fine-tune 1.58-bit (BitNet b1.58) language models on the
// hardware people already own.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/thread_pool.h"

int main(int argc, char** argv) {
  CLI::App app{
      "tern: train and fine-tune 1.58-bit (BitNet b1.58) language models on your own hardware.",
      "tern"};
  app.require_subcommand(1);
  int threads = 0;
  app.add_option("--threads", threads, "Worker threads for kernels (default: all cores)")
      ->check(CLI::Range(1, 1024));

  std::vector<tern::cli::Command> commands = {
      tern::cli::add_demo_command(app),        tern::cli::add_data_command(app),
      tern::cli::add_pretrain_command(app),    tern::cli::add_finetune_command(app),
      tern::cli::add_generate_command(app),    tern::cli::add_eval_command(app),
      tern::cli::add_info_command(app),        tern::cli::add_tokenizer_command(app),
      tern::cli::add_convert_command(app),     tern::cli::add_bench_command(app),
      tern::cli::add_keygen_command(app),      tern::cli::add_ledger_command(app),
      tern::cli::add_coordinator_command(app), tern::cli::add_join_command(app),
  };
  // CLI11 only says "a subcommand is required" for a misspelt one; name it instead.
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--threads") {
      ++i;
      continue;
    }
    if (arg.starts_with("-")) continue;
    bool known = false;
    std::string names;
    for (const tern::cli::Command& command : commands) {
      known |= command.app->get_name() == arg;
      names += (names.empty() ? "" : ", ") + command.app->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "tern: unknown subcommand '%s' (expected one of: %s)\n", arg.c_str(),
                   names.c_str());
      return 1;
    }
    break;
  }
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) tern::set_num_threads(threads);
  for (const tern::cli::Command& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  return 1;
}
