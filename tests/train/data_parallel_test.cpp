#include "train/data_parallel.h"

#include <gtest/gtest.h>

#include <algorithm>

#include <string>
#include <vector>

#include "model/bitnet.h"
#include "model/weight_source.h"
#include "optim/demo_codec.h"

namespace tern {
namespace {

// A small model so 4 workers × 200 steps stay quick under the sanitizers.
ModelConfig small_model() {
  ModelConfig c;
  c.hidden = 32;
  c.layers = 1;
  c.heads = 2;
  c.kv_heads = 1;
  c.head_dim = 16;
  c.ffn = 64;
  c.vocab = 256;
  c.max_seq = 64;
  return c;
}

// Four shards of different, learnable byte text.
std::vector<TokenDataset> shards() {
  const char* words[] = {"ternary ", "weights ", "train ", "together ", "over ", "links "};
  std::vector<TokenDataset> out;
  for (int w = 0; w < 4; ++w) {
    std::string text;
    for (int i = 0; i < 600; ++i) text += words[(i * (w + 1) + i / 7) % 6];
    Result<TokenDataset> d = TokenDataset::from_bytes(text, 0.1);
    TERN_CHECK(d.ok());
    out.push_back(std::move(d).value());
  }
  return out;
}

DataParallelConfig demo_config(int64_t steps, bool overlap) {
  DataParallelConfig c;
  c.optimizer = ParallelOptimizer::kDemo;
  c.steps = steps;
  c.batch = 2;
  c.seq = 16;
  c.eval_batches = 2;
  c.schedule.kind = ScheduleKind::kConstant;
  c.schedule.peak_lr = 5e-3;
  c.demo.chunk = 16;
  c.demo.topk = 4;
  c.demo.beta = 0.9;
  c.demo.weight_decay = 0.01;
  c.overlap = overlap;
  return c;
}

TEST(DataParallelTest, FourDemoWorkersStayBitIdenticalFor200Steps) {
  const std::vector<TokenDataset> data = shards();
  for (bool overlap : {false, true}) {
    Result<DataParallelResult> r =
        train_data_parallel(small_model(), data, demo_config(200, overlap));
    ASSERT_TRUE(r.ok()) << r.status().message();
    EXPECT_EQ(r.value().workers, 4);
    EXPECT_TRUE(r.value().replicas_identical) << "overlap " << overlap;
    EXPECT_LT(r.value().final_val_loss, r.value().initial_val_loss - 0.5f) << "overlap " << overlap;
    EXPECT_GT(r.value().payload_bytes_per_step, 0.0);
  }
}

TEST(DataParallelTest, RunsAreReproducibleAndSettingsChangeTheBits) {
  const std::vector<TokenDataset> data = shards();
  DataParallelConfig c = demo_config(10, true);
  Result<DataParallelResult> a = train_data_parallel(small_model(), data, c);
  Result<DataParallelResult> b = train_data_parallel(small_model(), data, c);
  c.overlap = false;
  Result<DataParallelResult> no_overlap = train_data_parallel(small_model(), data, c);
  c.demo.values = DemoValues::kFp16;
  Result<DataParallelResult> fp16 = train_data_parallel(small_model(), data, c);
  ASSERT_TRUE(a.ok() && b.ok() && no_overlap.ok() && fp16.ok());
  EXPECT_EQ(a.value().weight_hash, b.value().weight_hash);
  EXPECT_NE(a.value().weight_hash, no_overlap.value().weight_hash);
  EXPECT_NE(no_overlap.value().weight_hash, fp16.value().weight_hash);
  // fp16 values cost 16 bits where a sign costs one.
  EXPECT_GT(fp16.value().payload_bytes_per_step, no_overlap.value().payload_bytes_per_step);
}

TEST(DataParallelTest, AdamWAllReduceKeepsReplicasIdenticalAndSendsFourBytesPerParam) {
  const std::vector<TokenDataset> data = shards();
  DataParallelConfig c = demo_config(30, false);
  c.optimizer = ParallelOptimizer::kAdamW;
  c.schedule.peak_lr = 1e-2;
  Result<DataParallelResult> r = train_data_parallel(small_model(), data, c);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_TRUE(r.value().replicas_identical);
  EXPECT_EQ(r.value().payload_bytes_per_step, 4.0 * static_cast<double>(r.value().params));
  EXPECT_LT(r.value().final_val_loss, r.value().initial_val_loss);
}

// DeMo on a LoRA model: the plan covers the adapters only, the frozen base never
// changes, and the loss on the training batch falls.
TEST(DataParallelTest, DemoTrainsLoraAdaptersOnly) {
  const ModelConfig config = small_model();
  RandomInitSource base(3, 0.1f);
  LoraConfig lora;
  lora.rank = 4;
  lora.targets = {LinearId::kQ, LinearId::kV, LinearId::kUp, LinearId::kDown};
  Result<BitNetModel> created = BitNetModel::create_lora(config, lora, base, 3);
  ASSERT_TRUE(created.ok()) << created.status().message();
  BitNetModel& model = created.value();
  for (const TensorInfo& info : model.layout().tensors()) {
    EXPECT_NE(info.name.find("lora"), std::string::npos) << info.name;
  }
  DemoConfig demo;
  demo.chunk = 16;
  demo.topk = 8;
  demo.beta = 0.9;
  Result<DemoPlan> plan = DemoPlan::create(model.layout(), demo);
  ASSERT_TRUE(plan.ok());
  DemoOptimizer optimizer(plan.value());
  const std::vector<float> frozen(model.frozen().data(),
                                  model.frozen().data() + model.frozen().size());
  const std::vector<TokenDataset> data = shards();
  std::vector<int32_t> tokens(4 * 16), labels(4 * 16);
  data[0].val_batch(0, 1, 4, 16, tokens, labels);
  float first = 0.0f, last = 0.0f;
  for (int step = 1; step <= 40; ++step) {
    model.grads().zero();
    last = model.forward(tokens, labels, 4, 16);
    if (step == 1) first = last;
    model.backward(1.0f);
    const DemoUpdate update = optimizer.encode(model.grads(), 2e-3, step);
    Result<DemoUpdate> received =
        decode_demo_update(plan.value(), encode_demo_update(plan.value(), update));
    ASSERT_TRUE(received.ok());
    const DemoUpdate* one[] = {&received.value()};
    demo_apply(plan.value(), one, 2e-3, model.params());
  }
  EXPECT_LT(last, first - 0.1f);
  EXPECT_TRUE(std::equal(frozen.begin(), frozen.end(), model.frozen().data()));
}

TEST(DataParallelTest, BadConfigsAreRejectedWithTheField) {
  const std::vector<TokenDataset> data = shards();
  DataParallelConfig c = demo_config(0, false);
  Result<DataParallelResult> r = train_data_parallel(small_model(), data, c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("steps = 0"), std::string::npos);
  c = demo_config(5, false);
  c.optimizer = ParallelOptimizer::kAdamW;
  c.overlap = true;
  EXPECT_FALSE(train_data_parallel(small_model(), data, c).ok());
  c = demo_config(5, false);
  c.seq = 1000;
  r = train_data_parallel(small_model(), data, c);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("1000"), std::string::npos);
  EXPECT_FALSE(train_data_parallel(small_model(), {}, demo_config(5, false)).ok());
}

}  // namespace
}  // namespace tern
