// A whole pretraining run with progress output: builds the model from a preset,
// trains it on a TokenDataset, evaluates at fixed intervals, and reports the
// validation curve. Shared by `tern pretrain` and `tern demo`.
// Writes progress to stdout (or JSON lines with json = true). Single-threaded driver.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/token_dataset.h"
#include "model/bitnet.h"
#include "train/trainer.h"

namespace tern {

struct PretrainOptions {
  ModelConfig model;
  TrainConfig train;
  int64_t eval_every = 50;
  uint64_t init_seed = 1;
  bool json = false;   // one JSON object per line instead of a table
  bool quiet = false;  // no per-step output at all
};

struct EvalPoint {
  int64_t step = 0;
  float val_loss = 0.0f;
};

struct PretrainSummary {
  std::vector<EvalPoint> curve;  // includes step 0 and the last step
  double seconds = 0.0;
  double tokens_per_second = 0.0;
};

// Runs the full training; `model_out` (optional) receives the trained model.
Result<PretrainSummary> run_pretraining(const PretrainOptions& options, const TokenDataset& data,
                                        std::optional<BitNetModel>* model_out = nullptr);

// Continues byte-level text from `prompt` by sampling at `temperature` (0 =
// greedy), re-running the model over the last max_seq bytes for each new byte.
std::string sample_bytes(BitNetModel& model, const std::string& prompt, int64_t count,
                         float temperature, uint64_t seed);

}  // namespace tern
