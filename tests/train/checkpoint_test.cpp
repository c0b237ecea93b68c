// Checkpoints: a run stopped, saved, reloaded into fresh objects and continued
// ends bit-identical to an uninterrupted run; corrupt files are rejected.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "support/micro_model.h"
#include "train/checkpoint.h"

namespace tern::checkpoint_test {
namespace {

using testing::micro_config;

TokenDataset corpus() {
  return testing::repeated_corpus("pack my box with five dozen liquor jugs. ");
}

TrainConfig train_config() {
  TrainConfig config;
  config.steps = 8;
  config.batch = 2;
  config.seq = 16;
  config.seed = 21;
  config.schedule.peak_lr = 1e-2;
  config.schedule.warmup_steps = 2;
  return config;
}

BitNetModel make_model(bool lora) {
  RandomInitSource init(5);
  if (!lora) return BitNetModel::create_full(micro_config(), init).value();
  LoraConfig l;
  l.rank = 2;
  l.targets = {LinearId::kQ, LinearId::kDown};
  return BitNetModel::create_lora(micro_config(), l, init, 6).value();
}

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("tern_ckpt_" + name)).string();
}

std::vector<float> params_of(const BitNetModel& m) {
  return {m.params().data(), m.params().data() + m.params().size()};
}

class CheckpointTest : public ::testing::TestWithParam<bool> {};

TEST_P(CheckpointTest, ResumeIsBitIdentical) {
  const bool lora = GetParam();
  const TokenDataset data = corpus();
  std::vector<float> straight_losses, resumed_losses;

  BitNetModel straight = make_model(lora);
  Trainer t1 = Trainer::create(straight, data, train_config()).value();
  for (int s = 0; s < 8; ++s) straight_losses.push_back(t1.step().loss);

  const std::string path = temp_path(lora ? "lora.gguf" : "full.gguf");
  {
    BitNetModel first = make_model(lora);
    Trainer t2 = Trainer::create(first, data, train_config()).value();
    for (int s = 0; s < 3; ++s) resumed_losses.push_back(t2.step().loss);
    ASSERT_TRUE(save_checkpoint(path, first, t2).ok());
  }
  const CheckpointHeader header = read_checkpoint_header(path).value();
  EXPECT_EQ(header.step, 3);
  EXPECT_EQ(header.lora.has_value(), lora);
  BitNetModel second = make_model(lora);  // fresh init, overwritten by the checkpoint
  Trainer t3 = Trainer::create(second, data, train_config()).value();
  const Status loaded = load_checkpoint(path, second, t3);
  ASSERT_TRUE(loaded.ok()) << loaded.message();
  for (int s = 3; s < 8; ++s) resumed_losses.push_back(t3.step().loss);

  EXPECT_EQ(straight_losses, resumed_losses);
  EXPECT_EQ(params_of(straight), params_of(second));
  std::remove(path.c_str());
}

INSTANTIATE_TEST_SUITE_P(Modes, CheckpointTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "lora" : "full"; });

TEST(CheckpointErrorsTest, CorruptionAndMismatchAreErrors) {
  const TokenDataset data = corpus();
  BitNetModel model = make_model(false);
  Trainer trainer = Trainer::create(model, data, train_config()).value();
  trainer.step();
  const std::string path = temp_path("corrupt.gguf");
  ASSERT_TRUE(save_checkpoint(path, model, trainer).ok());

  // Flip one byte near the end (inside tensor data): the checksum must catch it.
  std::vector<char> bytes;
  {
    std::ifstream in(path, std::ios::binary);
    bytes.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  bytes[bytes.size() - 5] ^= 0x10;
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  const std::vector<float> before = params_of(model);
  const Status corrupt = load_checkpoint(path, model, trainer);
  EXPECT_NE(corrupt.message().find("checksum mismatch"), std::string::npos) << corrupt.message();
  EXPECT_EQ(params_of(model), before) << "a failed load must not modify the model";

  // A LoRA model cannot load a full-training checkpoint.
  ASSERT_TRUE(save_checkpoint(path, model, trainer).ok());
  BitNetModel lora = make_model(true);
  Trainer lora_trainer = Trainer::create(lora, data, train_config()).value();
  EXPECT_NE(load_checkpoint(path, lora, lora_trainer).message().find("another model"),
            std::string::npos);
  EXPECT_FALSE(read_checkpoint_header(temp_path("missing.gguf")).ok());
  std::remove(path.c_str());
}

}  // namespace
}  // namespace tern::checkpoint_test
