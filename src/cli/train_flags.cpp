#include "cli/train_flags.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>

#include <unistd.h>

#include "core/check.h"
#include "data/gcide.h"

namespace tern::cli {

void add_train_flags(CLI::App* app, TrainFlags* f) {
  app->add_option("--steps", f->steps, "Optimizer steps")->capture_default_str();
  app->add_option("--epochs", f->epochs,
                  "Passes over the training tokens (overrides --steps when > 0)");
  app->add_option("--batch", f->batch, "Sequences per micro-batch")->capture_default_str();
  app->add_option("--seq", f->seq, "Tokens per sequence")->capture_default_str();
  app->add_option("--grad-accum", f->grad_accum, "Micro-batches per step")->capture_default_str();
  app->add_option("--lr", f->lr, "Peak learning rate")->capture_default_str();
  app->add_option("--min-lr", f->min_lr, "Final learning rate")->capture_default_str();
  app->add_option("--warmup", f->warmup, "Warmup steps (capped at the run's steps)")
      ->capture_default_str();
  app->add_option("--schedule", f->schedule, "constant | cosine | wsd")->capture_default_str();
  app->add_option("--weight-decay", f->weight_decay, "AdamW decoupled weight decay")
      ->capture_default_str();
  app->add_option("--clip", f->clip, "Global gradient-norm clip (0 = off)")->capture_default_str();
  app->add_option("--eval-every", f->eval_every, "Validation interval in steps")
      ->capture_default_str();
  app->add_option("--eval-batches", f->eval_batches, "Validation batches per evaluation")
      ->capture_default_str();
  app->add_option("--seed", f->seed, "Seed for initialization and data order")
      ->capture_default_str();
  app->add_option("--ternary-backward", f->ternary_backward,
                  "Input gradient through ternary linears: exact (fp32) or int8 (dY quantized "
                  "per token, ~3x faster kernels)")
      ->check(CLI::IsMember({"exact", "int8"}))
      ->capture_default_str();
  app->add_flag("--json", f->json, "Progress as JSON lines");
}

void apply_model_flags(const TrainFlags& flags, BitNetModel& model) {
  model.set_ternary_backward(flags.ternary_backward == "int8" ? TernaryBackward::kInt8
                                                              : TernaryBackward::kExact);
}

void add_activations_flag(CLI::App* app, std::string* choice) {
  app->add_option("--activations", *choice,
                  "Activation memory: cache (fastest), recompute (about one extra forward pass, "
                  "a third of the memory; same bits) or auto (cache when it fits in a quarter of "
                  "physical memory)")
      ->check(CLI::IsMember({"auto", "cache", "recompute"}))
      ->capture_default_str();
}

void apply_activations_flag(const std::string& choice, BitNetModel& model) {
  if (choice == "cache") {
    model.set_activation_memory(ActivationMemory::kCache);
  } else if (choice == "recompute") {
    model.set_activation_memory(ActivationMemory::kRecompute);
  } else {
    TERN_CHECK(choice == "auto", "--activations " + choice);  // CLI::IsMember checked it
    const int64_t pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    // Without a figure from the OS, assume a 4 GiB device.
    const int64_t physical = pages > 0 && page > 0 ? pages * page : int64_t{4} << 30;
    model.set_activation_memory(ActivationMemory::kAuto, physical / 4);
  }
}

std::string describe_activations(const BitNetModel& model) {
  const char* mode =
      model.activation_memory_in_use() == ActivationMemory::kCache ? "cache" : "recompute";
  char text[64];
  std::snprintf(text, sizeof text, "%s (%.1f MB)", mode,
                static_cast<double>(model.memory_use().workspace_bytes) / 1e6);
  return text;
}

void add_run_flags(CLI::App* app, RunFlags* f) {
  app->add_option("--checkpoint", f->checkpoint,
                  "Checkpoint file: written every --checkpoint-every steps, at the end and on "
                  "Ctrl-C");
  app->add_option("--checkpoint-every", f->checkpoint_every, "Checkpoint interval (0 = end only)")
      ->capture_default_str();
  app->add_flag("--resume", f->resume, "Continue from --checkpoint (bit-identical trajectory)");
  app->add_option("--stop-at", f->stop_at,
                  "Stop after this step as if interrupted (checkpoint, then --resume later)");
  app->add_option("--metrics", f->metrics,
                  "JSONL metrics log, one line per step and evaluation (default: beside the "
                  "output, <output>.metrics.jsonl)");
  app->add_option("--report", f->report,
                  "Self-contained HTML report of the run (default: <output>.report.html)");
  app->add_option("--log-every", f->log_every, "Progress line interval in steps")
      ->capture_default_str();
}

Result<TrainConfig> make_train_config(const TrainFlags& f, int64_t train_tokens) {
  TrainConfig c;
  c.steps = f.steps;
  if (f.epochs < 0.0 || !std::isfinite(f.epochs)) {
    return Status::Error("--epochs " + std::to_string(f.epochs) + " must be ≥ 0");
  }
  if (f.epochs > 0.0) {
    // In double: the flags are unchecked here, so their product may not fit int64.
    const double per_step =
        std::max(1.0, static_cast<double>(f.batch) * static_cast<double>(f.seq) *
                          static_cast<double>(f.grad_accum));
    const double steps = std::ceil(f.epochs * static_cast<double>(train_tokens) / per_step);
    if (!(steps <= 1e12)) {
      char message[128];
      std::snprintf(message, sizeof message, "--epochs %g asks for %g steps (at most 1e12)",
                    f.epochs, steps);
      return Status::Error(message);
    }
    c.steps = std::max<int64_t>(1, static_cast<int64_t>(steps));
  }
  c.batch = f.batch;
  c.seq = f.seq;
  c.grad_accum = f.grad_accum;
  c.clip = f.clip;
  c.eval_batches = f.eval_batches;
  c.seed = f.seed;
  TERN_ASSIGN_OR_RETURN(c.schedule.kind, parse_schedule_kind(f.schedule));
  c.schedule.peak_lr = f.lr;
  c.schedule.min_lr = f.min_lr;
  c.schedule.warmup_steps = std::min(f.warmup, c.steps);
  c.adamw.weight_decay = f.weight_decay;
  TERN_RETURN_IF_ERROR(c.validate());
  return c;
}

RunOptions make_run_options(const TrainFlags& t, const RunFlags& r, const std::string& output) {
  RunOptions o;
  o.eval_every = t.eval_every;
  o.json = t.json;
  o.checkpoint_path = r.checkpoint;
  o.checkpoint_every = r.checkpoint_every;
  o.resume = r.resume;
  o.stop_at_step = r.stop_at;
  o.metrics_path = r.metrics;
  o.report_path = r.report;
  if (!output.empty()) {
    const std::string stem =
        output.ends_with(".gguf") ? output.substr(0, output.size() - 5) : output;
    if (o.metrics_path.empty()) o.metrics_path = stem + ".metrics.jsonl";
    if (o.report_path.empty()) o.report_path = stem + ".report.html";
  }
  o.log_every = r.log_every;
  return o;
}

int report_interrupted(const char* command, const RunResult& result, const RunFlags& run) {
  std::fprintf(stderr, "tern %s: interrupted at step %lld%s\n", command,
               static_cast<long long>(result.steps_done),
               run.checkpoint.empty() ? " (no --checkpoint, progress is lost)"
                                      : "; checkpoint saved, continue with --resume");
  return 130;
}

Result<std::string> load_corpus(const std::string& text_file, const std::string& gcide_dir,
                                size_t max_bytes) {
  if (text_file.empty()) return gcide_corpus(gcide_dir, max_bytes);
  std::ifstream in(text_file, std::ios::binary);
  if (!in) return Status::Error("read corpus: cannot open '" + text_file + "'");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (text.empty()) return Status::Error("read corpus: '" + text_file + "' is empty");
  if (max_bytes > 0 && text.size() > max_bytes) text.resize(max_bytes);
  return text;
}

}  // namespace tern::cli
