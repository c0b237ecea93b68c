// `tern eval`: perplexity of a model (optionally with a LoRA adapter) on a text
// file or on a split of prepared token shards.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "data/shards.h"
#include "tokenizer/tokenizer_hash.h"
#include "train/eval.h"
#include "train/load_model.h"

namespace tern::cli {
namespace eval_cmd {
namespace {

struct EvalArgs {
  std::string model;
  std::string lora;
  std::string text;
  std::string shards;
  std::string split = "val";
  int64_t seq = 0;  // 0: min(512, the model's context)
  int64_t batch = 4;
  bool json = false;
};

Result<EvalResult> evaluate_shards(const EvalArgs& args, LoadedModel& loaded,
                                   const Tokenizer& tokenizer, const EvalOptions& options) {
  TERN_ASSIGN_OR_RETURN(ShardSet shards, ShardSet::open(args.shards));
  const std::string want = tokenizer_hash(tokenizer.vocab());
  if (shards.manifest().tokenizer_hash != want) {
    return Status::Error("shards '" + args.shards + "' were tokenized with tokenizer " +
                         shards.manifest().tokenizer_hash + ", but model '" + args.model +
                         "' has tokenizer " + want);
  }
  const TokenDataset& data = shards.dataset();
  Result<EvalResult> result =
      evaluate_stream(loaded.model, args.split == "train" ? data.train() : data.val(), options);
  if (!result.ok()) {
    return result.status().with_context("shards '" + args.shards + "' split " + args.split);
  }
  return result;
}

int run_eval(const EvalArgs& args) {
  Result<LoadedModel> loaded = load_model(args.model, args.lora);
  if (!loaded.ok()) return fail("eval", loaded.status());
  Result<Tokenizer> tokenizer = require_tokenizer(loaded.value(), args.model);
  if (!tokenizer.ok()) return fail("eval", tokenizer.status());
  EvalOptions options;
  options.seq =
      args.seq > 0 ? args.seq : std::min<int64_t>(512, loaded.value().model.config().max_seq);
  options.batch = args.batch;
  Result<EvalResult> result =
      args.text.empty()
          ? evaluate_shards(args, loaded.value(), tokenizer.value(), options)
          : evaluate_text_file(loaded.value().model, tokenizer.value(), args.text, options);
  if (!result.ok()) return fail("eval", result.status());
  const EvalResult& r = result.value();
  if (args.json) {
    const nlohmann::json j = {
        {"perplexity", r.perplexity}, {"mean_loss", r.mean_nll}, {"tokens", r.tokens}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf("perplexity %.4f  mean loss %.6f nats/token  tokens %lld\n", r.perplexity,
                r.mean_nll, static_cast<long long>(r.tokens));
  }
  return 0;
}

}  // namespace
}  // namespace eval_cmd

Command add_eval_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "eval", "Perplexity of a model on a text file or on prepared token shards");
  auto args = std::make_shared<eval_cmd::EvalArgs>();
  app->add_option("--model", args->model, "Model GGUF (with tokenizer metadata)")->required();
  app->add_option("--lora", args->lora, "LoRA adapter GGUF to apply to the model");
  CLI::Option* text = app->add_option(
      "--text", args->text,
      "Text file, evaluated as one document (BOS first if the vocabulary adds one)");
  CLI::Option* shards =
      app->add_option("--shards", args->shards, "Token shard directory from `tern data prepare`")
          ->excludes(text);
  app->add_option("--split", args->split, "Which shard split to evaluate: val | train")
      ->check(CLI::IsMember({"val", "train"}))
      ->needs(shards)
      ->capture_default_str();
  app->add_option("--seq", args->seq,
                  "Window length in tokens (default: 512 or the model's context if shorter)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  app->add_option("--batch", args->batch, "Windows per forward pass")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 16))
      ->capture_default_str();
  app->add_flag("--json", args->json, "Print the result as one JSON line");
  return {app, [args, text, shards]() -> int {
            if (text->count() == 0 && shards->count() == 0) {
              return fail("eval", Status::Error("give --text FILE or --shards DIR"));
            }
            return eval_cmd::run_eval(*args);
          }};
}

}  // namespace tern::cli
