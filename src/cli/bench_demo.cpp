// `tern bench demo [--json] [--quick] [--workers N] [--steps N] ...`
//
// Data: GCIDE definitions (the demo corpus), a SentencePiece vocabulary trained
// on them, the token stream split into a validation tail and N training shards,
// one per worker (contiguous, or interleaved with --interleaved-shards). Model: the `tiny` preset
// (or `small` or `medium` with --preset) with that vocabulary. Runs, all for the same steps ×
// workers × batch × seq tokens:
//   adamw          dense gradients averaged over the workers (4 bytes/param)
//   demo k, values DeMo, chunk 64, k ∈ {4, 8, 32}, values ∈ {sign, fp16}
// Summary keys (top level of the JSON):
//   bytes_per_param_step        DeMo k=4 sign: mean encoded update size (every
//                               header and hash included) / parameters
//   dense_bytes_per_param_step  AdamW: fp32 gradient per node = 4
//   loss_adamw, loss_demo       final validation loss of AdamW and of DeMo k=4 sign
//   loss_gap                    loss_demo / loss_adamw − 1
//   adamw_val_drop              1 − loss_adamw / AdamW's initial validation loss
// With --seeds N every run is repeated for seeds seed … seed + N − 1 (init, data
// order and arrival order; the corpus and vocabulary stay), the losses above are
// means over the seeds, and loss_gap_per_seed lists each seed's own gap: one
// seed's gap moves by about ±1.5 points with the seed (BENCHMARKS.md).
#include "cli/bench_demo.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "data/gcide.h"
#include "model/config.h"
#include "tokenizer/spm_trainer.h"
#include "tokenizer/tokenizer.h"
#include "train/data_parallel.h"

namespace tern::cli {
namespace bench_demo_cmd {
namespace {

struct Options {
  bool json = false;
  bool quick = false;
  int workers = 4;
  int64_t steps = 600;
  int64_t batch = 4;
  int64_t seq = 128;
  std::string preset = "tiny";
  int vocab = 4096;
  size_t corpus_bytes = 4 << 20;
  double adamw_lr = 1e-2;
  double demo_lr = 1e-2;
  double demo_beta = 0.999;
  double demo_weight_decay = 0.0;
  double min_lr_fraction = 0.1;  // cosine floor as a fraction of the peak
  int64_t warmup = 20;
  uint64_t seed = 1;
  int seeds = 1;
  bool interleaved = false;
  std::string gcide_dir = kDefaultGcideDir;
  std::vector<std::string> only;  // run names to keep (default: all)
};

struct Run {
  std::string name;
  ParallelOptimizer optimizer = ParallelOptimizer::kAdamW;
  int64_t topk = 0;
  DemoValues values = DemoValues::kSign;
};

// The corpus as tokens: validation tail (5%) and `workers` disjoint training
// shards. Contiguous (the default): worker w gets the w-th part of the stream,
// so with the alphabetical GCIDE each worker keeps its own stretch of the
// dictionary for the whole run. Interleaved: whole lines are gathered into
// chunks of at least kInterleaveChunkTokens tokens, dealt to the workers in
// turn, so every shard samples the same distribution, as the swarm's per-round
// batch assignment does (swarm/assignment.h).
constexpr int64_t kInterleaveChunkTokens = 2048;

struct Corpus {
  std::vector<TokenDataset> shards;
  int64_t vocab = 0;
  int64_t tokens = 0;  // the whole stream: validation and every shard
};

Result<Corpus> make_shards(const Options& o) {
  TERN_ASSIGN_OR_RETURN(std::string text, gcide_corpus(o.gcide_dir, o.corpus_bytes));
  TERN_ASSIGN_OR_RETURN(Vocab vocab, train_vocab_on_documents({text}, o.vocab));
  TERN_ASSIGN_OR_RETURN(Tokenizer tokenizer, Tokenizer::create(std::move(vocab)));
  std::vector<int32_t> tokens;
  std::vector<size_t> line_starts;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    line_starts.push_back(tokens.size());
    const std::vector<int32_t> ids = tokenizer.encode(line + "\n", false, false);
    tokens.insert(tokens.end(), ids.begin(), ids.end());
  }
  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t val_begin = n - n / 20;
  std::vector<int32_t> val(tokens.begin() + val_begin, tokens.end());
  std::vector<std::vector<int32_t>> parts(static_cast<size_t>(o.workers));
  if (o.interleaved) {
    // Chunks end at a line start once they hold enough tokens; the last one
    // ends at the validation split, which may cut a line.
    const auto split = static_cast<size_t>(val_begin);
    size_t chunk_begin = 0, dealt_to = 0;
    auto deal = [&](size_t end) {
      std::vector<int32_t>& part = parts[dealt_to];
      part.insert(part.end(), tokens.begin() + static_cast<int64_t>(chunk_begin),
                  tokens.begin() + static_cast<int64_t>(end));
      chunk_begin = end;
      dealt_to = (dealt_to + 1) % parts.size();
    };
    for (size_t start : line_starts) {
      if (start >= split) break;
      if (start - chunk_begin >= static_cast<size_t>(kInterleaveChunkTokens)) deal(start);
    }
    if (split > chunk_begin) deal(split);
  } else {
    const int64_t per_shard = val_begin / o.workers;
    for (int w = 0; w < o.workers; ++w) {
      parts[static_cast<size_t>(w)].assign(tokens.begin() + w * per_shard,
                                           tokens.begin() + (w + 1) * per_shard);
    }
  }
  Corpus corpus;
  for (std::vector<int32_t>& part : parts) {
    TERN_ASSIGN_OR_RETURN(
        TokenDataset d, TokenDataset::from_streams(TokenStream::owned(std::move(part)),
                                                   TokenStream::owned(val), tokenizer.n_tokens()));
    corpus.shards.push_back(std::move(d));
  }
  corpus.vocab = tokenizer.n_tokens();
  corpus.tokens = n;
  return corpus;
}

int run_bench(Options o) {
  if (o.quick) {
    o.steps = 8;
    o.batch = 1;
    o.seq = 32;
    o.vocab = 400;
    o.corpus_bytes = 128 << 10;
    o.warmup = 2;
  }
  Result<Corpus> corpus = make_shards(o);
  if (!corpus.ok()) return fail("bench demo", corpus.status());
  const std::vector<TokenDataset>& shards = corpus.value().shards;
  const int64_t vocab = corpus.value().vocab;
  int64_t train_tokens = 0;
  for (const TokenDataset& shard : shards) train_tokens += shard.train_tokens();
  Result<ModelConfig> preset = preset_config(o.preset);
  if (!preset.ok()) return fail("bench demo", preset.status());
  ModelConfig config = preset.value();
  config.vocab = vocab;

  std::vector<Run> runs;
  auto wanted = [&](const std::string& name) {
    return o.only.empty() || std::find(o.only.begin(), o.only.end(), name) != o.only.end();
  };
  if (wanted("adamw")) runs.push_back({"adamw", ParallelOptimizer::kAdamW, 0, DemoValues::kSign});
  for (DemoValues values : {DemoValues::kSign, DemoValues::kFp16}) {
    for (int64_t k : {4, 8, 32}) {
      const std::string name = "k" + std::to_string(k) + "-" + demo_values_name(values);
      if (wanted(name)) runs.push_back({name, ParallelOptimizer::kDemo, k, values});
    }
  }

  nlohmann::json table = nlohmann::json::array();
  nlohmann::json plan_lines = nlohmann::json::array();
  // Final (and AdamW's initial) validation losses per seed, for the summary.
  std::vector<double> adamw_final, adamw_initial, demo_final;
  double bytes_demo = 0.0;
  int64_t params = 0;
  bool all_identical = true;
  if (!o.json) {
    std::printf(
        "tern bench demo: %d workers, %s preset (vocab %lld), %lld steps of %lld x %lld "
        "tokens per worker\n",
        o.workers, o.preset.c_str(), static_cast<long long>(vocab), static_cast<long long>(o.steps),
        static_cast<long long>(o.batch), static_cast<long long>(o.seq));
  }
  for (const Run& run : runs) {
    for (int s = 0; s < o.seeds; ++s) {
      const uint64_t seed = o.seed + static_cast<uint64_t>(s);
      DataParallelConfig c;
      c.optimizer = run.optimizer;
      c.steps = o.steps;
      c.batch = o.batch;
      c.seq = o.seq;
      c.seed = seed;
      c.eval_batches = o.quick ? 1 : 16;
      c.schedule.kind = ScheduleKind::kCosine;
      c.schedule.warmup_steps = o.warmup;
      c.adamw.weight_decay = 0.0;
      const bool adamw = run.optimizer == ParallelOptimizer::kAdamW;
      c.schedule.peak_lr = adamw ? o.adamw_lr : o.demo_lr;
      c.schedule.min_lr = c.schedule.peak_lr * o.min_lr_fraction;
      c.demo.topk = std::max<int64_t>(run.topk, 1);
      c.demo.values = run.values;
      c.demo.beta = o.demo_beta;
      c.demo.weight_decay = o.demo_weight_decay;
      Result<DataParallelResult> r = train_data_parallel(config, shards, c);
      if (!r.ok()) return fail("bench demo", r.status());
      const DataParallelResult& res = r.value();
      params = res.params;
      all_identical &= res.replicas_identical;
      const double bytes_per_param = res.payload_bytes_per_step / static_cast<double>(res.params);
      nlohmann::json row = {{"run", run.name},
                            {"seed", seed},
                            {"optimizer", adamw ? "adamw" : "demo"},
                            {"lr", c.schedule.peak_lr},
                            {"initial_val_loss", res.initial_val_loss},
                            {"final_val_loss", res.final_val_loss},
                            {"final_train_loss", res.final_train_loss},
                            {"bytes_per_param_step", bytes_per_param},
                            {"payload_bytes_per_step", res.payload_bytes_per_step},
                            {"compression_vs_dense", 4.0 / bytes_per_param},
                            {"replicas_identical", res.replicas_identical},
                            {"weight_hash", res.weight_hash},
                            {"seconds", res.seconds}};
      if (!adamw) {
        row["topk"] = run.topk;
        row["values"] = demo_values_name(run.values);
        row["chunk"] = c.demo.chunk;
        row["beta"] = c.demo.beta;
        row["weight_decay"] = c.demo.weight_decay;
      }
      table.push_back(row);
      if (adamw) {
        adamw_final.push_back(res.final_val_loss);
        adamw_initial.push_back(res.initial_val_loss);
      }
      if (!adamw && plan_lines.empty()) {
        std::istringstream lines(res.demo_plan);
        for (std::string line; std::getline(lines, line);) plan_lines.push_back(line);
        if (!o.json)
          std::printf("DeMo blocks per tensor (chunk 64, top-%lld):\n%s",
                      static_cast<long long>(run.topk), res.demo_plan.c_str());
      }
      if (run.topk == 4 && run.values == DemoValues::kSign) {
        demo_final.push_back(res.final_val_loss);
        bytes_demo = bytes_per_param;  // the same for every seed: it depends on the plan
      }
      if (!o.json) {
        std::printf(
            "  %-18s seed %llu  lr %.0e  val loss %.4f -> %.4f  %9.1f B/step  %.5f B/param/step  "
            "x%.0f smaller  replicas %s  %.1f s\n",
            run.name.c_str(), static_cast<unsigned long long>(seed), c.schedule.peak_lr,
            res.initial_val_loss, res.final_val_loss, res.payload_bytes_per_step, bytes_per_param,
            4.0 / bytes_per_param, res.replicas_identical ? "identical" : "DIFFER", res.seconds);
        std::fflush(stdout);
      }
    }
  }
  // Without both runs of the summary (--runs), its keys are null.
  auto mean = [](const std::vector<double>& v) {
    return v.empty() ? 0.0
                     : std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
  };
  const double loss_adamw = mean(adamw_final), loss_demo = mean(demo_final);
  const bool summary = loss_adamw > 0.0 && loss_demo > 0.0;
  const nlohmann::json gap = summary ? nlohmann::json(loss_demo / loss_adamw - 1.0) : nullptr;
  nlohmann::json gap_per_seed = nullptr;
  if (summary) {
    gap_per_seed = nlohmann::json::array();
    for (size_t i = 0; i < demo_final.size(); ++i) {
      gap_per_seed.push_back(demo_final[i] / adamw_final[i] - 1.0);
    }
  }
  nlohmann::json out = {
      {"bench", "demo"},
      {"preset", o.preset},
      {"vocab", vocab},
      {"params", params},
      {"workers", o.workers},
      {"steps", o.steps},
      {"batch", o.batch},
      {"seq", o.seq},
      {"shards", o.interleaved ? "interleaved" : "contiguous"},
      {"corpus_tokens", corpus.value().tokens},
      {"train_tokens", train_tokens},
      {"val_tokens", shards.front().val_tokens()},
      {"threads", default_pool().num_threads()},
      {"seed", o.seed},
      {"seeds", o.seeds},
      {"runs", table},
      {"demo_plan", plan_lines},
      {"replicas_identical", all_identical},
      {"bytes_per_param_step", loss_demo > 0.0 ? nlohmann::json(bytes_demo) : nullptr},
      {"dense_bytes_per_param_step", 4.0},
      {"loss_adamw", loss_adamw > 0.0 ? nlohmann::json(loss_adamw) : nullptr},
      {"loss_demo", loss_demo > 0.0 ? nlohmann::json(loss_demo) : nullptr},
      {"loss_gap", gap},
      {"loss_gap_per_seed", gap_per_seed},
      {"adamw_val_drop",
       loss_adamw > 0.0 ? nlohmann::json(1.0 - loss_adamw / mean(adamw_initial)) : nullptr}};
  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
  } else if (summary) {
    std::printf(
        "DeMo k=4 sign: %.5f bytes/param/step (dense fp32: 4), loss gap %+.2f%% "
        "(AdamW val loss fell %.0f%%)%s\n",
        bytes_demo, 100.0 * gap.get<double>(), 100.0 * (1.0 - loss_adamw / mean(adamw_initial)),
        o.seeds > 1 ? ", means over the seeds" : "");
  }
  return all_identical ? 0 : 1;
}

}  // namespace
}  // namespace bench_demo_cmd

Command add_bench_demo_command(CLI::App& bench) {
  CLI::App* app = bench.add_subcommand(
      "demo",
      "Simulated multi-worker training of the tiny (or small, medium) preset: AdamW on all-reduced "
      "gradients vs DeMo (k = 4, 8, 32; sign and fp16 values): loss and bytes per parameter per "
      "step");
  auto o = std::make_shared<bench_demo_cmd::Options>();
  app->add_flag("--json", o->json, "Print one JSON object");
  app->add_flag("--quick", o->quick, "A few steps on a small corpus: a smoke test");
  app->add_option("--workers", o->workers, "Simulated workers (default 4)")
      ->check(CLI::Range(1, 64));
  app->add_option("--steps", o->steps, "Optimizer steps per run (default 600)")
      ->check(CLI::Range(1, 1000000));
  app->add_option("--batch", o->batch, "Sequences per worker per step (default 4)")
      ->check(CLI::Range(1, 4096));
  app->add_option("--seq", o->seq, "Tokens per sequence (default 128)")->check(CLI::Range(8, 256));
  app->add_option("--preset", o->preset,
                  "Model shape with the trained vocabulary: tiny (the issue's), small or "
                  "medium (default tiny)")
      ->check(CLI::IsMember({"tiny", "small", "medium"}));
  app->add_option("--vocab", o->vocab, "SentencePiece vocabulary size (default 4096)")
      ->check(CLI::Range(300, 65536));
  app->add_option("--corpus-bytes", o->corpus_bytes, "GCIDE bytes to use (default 4 MiB)")
      ->check(CLI::Range(size_t{1} << 16, size_t{1} << 30));
  app->add_option("--adamw-lr", o->adamw_lr, "AdamW peak learning rate (default 1e-2)")
      ->check(CLI::Range(1e-6, 1.0));
  app->add_option("--demo-lr", o->demo_lr, "DeMo peak learning rate (default 1e-2)")
      ->check(CLI::Range(1e-6, 1.0));
  app->add_option("--demo-weight-decay", o->demo_weight_decay,
                  "DeMo decoupled weight decay λ on matrices, in [0, 0.99] (default 0)")
      ->check(CLI::Range(0.0, 0.99));
  app->add_option("--demo-beta", o->demo_beta, "DeMo momentum decay (default 0.999)")
      ->check(CLI::Range(0.0, 0.99999));
  app->add_option("--min-lr-fraction", o->min_lr_fraction,
                  "Cosine floor as a fraction of each run's peak learning rate (default 0.1)")
      ->check(CLI::Range(0.0, 1.0));
  app->add_flag("--interleaved-shards", o->interleaved,
                "Deal 2048-token chunks of whole lines to the workers in turn instead of "
                "one contiguous quarter each");
  app->add_option("--seed", o->seed, "Seed for init, data order and arrival order (default 1)");
  app->add_option("--seeds", o->seeds,
                  "Repeat every run with seeds seed, seed + 1, …; the summary keys use mean "
                  "losses (default 1)")
      ->check(CLI::Range(1, 64));
  app->add_option("--gcide-dir", o->gcide_dir, "Where dict-gcide installed its files");
  app->add_option("--runs", o->only,
                  "Only these runs (default all): adamw, k4-sign, k8-sign, k32-sign, k4-fp16, "
                  "k8-fp16, k32-fp16")
      ->delimiter(',')
      ->check(CLI::IsMember(
          {"adamw", "k4-sign", "k8-sign", "k32-sign", "k4-fp16", "k8-fp16", "k32-fp16"}));
  return {app, [o]() -> int { return bench_demo_cmd::run_bench(*o); }};
}

}  // namespace tern::cli
