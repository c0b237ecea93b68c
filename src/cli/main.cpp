// tern: train and fine-tune 1.58-bit (BitNet b1.58) language models on the
// hardware people already own.
#include <CLI/CLI.hpp>
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
      tern::cli::add_demo_command(app),
      tern::cli::add_pretrain_command(app),
      tern::cli::add_info_command(app),
  };
  CLI11_PARSE(app, argc, argv);
  if (threads > 0) tern::set_num_threads(threads);
  for (const tern::cli::Command& command : commands) {
    if (command.app->parsed()) return command.run();
  }
  return 1;
}
