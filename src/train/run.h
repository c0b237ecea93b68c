// A whole training run around a Trainer: periodic validation, checkpoints
// every N steps and on Ctrl-C (SIGINT/SIGTERM), resume from a checkpoint,
// progress output (a line per interval with step, loss, tokens/s and ETA, or
// JSON lines for machines), a JSONL metrics log and a self-contained HTML report.
//
// Resuming restores parameters, optimizer moments, the step and the data RNG,
// so the continued run follows exactly the trajectory of an uninterrupted one
// (same losses, same final bits), also after a kill -9 between checkpoints:
// steps after the last checkpoint are simply recomputed. The metrics log is
// rewritten on resume to the lines up to the checkpoint's step, so it too ends
// up identical.
//
// Used by `tern pretrain`, `tern finetune` and `tern demo`. Single-threaded
// driver (kernels fan out on the thread pool); installs a process-wide signal
// handler for the duration of run_training().
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"
#include "data/token_dataset.h"
#include "model/bitnet.h"
#include "train/report.h"
#include "train/trainer.h"

namespace tern {

struct RunOptions {
  int64_t eval_every = 50;         // validation interval in steps (also at step 0 and the end)
  std::string checkpoint_path;     // empty: no checkpoints
  int64_t checkpoint_every = 0;    // 0: only at the end and on interrupt
  bool resume = false;             // continue from checkpoint_path (an error if it is missing)
  int64_t stop_at_step = 0;        // > 0: stop there as if interrupted (time-sliced training)
  std::string metrics_path;        // JSONL metrics log; empty: none
  std::string report_path;         // HTML report; empty: none
  int64_t log_every = 10;          // progress line interval
  bool json = false;               // progress as JSON lines on stdout
  bool quiet = false;              // no progress output
  std::string title = "tern run";  // report title
  // Shown in the report's configuration table.
  std::vector<std::pair<std::string, std::string>> config_rows;
};

struct EvalPoint {
  int64_t step = 0;
  float val_loss = 0.0f;
};

struct RunResult {
  std::vector<EvalPoint> curve;  // validation loss, step 0 (or the resume step) to the end
  std::vector<StepStats> steps;  // every optimizer step of this process
  int64_t steps_done = 0;
  int64_t resumed_from = 0;  // 0 unless resumed
  bool interrupted = false;  // stopped early (signal or stop_at_step); checkpointed if configured
  double seconds = 0.0;
  double tokens_per_second = 0.0;
  int64_t peak_rss_bytes = 0;
};

// Runs (or resumes) `trainer` to trainer.config().steps. The model must be the
// one the trainer was built over. Errors: unreadable/mismatched checkpoint,
// unwritable checkpoint/metrics/report paths (named in the message).
Result<RunResult> run_training(BitNetModel& model, Trainer& trainer, const RunOptions& options);

// The report of a finished run: summary, loss/validation/throughput charts and
// configuration. Callers may add sections before writing it.
RunReport make_run_report(const RunResult& result, const RunOptions& options);

}  // namespace tern
