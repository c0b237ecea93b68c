// Trainer: the single-device training loop (full pretraining or LoRA).
//
// One step = zero grads, `grad_accum` micro-batches of forward + backward (each
// weighted 1/grad_accum), global-norm clipping, AdamW at the scheduled learning
// rate. Batches come from a TokenDataset with a seeded Rng, so a run is a pure
// function of (model init, data, config): same inputs, same bits. Validation
// uses the dataset's fixed batches. Drives one model from one thread.
#pragma once

#include <cstdint>
#include <vector>

#include "core/rng.h"
#include "core/status.h"
#include "data/token_dataset.h"
#include "model/bitnet.h"
#include "optim/adamw.h"
#include "optim/schedule.h"

namespace tern {

struct TrainConfig {
  int64_t steps = 300;
  int64_t batch = 8;
  int64_t seq = 128;
  int64_t grad_accum = 1;
  double clip = 1.0;  // ≤ 0 disables clipping
  int64_t eval_batches = 8;
  uint64_t seed = 1;
  LrSchedule schedule;  // total_steps is taken from `steps`
  AdamWConfig adamw;

  Status validate() const;
};

struct StepStats {
  int64_t step = 0;   // 1-based count of optimizer steps done
  float loss = 0.0f;  // mean training loss over the step's micro-batches
  double lr = 0.0;
  double grad_norm = 0.0;  // before clipping
  int64_t tokens = 0;      // tokens processed in this step
};

class Trainer {
 public:
  // model and data must outlive the trainer; checks config against both.
  static Result<Trainer> create(BitNetModel& model, const TokenDataset& data,
                                const TrainConfig& config);

  StepStats step();
  // Mean loss over the fixed validation batches.
  float evaluate();
  int64_t steps_done() const { return steps_done_; }
  const TrainConfig& config() const { return config_; }

  // What a checkpoint must hold besides the model's parameters to continue
  // bit-identically: the step count, the optimizer moments and the data RNG.
  AdamW& optimizer() { return adamw_; }
  const AdamW& optimizer() const { return adamw_; }
  Rng::State rng_state() const { return rng_.state(); }
  void restore(int64_t steps_done, const Rng::State& rng_state);

 private:
  Trainer(BitNetModel& model, const TokenDataset& data, const TrainConfig& config);

  BitNetModel* model_;
  const TokenDataset* data_;
  TrainConfig config_;
  AdamW adamw_;
  Rng rng_;
  int64_t steps_done_ = 0;
  std::vector<int32_t> tokens_;
  std::vector<int32_t> labels_;
};

}  // namespace tern
