// End to end on real data: LoRA fine-tuning of a real trained GGUF model
// (llama.cpp's stories260K, trained on children's stories) on 300 PubMedQA
// abstracts lowers its perplexity on 50 held-out ones, and the adapter file it
// writes reloads into a model with exactly the same logits. Needs
// ../shared/data (skips without it).
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <iostream>

#include "data/prepare.h"
#include "format/gguf.h"
#include "model/model_file.h"
#include "train/eval.h"
#include "train/load_model.h"
#include "train/run.h"

namespace tern {
namespace {

namespace fs = std::filesystem;

const fs::path kShared = fs::path(TERN_SOURCE_DIR) / ".." / "shared" / "data";

TEST(PubmedqaFinetune, LowersHeldOutPerplexityAndAdapterReloads) {
  const fs::path base = kShared / "tiny-models" / "stories260K.gguf";
  const fs::path train_text = kShared / "pubmedqa" / "pubmedqa_train300.txt";
  const fs::path eval_text = kShared / "pubmedqa" / "pubmedqa_eval50.txt";
  if (!fs::exists(base) || !fs::exists(train_text) || !fs::exists(eval_text)) {
    GTEST_SKIP() << "../shared/data (stories260K.gguf, pubmedqa) is not present next to the "
                    "repository";
  }
  const fs::path dir = fs::temp_directory_path() / "tern_pubmedqa_test";
  fs::remove_all(dir);
  fs::create_directories(dir);

  Result<LoadedModel> frozen = load_model(base.string());
  ASSERT_TRUE(frozen.ok()) << frozen.status().message();
  Result<Tokenizer> tokenizer = require_tokenizer(frozen.value(), base.string());
  ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();
  Result<ShardManifest> manifest = prepare_shards({train_text.string()}, tokenizer.value(),
                                                  (dir / "shards").string(), PrepareOptions{});
  ASSERT_TRUE(manifest.ok()) << manifest.status().message();
  Result<ShardSet> shards = ShardSet::open((dir / "shards").string());
  ASSERT_TRUE(shards.ok()) << shards.status().message();

  EvalOptions eval;
  eval.seq = 128;
  Result<EvalResult> before =
      evaluate_text_file(frozen.value().model, tokenizer.value(), eval_text.string(), eval);
  ASSERT_TRUE(before.ok()) << before.status().message();

  std::unique_ptr<GgufModelSource> source = GgufModelSource::open(base.string()).value();
  LoraConfig lora;
  lora.rank = 8;
  lora.alpha = 16.0f;
  lora.targets = {LinearId::kQ,    LinearId::kK,  LinearId::kV,   LinearId::kO,
                  LinearId::kGate, LinearId::kUp, LinearId::kDown};
  BitNetModel model = BitNetModel::create_lora(source->config(), lora, *source, 1).value();
  TrainConfig train;
  train.steps = 60;
  train.batch = 8;
  train.seq = 128;
  train.seed = 1;
  train.schedule.peak_lr = 5e-3;
  train.schedule.min_lr = 5e-4;
  train.schedule.warmup_steps = 5;
  train.adamw.weight_decay = 0.0;
  Trainer trainer = Trainer::create(model, shards.value().dataset(), train).value();
  RunOptions run;
  run.quiet = true;
  run.eval_every = 60;
  Result<RunResult> result = run_training(model, trainer, run);
  ASSERT_TRUE(result.ok()) << result.status().message();

  const std::string adapter = (dir / "adapter.gguf").string();
  ASSERT_TRUE(write_lora_adapter(adapter, model).ok());
  Result<LoadedModel> tuned = load_model(base.string(), adapter);
  ASSERT_TRUE(tuned.ok()) << tuned.status().message();
  Result<EvalResult> after =
      evaluate_text_file(tuned.value().model, tokenizer.value(), eval_text.string(), eval);
  ASSERT_TRUE(after.ok()) << after.status().message();
  std::cout << "[pubmedqa] held-out perplexity " << before.value().perplexity << " -> "
            << after.value().perplexity << " over " << after.value().tokens << " tokens\n";
  RecordProperty("perplexity_before", std::to_string(before.value().perplexity));
  RecordProperty("perplexity_after", std::to_string(after.value().perplexity));
  EXPECT_LT(after.value().perplexity, 0.9 * before.value().perplexity);

  // The reloaded adapter reproduces the trained model's logits exactly.
  const std::vector<int32_t> tokens =
      tokenizer.value().encode("Question: Does aspirin reduce the risk of stroke?", true, false);
  const auto n = static_cast<int64_t>(tokens.size());
  model.forward(tokens, {}, 1, n);
  const std::vector<float> expected(model.logits().begin(), model.logits().end());
  tuned.value().model.forward(tokens, {}, 1, n);
  const std::vector<float> actual(tuned.value().model.logits().begin(),
                                  tuned.value().model.logits().end());
  ASSERT_EQ(actual.size(), expected.size());
  EXPECT_EQ(0, std::memcmp(actual.data(), expected.data(), actual.size() * sizeof(float)));
  fs::remove_all(dir);
}

}  // namespace
}  // namespace tern
