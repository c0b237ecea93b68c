#include "cli/train_flags.h"

#include <algorithm>
#include <fstream>
#include <iterator>

#include "data/gcide.h"

namespace tern::cli {

void add_train_flags(CLI::App* app, TrainFlags* f) {
  app->add_option("--preset", f->preset, "Model preset (see `tern info`)")->capture_default_str();
  app->add_option("--steps", f->steps, "Optimizer steps")->capture_default_str();
  app->add_option("--batch", f->batch, "Sequences per micro-batch")->capture_default_str();
  app->add_option("--seq", f->seq, "Tokens per sequence")->capture_default_str();
  app->add_option("--grad-accum", f->grad_accum, "Micro-batches per step")->capture_default_str();
  app->add_option("--lr", f->lr, "Peak learning rate")->capture_default_str();
  app->add_option("--min-lr", f->min_lr, "Final learning rate")->capture_default_str();
  app->add_option("--warmup", f->warmup, "Warmup steps (capped at --steps)")->capture_default_str();
  app->add_option("--schedule", f->schedule, "constant | cosine | wsd")->capture_default_str();
  app->add_option("--weight-decay", f->weight_decay, "AdamW decoupled weight decay")
      ->capture_default_str();
  app->add_option("--clip", f->clip, "Global gradient-norm clip (0 = off)")->capture_default_str();
  app->add_option("--eval-every", f->eval_every, "Validation interval in steps")
      ->capture_default_str();
  app->add_option("--eval-batches", f->eval_batches, "Validation batches per evaluation")
      ->capture_default_str();
  app->add_option("--seed", f->seed, "Seed for init and data order")->capture_default_str();
  app->add_flag("--json", f->json, "Progress as JSON lines");
}

Result<PretrainOptions> make_pretrain_options(const TrainFlags& f) {
  PretrainOptions o;
  TERN_ASSIGN_OR_RETURN(o.model, preset_config(f.preset));
  o.model.max_seq = std::max(o.model.max_seq, f.seq);
  o.train.steps = f.steps;
  o.train.batch = f.batch;
  o.train.seq = f.seq;
  o.train.grad_accum = f.grad_accum;
  o.train.clip = f.clip;
  o.train.eval_batches = f.eval_batches;
  o.train.seed = f.seed;
  TERN_ASSIGN_OR_RETURN(o.train.schedule.kind, parse_schedule_kind(f.schedule));
  o.train.schedule.peak_lr = f.lr;
  o.train.schedule.min_lr = f.min_lr;
  o.train.schedule.warmup_steps = std::min(f.warmup, f.steps);
  o.train.adamw.weight_decay = f.weight_decay;
  o.eval_every = f.eval_every;
  o.init_seed = f.seed;
  o.json = f.json;
  TERN_RETURN_IF_ERROR(o.train.validate());
  return o;
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
