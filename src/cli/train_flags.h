// Flags shared by the training commands (`tern pretrain`, `tern finetune`):
// batch shape, optimizer and schedule, run length (steps or epochs), and the
// run's files (checkpoint, metrics log, report); plus the byte-level corpus
// loader `tern pretrain --text` and `tern tokenizer train` use.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "core/status.h"
#include "model/bitnet.h"
#include "train/run.h"
#include "train/trainer.h"

namespace tern::cli {

struct TrainFlags {
  int64_t steps = 300;
  double epochs = 0.0;  // > 0: steps = epochs × training tokens / tokens per step
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
  std::string ternary_backward = "exact";  // exact | int8 (TernaryBackward)
};

struct RunFlags {
  std::string checkpoint;
  int64_t checkpoint_every = 0;
  bool resume = false;
  int64_t stop_at = 0;
  std::string metrics;
  std::string report;
  int64_t log_every = 10;
};

void add_train_flags(CLI::App* app, TrainFlags* flags);
// Model settings chosen by flags (--ternary-backward).
void apply_model_flags(const TrainFlags& flags, BitNetModel& model);

// `--activations auto|cache|recompute` of the LoRA commands (ActivationMemory);
// auto caches when the cached workspace fits in a quarter of physical memory.
void add_activations_flag(CLI::App* app, std::string* choice);
void apply_activations_flag(const std::string& choice, BitNetModel& model);
// "cache (N MB)" or "recompute (N MB)": what the last forward kept, for reports.
std::string describe_activations(const BitNetModel& model);
void add_run_flags(CLI::App* app, RunFlags* flags);

// The trainer configuration; with --epochs, steps cover that many passes over
// `train_tokens`. Errors name the bad flag value.
Result<TrainConfig> make_train_config(const TrainFlags& flags, int64_t train_tokens);
// Run options; without --report / --metrics, a run that saves `output` writes
// "<output minus .gguf>.report.html" and ".metrics.jsonl" beside it.
RunOptions make_run_options(const TrainFlags& train, const RunFlags& run,
                            const std::string& output);

// Tells the user where an interrupted run stopped and how to continue it;
// returns the exit code of an interrupted command (130, as after Ctrl-C).
int report_interrupted(const char* command, const RunResult& result, const RunFlags& run);

// Byte-level text: the file's bytes, or the GCIDE corpus (first max_bytes).
Result<std::string> load_corpus(const std::string& text_file, const std::string& gcide_dir,
                                size_t max_bytes);

}  // namespace tern::cli
