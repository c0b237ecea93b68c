// `tern pretrain`: train a ternary model from scratch on byte-level text.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "cli/train_flags.h"
#include "data/gcide.h"

namespace tern::cli {

namespace {

struct PretrainArgs {
  TrainFlags train;
  std::string text_file;
  std::string gcide_dir = kDefaultGcideDir;
  size_t max_bytes = 0;
};

}  // namespace

Command add_pretrain_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "pretrain", "Pretrain a ternary model from scratch on text (byte-level tokens)");
  auto args = std::make_shared<PretrainArgs>();
  add_train_flags(app, &args->train);
  app->add_option("--text", args->text_file, "Training text file (default: the GCIDE dictionary)");
  app->add_option("--gcide-dir", args->gcide_dir, "Where dict-gcide installed its files")
      ->capture_default_str();
  app->add_option("--max-bytes", args->max_bytes, "Use at most this many bytes of text (0 = all)")
      ->capture_default_str();
  return {app, [args]() -> int {
            Result<PretrainOptions> options = make_pretrain_options(args->train);
            if (!options.ok()) {
              std::fprintf(stderr, "tern pretrain: %s\n", options.status().message().c_str());
              return 1;
            }
            Result<std::string> text =
                load_corpus(args->text_file, args->gcide_dir, args->max_bytes);
            if (!text.ok()) {
              std::fprintf(stderr, "tern pretrain: %s\n", text.status().message().c_str());
              return 1;
            }
            Result<TokenDataset> data = TokenDataset::from_bytes(text.value(), 0.05);
            if (!data.ok()) {
              std::fprintf(stderr, "tern pretrain: %s\n", data.status().message().c_str());
              return 1;
            }
            Result<PretrainSummary> summary = run_pretraining(options.value(), data.value());
            if (!summary.ok()) {
              std::fprintf(stderr, "tern pretrain: %s\n", summary.status().message().c_str());
              return 1;
            }
            return 0;
          }};
}

}  // namespace tern::cli
