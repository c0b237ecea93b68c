// Trainer: same seed and data give the same bits; config errors are named.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "support/micro_model.h"
#include "train/trainer.h"

namespace tern::trainer_test {
namespace {

using testing::micro_config;

TokenDataset corpus() {
  return testing::repeated_corpus("the quick brown fox jumps over the lazy dog. ");
}

std::vector<float> train(uint64_t seed, int64_t grad_accum, std::vector<float>* losses) {
  RandomInitSource init(3);
  BitNetModel model = BitNetModel::create_full(micro_config(), init).value();
  const TokenDataset data = corpus();
  TrainConfig config;
  config.steps = 6;
  config.batch = 2;
  config.seq = 16;
  config.grad_accum = grad_accum;
  config.seed = seed;
  config.schedule.peak_lr = 1e-2;
  config.schedule.warmup_steps = 2;
  Trainer trainer = Trainer::create(model, data, config).value();
  for (int s = 0; s < 6; ++s) losses->push_back(trainer.step().loss);
  return {model.params().data(), model.params().data() + model.params().size()};
}

TEST(TrainerTest, SameSeedSameBitsOtherSeedOtherBits) {
  std::vector<float> la, lb, lc;
  const std::vector<float> a = train(11, 1, &la), b = train(11, 1, &lb), c = train(12, 1, &lc);
  EXPECT_EQ(a, b);
  EXPECT_EQ(la, lb);
  EXPECT_NE(a, c);  // the seed drives the batches
}

TEST(TrainerTest, LossFallsOnRepetitiveText) {
  std::vector<float> losses;
  train(5, 2, &losses);
  EXPECT_LT(losses.back(), losses.front());
}

TEST(TrainerTest, BadConfigIsNamed) {
  RandomInitSource init(3);
  BitNetModel model = BitNetModel::create_full(micro_config(), init).value();
  const TokenDataset data = corpus();
  TrainConfig config;
  config.seq = 32;  // beyond max_seq 16
  EXPECT_NE(Trainer::create(model, data, config).status().message().find("seq = 32"),
            std::string::npos);
  config.seq = 16;
  config.grad_accum = 0;
  EXPECT_NE(Trainer::create(model, data, config).status().message().find("grad_accum = 0"),
            std::string::npos);
}

}  // namespace
}  // namespace tern::trainer_test
