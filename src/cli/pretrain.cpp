// `tern pretrain`: train a model from scratch (preset or config file) on
// prepared token shards, or on byte-level text, and save it as GGUF.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <optional>

#include "cli/commands.h"
#include "cli/train_flags.h"
#include "data/gcide.h"
#include "data/shards.h"
#include "format/gguf.h"
#include "model/model_file.h"
#include "tokenizer/tokenizer_hash.h"
#include "tokenizer/vocab.h"

namespace tern::cli {

namespace pretrain_cmd {
namespace {

struct PretrainArgs {
  TrainFlags train;
  RunFlags run;
  std::string preset = "tiny";
  std::string config_file;
  std::string shards;
  std::string vocab_file;
  std::string text_file;
  std::string gcide_dir = kDefaultGcideDir;
  size_t max_bytes = 0;
  std::string output;
};

Result<ModelConfig> model_config(const PretrainArgs& a) {
  if (a.config_file.empty()) return preset_config(a.preset);
  std::ifstream in(a.config_file, std::ios::binary);
  if (!in) return Status::Error("model config: cannot open '" + a.config_file + "'");
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  Result<ModelConfig> config = parse_model_config(text);
  if (!config.ok()) {
    return Status::Error("model config '" + a.config_file + "': " + config.status().message());
  }
  return config;
}

int run(const PretrainArgs& a) {
  Result<ModelConfig> config = model_config(a);
  if (!config.ok()) return fail("pretrain", config.status());
  ModelConfig model_config = config.value();
  model_config.max_seq = std::max(model_config.max_seq, a.train.seq);

  // Data: prepared shards (with their tokenizer), or byte-level text.
  std::optional<ShardSet> shards;
  std::optional<TokenDataset> bytes;
  ModelWriteOptions write_options;
  if (!a.shards.empty()) {
    if (a.vocab_file.empty()) {
      return fail("pretrain",
                  Status::Error("--shards needs --vocab (the tokenizer GGUF the shards were "
                                "prepared with; it is stored in the model)"));
    }
    Result<gguf::GgufFile> vocab_file = gguf::GgufFile::open(a.vocab_file);
    if (!vocab_file.ok()) return fail("pretrain", vocab_file.status());
    Result<Vocab> vocab = vocab_from_gguf(vocab_file.value());
    if (!vocab.ok())
      return fail("pretrain", Status::Error("'" + a.vocab_file + "': " + vocab.status().message()));
    Result<ShardSet> opened = ShardSet::open(a.shards);
    if (!opened.ok()) return fail("pretrain", opened.status());
    const std::string hash = tokenizer_hash(vocab.value());
    if (opened.value().manifest().tokenizer_hash != hash) {
      return fail("pretrain",
                  Status::Error("shards '" + a.shards + "' were prepared with tokenizer " +
                                opened.value().manifest().tokenizer_hash + ", but '" +
                                a.vocab_file + "' is tokenizer " + hash));
    }
    model_config.vocab = vocab.value().size();
    write_options.extra_metadata = tokenizer_metadata(vocab_file.value());
    shards.emplace(std::move(opened).value());
  } else {
    Result<std::string> text = load_corpus(a.text_file, a.gcide_dir, a.max_bytes);
    if (!text.ok()) return fail("pretrain", text.status());
    Result<TokenDataset> data = TokenDataset::from_bytes(text.value(), 0.05);
    if (!data.ok()) return fail("pretrain", data.status());
    bytes.emplace(std::move(data).value());
    model_config.vocab = 256;
  }
  const TokenDataset& data = shards ? shards->dataset() : *bytes;

  Result<TrainConfig> train = make_train_config(a.train, data.train_tokens());
  if (!train.ok()) return fail("pretrain", train.status());
  RandomInitSource init(a.train.seed);
  Result<BitNetModel> model = BitNetModel::create_full(model_config, init);
  if (!model.ok()) return fail("pretrain", model.status());
  apply_model_flags(a.train, model.value());
  Result<Trainer> trainer = Trainer::create(model.value(), data, train.value());
  if (!trainer.ok()) return fail("pretrain", trainer.status());

  RunOptions options = make_run_options(a.train, a.run, a.output);
  options.title = "tern pretrain";
  options.config_rows = {
      {"model", model_config_to_json(model_config)},
      {"data", a.shards.empty() ? (a.text_file.empty() ? "GCIDE (bytes)" : a.text_file) : a.shards},
      {"steps", std::to_string(train.value().steps)},
      {"batch x seq x accum", std::to_string(a.train.batch) + " x " + std::to_string(a.train.seq) +
                                  " x " + std::to_string(a.train.grad_accum)},
      {"lr", std::to_string(a.train.lr)},
      {"schedule", a.train.schedule}};
  if (!a.train.json) {
    std::printf(
        "tern pretrain: %lld parameters, %lld training / %lld validation tokens, %lld steps\n",
        static_cast<long long>(model_config.num_params()),
        static_cast<long long>(data.train_tokens()), static_cast<long long>(data.val_tokens()),
        static_cast<long long>(train.value().steps));
  }
  Result<RunResult> result = run_training(model.value(), trainer.value(), options);
  if (!result.ok()) return fail("pretrain", result.status());
  if (result.value().interrupted) return report_interrupted("pretrain", result.value(), a.run);
  if (!a.output.empty()) {
    write_options.name = "tern pretrain";
    const Status written = write_model_gguf(a.output, model.value(), write_options);
    if (!written.ok()) return fail("pretrain", written);
    if (!a.train.json) std::printf("model written to %s\n", a.output.c_str());
  }
  return 0;
}

}  // namespace
}  // namespace pretrain_cmd

Command add_pretrain_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "pretrain", "Pretrain a model from scratch on token shards or byte-level text");
  auto args = std::make_shared<pretrain_cmd::PretrainArgs>();
  app->add_option("--preset", args->preset, "Model preset (see `tern info`)")
      ->capture_default_str();
  app->add_option("--config", args->config_file, "Model config JSON (instead of --preset)");
  app->add_option("--shards", args->shards, "Token shards from `tern data prepare`");
  app->add_option("--vocab", args->vocab_file, "Tokenizer GGUF the shards were prepared with");
  app->add_option("--text", args->text_file,
                  "Byte-level training text (without --shards; default: the GCIDE dictionary)");
  app->add_option("--gcide-dir", args->gcide_dir, "Where dict-gcide installed its files")
      ->capture_default_str();
  app->add_option("--max-bytes", args->max_bytes, "Use at most this many bytes of text (0 = all)")
      ->capture_default_str();
  app->add_option("-o,--output", args->output, "Write the trained model here (GGUF)");
  add_train_flags(app, &args->train);
  add_run_flags(app, &args->run);
  return {app, [args]() -> int { return pretrain_cmd::run(*args); }};
}

}  // namespace tern::cli
