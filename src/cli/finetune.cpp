// `tern finetune`: LoRA fine-tuning of a frozen GGUF base (ternary or dense)
// on prepared token shards; writes a llama.cpp-compatible adapter GGUF, or with
// --merge a merged model.
#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/train_flags.h"
#include "data/shards.h"
#include "model/lora_merge.h"
#include "model/model_file.h"
#include "tokenizer/tokenizer_hash.h"
#include "tokenizer/vocab.h"

namespace tern::cli {

namespace finetune_cmd {
namespace {

struct FinetuneArgs {
  TrainFlags train;
  RunFlags run;
  std::string model;
  std::string shards;
  int64_t rank = 8;
  float alpha = 16.0f;
  std::string targets = "q,k,v,o";
  std::string output;
  std::string merge;
  std::string activations = "auto";
};

Result<std::vector<LinearId>> parse_targets(const std::string& list) {
  if (list == "all") {
    return std::vector<LinearId>{LinearId::kQ,    LinearId::kK,  LinearId::kV,   LinearId::kO,
                                 LinearId::kGate, LinearId::kUp, LinearId::kDown};
  }
  std::vector<LinearId> ids;
  std::stringstream in(list);
  for (std::string name; std::getline(in, name, ',');) {
    Result<LinearId> id = parse_linear_id(name);
    if (!id.ok()) return Status::Error("--targets '" + list + "': " + id.status().message());
    ids.push_back(id.value());
  }
  if (ids.empty()) return Status::Error("--targets '" + list + "' names no linear");
  return ids;
}

int run(const FinetuneArgs& a) {
  if (a.output.empty() && a.merge.empty()) {
    return fail("finetune",
                Status::Error("give -o ADAPTER.gguf (the LoRA adapter) or --merge MODEL.gguf"));
  }
  LoraConfig lora;
  lora.rank = a.rank;
  lora.alpha = a.alpha;
  Result<std::vector<LinearId>> targets = parse_targets(a.targets);
  if (!targets.ok()) return fail("finetune", targets.status());
  lora.targets = targets.value();
  if (Status s = lora.validate(); !s.ok()) return fail("finetune", s);

  Result<std::unique_ptr<GgufModelSource>> base = GgufModelSource::open(a.model);
  if (!base.ok()) return fail("finetune", base.status());
  ModelConfig config = base.value()->config();
  Result<Vocab> vocab = vocab_from_gguf(base.value()->file());
  if (!vocab.ok()) {
    return fail("finetune",
                Status::Error("model '" + a.model +
                              "' has no usable tokenizer metadata: " + vocab.status().message()));
  }
  Result<ShardSet> shards = ShardSet::open(a.shards);
  if (!shards.ok()) return fail("finetune", shards.status());
  const std::string hash = tokenizer_hash(vocab.value());
  if (shards.value().manifest().tokenizer_hash != hash) {
    return fail(
        "finetune",
        Status::Error("shards '" + a.shards + "' were prepared with tokenizer " +
                      shards.value().manifest().tokenizer_hash + ", but model '" + a.model +
                      "' uses tokenizer " + hash + "; prepare them with --vocab " + a.model));
  }
  if (a.train.seq > config.max_seq) {
    return fail("finetune", Status::Error("--seq " + std::to_string(a.train.seq) +
                                          " exceeds the model's context length " +
                                          std::to_string(config.max_seq)));
  }
  const TokenDataset& data = shards.value().dataset();
  Result<TrainConfig> train = make_train_config(a.train, data.train_tokens());
  if (!train.ok()) return fail("finetune", train.status());
  Result<BitNetModel> model = BitNetModel::create_lora(config, lora, *base.value(), a.train.seed);
  if (!model.ok())
    return fail("finetune", Status::Error("'" + a.model + "': " + model.status().message()));
  apply_model_flags(a.train, model.value());
  apply_activations_flag(a.activations, model.value());
  Result<Trainer> trainer = Trainer::create(model.value(), data, train.value());
  if (!trainer.ok()) return fail("finetune", trainer.status());

  RunOptions options = make_run_options(a.train, a.run, a.output.empty() ? a.merge : a.output);
  options.title = "tern finetune";
  options.config_rows = {
      {"base model", a.model},
      {"shards", a.shards},
      {"LoRA", "rank " + std::to_string(a.rank) + ", alpha " + std::to_string(a.alpha) +
                   ", targets " + a.targets},
      {"steps", std::to_string(train.value().steps)},
      {"batch x seq x accum", std::to_string(a.train.batch) + " x " + std::to_string(a.train.seq) +
                                  " x " + std::to_string(a.train.grad_accum)},
      {"lr", std::to_string(a.train.lr)},
      {"schedule", a.train.schedule},
      {"weight decay", std::to_string(a.train.weight_decay)},
      {"input gradient through ternary linears", a.train.ternary_backward},
      {"activations", a.activations}};
  if (!a.train.json) {
    std::printf(
        "tern finetune: LoRA rank %lld on %s (%lld trainable parameters), %lld training "
        "tokens, %lld steps\n",
        static_cast<long long>(a.rank), a.model.c_str(),
        static_cast<long long>(model.value().layout().num_elements()),
        static_cast<long long>(data.train_tokens()), static_cast<long long>(train.value().steps));
  }
  Result<RunResult> result = run_training(model.value(), trainer.value(), options);
  if (!result.ok()) return fail("finetune", result.status());
  if (result.value().interrupted) return report_interrupted("finetune", result.value(), a.run);
  if (!a.train.json) {
    std::printf("activations: %s\n", describe_activations(model.value()).c_str());
  }
  if (!a.output.empty()) {
    if (Status s = write_lora_adapter(a.output, model.value()); !s.ok()) return fail("finetune", s);
    if (!a.train.json) std::printf("adapter written to %s\n", a.output.c_str());
  }
  if (!a.merge.empty()) {
    Result<BitNetModel> merged = merge_lora(model.value());
    if (!merged.ok()) return fail("finetune", merged.status());
    ModelWriteOptions write_options;
    write_options.name = "tern finetune (merged)";
    write_options.extra_metadata = tokenizer_metadata(base.value()->file());
    if (Status s = write_model_gguf(a.merge, merged.value(), write_options); !s.ok())
      return fail("finetune", s);
    if (!a.train.json) std::printf("merged model written to %s\n", a.merge.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace finetune_cmd

Command add_finetune_command(CLI::App& root) {
  CLI::App* app =
      root.add_subcommand("finetune", "LoRA fine-tuning of a frozen GGUF base on token shards");
  auto args = std::make_shared<finetune_cmd::FinetuneArgs>();
  // Fine-tuning defaults: a LoRA learning rate, a short warmup, no decay floor,
  // and the int8 input gradient through the frozen ternary base (BENCHMARKS.md
  // compares it with the exact one: validation losses within 0.02%, 1.2-1.5x the speed).
  args->train.lr = 1e-3;
  args->train.min_lr = 1e-4;
  args->train.warmup = 10;
  args->train.weight_decay = 0.0;
  args->train.ternary_backward = "int8";
  app->add_option("--model", args->model, "Base model GGUF (ternary or dense)")->required();
  app->add_option("--shards", args->shards,
                  "Token shards from `tern data prepare --vocab <the model>`")
      ->required();
  app->add_option("--rank", args->rank, "LoRA rank r")->capture_default_str();
  app->add_option("--alpha", args->alpha, "LoRA alpha (scale alpha/r)")->capture_default_str();
  app->add_option("--targets", args->targets,
                  "Comma-separated linears: q,k,v,o,gate,up,down, or all")
      ->capture_default_str();
  app->add_option("-o,--output", args->output, "Write the LoRA adapter here (llama.cpp --lora)");
  app->add_option("--merge", args->merge,
                  "Write the base with the adapter merged in (ternary bases are re-quantized)");
  add_train_flags(app, &args->train);
  add_activations_flag(app, &args->activations);
  add_run_flags(app, &args->run);
  return {app, [args]() -> int { return finetune_cmd::run(*args); }};
}

}  // namespace tern::cli
