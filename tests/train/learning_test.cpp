// Seeded learning test: pretraining the `tiny` preset on real text (the GCIDE
// dictionary, byte-level) must bring validation loss at step 300 below 0.8× its
// value at step 0. Skips when dict-gcide is not installed.
#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>

#include "data/gcide.h"
#include "train/run.h"

namespace tern {
namespace {

TEST(LearningTest, TinyPresetLearnsDictionaryText) {
  if (!std::filesystem::exists(std::string(kDefaultGcideDir) + "/gcide.dict.dz")) {
    GTEST_SKIP() << "dict-gcide is not installed (" << kDefaultGcideDir
                 << "/gcide.dict.dz missing); run scripts/setup.sh";
  }
  Result<std::string> text = gcide_corpus(kDefaultGcideDir, 2 << 20);
  ASSERT_TRUE(text.ok()) << text.status().message();
  Result<TokenDataset> data = TokenDataset::from_bytes(text.value(), 0.05);
  ASSERT_TRUE(data.ok()) << data.status().message();

  TrainConfig train;
  train.steps = 300;
  train.batch = 4;
  train.seq = 64;
  train.eval_batches = 8;
  train.seed = 7;
  train.schedule.peak_lr = 3e-3;
  train.schedule.min_lr = 3e-4;
  train.schedule.warmup_steps = 20;
  RandomInitSource init(7);
  Result<BitNetModel> model = BitNetModel::create_full(preset_config("tiny").value(), init);
  ASSERT_TRUE(model.ok()) << model.status().message();
  Result<Trainer> trainer = Trainer::create(model.value(), data.value(), train);
  ASSERT_TRUE(trainer.ok()) << trainer.status().message();
  RunOptions options;
  options.eval_every = 100;
  options.quiet = true;
  Result<RunResult> summary = run_training(model.value(), trainer.value(), options);
  ASSERT_TRUE(summary.ok()) << summary.status().message();

  const std::vector<EvalPoint>& curve = summary.value().curve;
  ASSERT_EQ(curve.front().step, 0);
  ASSERT_EQ(curve.back().step, 300);
  for (const EvalPoint& p : curve)
    std::cout << "[learning] step " << p.step << " val " << p.val_loss << "\n";
  RecordProperty("val_loss_step0", std::to_string(curve.front().val_loss));
  RecordProperty("val_loss_step300", std::to_string(curve.back().val_loss));
  EXPECT_LT(curve.back().val_loss, 0.8f * curve.front().val_loss);
}

}  // namespace
}  // namespace tern
