// Training runs: a run stopped part-way (as on Ctrl-C) and resumed from its
// checkpoint ends bit-identical to an uninterrupted run, metrics log included;
// bad resume requests are refused; the report and metrics files are written.
#include "train/run.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "support/micro_model.h"

namespace tern::run_test {
namespace {

using testing::micro_config;

TrainConfig train_config() {
  TrainConfig config;
  config.steps = 12;
  config.batch = 2;
  config.seq = 16;
  config.seed = 3;
  config.schedule.peak_lr = 1e-2;
  config.schedule.warmup_steps = 2;
  return config;
}

class RunTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("tern_run_test_" +
            std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const char* name) const { return (dir_ / name).string(); }

  // Runs a fresh micro model with `options`; returns the final parameters.
  std::vector<float> run(const RunOptions& options, RunResult* result = nullptr) {
    RandomInitSource init(11);
    BitNetModel model = BitNetModel::create_full(micro_config(), init).value();
    Trainer trainer = Trainer::create(model, data_, train_config()).value();
    Result<RunResult> r = run_training(model, trainer, options);
    EXPECT_TRUE(r.ok()) << r.status().message();
    if (result != nullptr && r.ok()) *result = r.value();
    return {model.params().data(), model.params().data() + model.params().size()};
  }

  // (event, step, loss or val_loss) of every line of a metrics log.
  std::vector<std::string> metric_lines(const std::string& file) const {
    std::vector<std::string> out;
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);) {
      const nlohmann::json j = nlohmann::json::parse(line);
      std::string key =
          j["event"].get<std::string>() + "@" + std::to_string(j["step"].get<int64_t>());
      if (j.contains("loss")) key += " loss " + j["loss"].dump();
      if (j.contains("val_loss")) key += " val " + j["val_loss"].dump();
      out.push_back(key);
    }
    return out;
  }

  TokenDataset data_ = testing::repeated_corpus("the quick brown fox jumps over the lazy dog. ");
  std::filesystem::path dir_;
};

TEST_F(RunTest, StoppedAndResumedRunIsBitIdentical) {
  RunOptions straight;
  straight.quiet = true;
  straight.eval_every = 4;
  straight.metrics_path = path("straight.jsonl");
  RunResult straight_result;
  const std::vector<float> expected = run(straight, &straight_result);
  EXPECT_EQ(straight_result.steps_done, 12);
  EXPECT_FALSE(straight_result.interrupted);

  RunOptions first = straight;
  first.metrics_path = path("resumed.jsonl");
  first.checkpoint_path = path("run.ckpt");
  first.checkpoint_every = 3;
  first.stop_at_step = 7;  // stops between checkpoints, after step 7's metrics
  RunResult stopped;
  run(first, &stopped);
  EXPECT_TRUE(stopped.interrupted);
  EXPECT_EQ(stopped.steps_done, 7);

  RunOptions second = first;
  second.stop_at_step = 0;
  second.resume = true;
  RunResult resumed;
  const std::vector<float> actual = run(second, &resumed);
  EXPECT_EQ(resumed.resumed_from, 7);
  EXPECT_EQ(resumed.steps_done, 12);
  ASSERT_EQ(actual.size(), expected.size());
  EXPECT_EQ(0, std::memcmp(actual.data(), expected.data(), actual.size() * sizeof(float)));

  // Same losses, same validation points, in the same order (checkpoint events aside).
  std::vector<std::string> a = metric_lines(path("straight.jsonl"));
  std::vector<std::string> b;
  for (const std::string& line : metric_lines(path("resumed.jsonl"))) {
    if (!line.starts_with("checkpoint@")) b.push_back(line);
  }
  EXPECT_EQ(a, b);
  // The report history covers the whole run, not just the resumed part.
  EXPECT_EQ(resumed.steps.size(), 12u);
}

TEST_F(RunTest, ResumeWithoutCheckpointIsAnError) {
  RandomInitSource init(11);
  BitNetModel model = BitNetModel::create_full(micro_config(), init).value();
  Trainer trainer = Trainer::create(model, data_, train_config()).value();
  RunOptions options;
  options.quiet = true;
  options.resume = true;
  EXPECT_NE(run_training(model, trainer, options).status().message().find("needs a checkpoint"),
            std::string::npos);
  options.checkpoint_path = path("missing.ckpt");
  const std::string message = run_training(model, trainer, options).status().message();
  EXPECT_NE(message.find("missing.ckpt"), std::string::npos) << message;
  EXPECT_NE(message.find("does not exist"), std::string::npos) << message;
}

TEST_F(RunTest, WritesReportAndMetrics) {
  RunOptions options;
  options.quiet = true;
  options.eval_every = 6;
  options.metrics_path = path("m.jsonl");
  options.report_path = path("report.html");
  options.title = "unit <run>";
  RunResult result;
  run(options, &result);
  ASSERT_EQ(result.curve.size(), 3u);  // steps 0, 6, 12
  EXPECT_EQ(result.curve[1].step, 6);
  std::ifstream in(path("report.html"));
  const std::string html((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(html.find("unit &lt;run&gt;"), std::string::npos);
  EXPECT_NE(html.find("<svg"), std::string::npos);
  // 12 step lines + 3 eval lines.
  EXPECT_EQ(metric_lines(path("m.jsonl")).size(), 15u);
}

}  // namespace
}  // namespace tern::run_test
