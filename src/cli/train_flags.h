// Training flags shared by `tern pretrain` and `tern demo`, and the corpus
// loader they both use (a text file, or the GCIDE dictionary from dict-gcide).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "core/status.h"
#include "train/pretrain_run.h"

namespace tern::cli {

struct TrainFlags {
  std::string preset = "tiny";
  int64_t steps = 300;
  int64_t batch = 8;
  int64_t seq = 128;
  int64_t grad_accum = 1;
  double lr = 3e-3;
  double min_lr = 3e-4;
  int64_t warmup = 20;
  std::string schedule = "cosine";
  double weight_decay = 0.1;
  double clip = 1.0;
  int64_t eval_every = 50;
  int64_t eval_batches = 8;
  uint64_t seed = 1;
  bool json = false;
};

void add_train_flags(CLI::App* app, TrainFlags* flags);
// Turns flags into options; errors name the bad flag value.
Result<PretrainOptions> make_pretrain_options(const TrainFlags& flags);

// Byte-level text: the file's bytes, or the GCIDE corpus (first max_bytes).
Result<std::string> load_corpus(const std::string& text_file, const std::string& gcide_dir,
                                size_t max_bytes);

}  // namespace tern::cli
