#include "train/load_model.h"

#include <memory>
#include <utility>

#include "format/gguf.h"
#include "model/model_file.h"
#include "tokenizer/vocab.h"

namespace tern {
namespace {

// Sets loaded.tokenizer from the file's tokenizer.ggml.* keys, if it has them.
Status attach_tokenizer(const gguf::GgufFile& file, LoadedModel& loaded) {
  if (!file.has("tokenizer.ggml.model")) return Status::Ok();
  TERN_ASSIGN_OR_RETURN(Vocab vocab, vocab_from_gguf(file));
  TERN_ASSIGN_OR_RETURN(Tokenizer tokenizer, Tokenizer::create(std::move(vocab)));
  // A model may pad its embedding beyond the vocabulary, never the other way round:
  // a token id the embedding lacks would be rejected on every batch.
  const int64_t model_vocab = loaded.model.config().vocab;
  if (tokenizer.n_tokens() > model_vocab) {
    return Status::Error("tokenizer has " + std::to_string(tokenizer.n_tokens()) +
                         " tokens but the model's vocabulary is " + std::to_string(model_vocab));
  }
  loaded.tokenizer.emplace(std::move(tokenizer));
  return Status::Ok();
}

Result<BitNetModel> build_model(GgufModelSource& source, const std::string& lora_path) {
  const ModelConfig config = source.config();
  if (lora_path.empty()) return BitNetModel::create_frozen(config, source);
  Result<gguf::GgufFile> adapter = gguf::GgufFile::open(lora_path);
  if (!adapter.ok()) return adapter.status().with_context("LoRA adapter '" + lora_path + "'");
  Result<LoraConfig> lora = lora_config_from_adapter(adapter.value(), config);
  if (!lora.ok()) return lora.status().with_context("LoRA adapter '" + lora_path + "'");
  // The seed only initializes A, which the adapter then overwrites.
  TERN_ASSIGN_OR_RETURN(BitNetModel model,
                        BitNetModel::create_lora(config, lora.value(), source, /*seed=*/0));
  TERN_RETURN_IF_ERROR(load_lora_adapter(lora_path, model));
  return model;
}

Result<LoadedModel> load(const std::string& model_path, const std::string& lora_path) {
  TERN_ASSIGN_OR_RETURN(std::unique_ptr<GgufModelSource> source, GgufModelSource::open(model_path));
  TERN_ASSIGN_OR_RETURN(BitNetModel model, build_model(*source, lora_path));
  LoadedModel loaded{std::move(model), std::nullopt};
  TERN_RETURN_IF_ERROR(attach_tokenizer(source->file(), loaded));
  return loaded;
}

}  // namespace

Result<LoadedModel> load_model(const std::string& model_path, const std::string& lora_path) {
  Result<LoadedModel> loaded = load(model_path, lora_path);
  if (!loaded.ok()) return loaded.status().with_context("load model '" + model_path + "'");
  return loaded;
}

Result<Tokenizer> require_tokenizer(const LoadedModel& loaded, const std::string& model_path) {
  if (!loaded.tokenizer.has_value()) {
    return Status::Error("model '" + model_path + "' has no tokenizer metadata");
  }
  return *loaded.tokenizer;
}

}  // namespace tern
