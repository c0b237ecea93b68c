// Simulated data-parallel training: N workers in one process, each with its own
// model replica, optimizer state and data shard, exchanging what a swarm member
// would send. Used by `tern bench demo` and the determinism tests.
//
// - AdamW: the workers' gradients are averaged in worker order (a fixed-order
//   fp32 all-reduce), clipped, and every worker applies AdamW to its replica.
//   Each worker "sends" its dense fp32 gradient: 4 bytes per parameter.
// - DeMo: each worker clips its own gradient, encodes a DemoUpdate and
//   serializes it with the wire codec; every worker decodes all N payloads,
//   received in a seeded, per-worker shuffled order, sorts them into canonical
//   order (by the id of the first batch the sender trained, i.e. by worker) and
//   applies them. With `overlap`, the one-step-delayed mode of demo.h runs: the
//   gradient of step t+1 is computed on the look-ahead while the aggregate of
//   step t is in flight, and that aggregate is applied before step t+2.
// All replicas start from the same seeded init; at the end every replica's
// parameters are hashed and compared. Worker i draws its batches with its own
// Rng from shard i. Runs on the calling thread (kernels use the default pool).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/token_dataset.h"
#include "model/config.h"
#include "optim/adamw.h"
#include "optim/demo.h"
#include "optim/schedule.h"

namespace tern {

enum class ParallelOptimizer { kAdamW, kDemo };

struct DataParallelConfig {
  ParallelOptimizer optimizer = ParallelOptimizer::kDemo;
  int64_t steps = 200;
  int64_t batch = 8;  // sequences per worker per step
  int64_t seq = 128;
  double clip = 1.0;    // ≤ 0 disables clipping
  LrSchedule schedule;  // total_steps is taken from `steps`
  AdamWConfig adamw;
  DemoConfig demo;
  bool overlap = false;    // DeMo only
  int64_t eval_every = 0;  // 0: evaluate at the start and the end only
  int64_t eval_batches = 8;
  uint64_t seed = 1;

  Status validate() const;
};

struct DataParallelResult {
  int64_t workers = 0;
  int64_t params = 0;               // trainable parameters per replica
  std::vector<int64_t> eval_steps;  // steps at which val_loss was measured
  std::vector<float> val_loss;
  float initial_val_loss = 0.0f;
  float final_val_loss = 0.0f;
  float final_train_loss = 0.0f;        // mean over workers, last step
  double payload_bytes_per_step = 0.0;  // per worker, mean over steps
  bool replicas_identical = false;
  std::string weight_hash;  // BLAKE2b-256 hex of replica 0's parameters
  std::string demo_plan;    // DeMo: DemoPlan::describe() (blocks, density)
  double seconds = 0.0;
};

struct DataParallelProgress {
  int64_t step = 0;
  float train_loss = 0.0f;
  double payload_bytes = 0.0;  // mean over workers for this step
};

// shards: one dataset per worker (its training split is the worker's shard);
// validation uses shards[0]'s validation split. The model is `config` with
// full training from RandomInitSource(seed).
Result<DataParallelResult> train_data_parallel(
    const ModelConfig& config, std::span<const TokenDataset> shards,
    const DataParallelConfig& parallel,
    const std::function<void(const DataParallelProgress&)>& progress = {});

}  // namespace tern
