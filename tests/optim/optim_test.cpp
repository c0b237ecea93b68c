#include <gtest/gtest.h>

#include <cmath>

#include "optim/adamw.h"
#include "optim/schedule.h"

namespace tern {
namespace {

TEST(ScheduleTest, WarmupThenCosineToMin) {
  LrSchedule s;
  s.kind = ScheduleKind::kCosine;
  s.peak_lr = 1.0;
  s.min_lr = 0.1;
  s.warmup_steps = 10;
  s.total_steps = 110;
  EXPECT_DOUBLE_EQ(s.lr_at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.lr_at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.lr_at(10), 1.0);
  EXPECT_NEAR(s.lr_at(10 + 99 / 2), 0.55, 0.01);
  EXPECT_DOUBLE_EQ(s.lr_at(109), 0.1);
}

TEST(ScheduleTest, WarmupStableDecay) {
  LrSchedule s;
  s.kind = ScheduleKind::kWsd;
  s.peak_lr = 2.0;
  s.min_lr = 0.0;
  s.warmup_steps = 5;
  s.total_steps = 100;
  s.decay_fraction = 0.2;
  EXPECT_DOUBLE_EQ(s.lr_at(50), 2.0);
  EXPECT_DOUBLE_EQ(s.lr_at(79), 2.0);
  EXPECT_DOUBLE_EQ(s.lr_at(80), 2.0);
  EXPECT_DOUBLE_EQ(s.lr_at(99), 0.0);
  EXPECT_GT(s.lr_at(90), 0.0);
  EXPECT_LT(s.lr_at(90), 2.0);
}

TEST(ScheduleTest, BadValuesAreNamed) {
  LrSchedule s;
  s.warmup_steps = 5;
  s.total_steps = 3;
  EXPECT_NE(s.validate().message().find("warmup steps = 5"), std::string::npos);
  EXPECT_NE(parse_schedule_kind("linear").status().message().find("'linear'"), std::string::npos);
}

TEST(AdamWTest, FirstStepMovesBySignTimesLr) {
  // At step 1, m̂/sqrt(v̂) = g/|g|, so every weight moves by lr (plus decay on matrices).
  TensorLayout layout;
  layout.add("w", {2, 2});
  layout.add("norm", {2});
  FlatBuffer params(layout.buffer_size()), grads(layout.buffer_size());
  auto w = params.view(layout.get("w"));
  auto n = params.view(layout.get("norm"));
  for (float& v : w) v = 1.0f;
  for (float& v : n) v = 1.0f;
  auto gw = grads.view(layout.get("w"));
  gw[0] = 3.0f;
  gw[1] = -0.5f;
  gw[2] = 0.0f;
  gw[3] = 1e-3f;
  auto gn = grads.view(layout.get("norm"));
  gn[0] = -2.0f;
  gn[1] = 2.0f;
  AdamWConfig config;
  config.weight_decay = 0.5;
  config.eps = 1e-12;
  AdamW opt(layout, config);
  opt.step(params, grads, 0.01);
  const float decayed = 1.0f * (1.0f - 0.005f);
  EXPECT_NEAR(w[0], decayed - 0.01f, 1e-6);
  EXPECT_NEAR(w[1], decayed + 0.01f, 1e-6);
  EXPECT_NEAR(w[2], decayed, 1e-6);
  EXPECT_NEAR(w[3], decayed - 0.01f, 1e-5);
  EXPECT_NEAR(n[0], 1.01f, 1e-6);  // no decay on 1-D tensors
  EXPECT_NEAR(n[1], 0.99f, 1e-6);
  EXPECT_EQ(opt.step_count(), 1);
}

TEST(ClipTest, ScalesToMaxNorm) {
  TensorLayout layout;
  layout.add("a", {2});
  layout.add("b", {1});
  FlatBuffer grads(layout.buffer_size());
  grads.view(layout.get("a"))[0] = 3.0f;
  grads.view(layout.get("b"))[0] = 4.0f;
  EXPECT_DOUBLE_EQ(clip_grad_norm(grads, layout, 10.0), 5.0);
  EXPECT_FLOAT_EQ(grads.view(layout.get("a"))[0], 3.0f);  // under the limit: untouched
  EXPECT_DOUBLE_EQ(clip_grad_norm(grads, layout, 1.0), 5.0);
  EXPECT_NEAR(grads.view(layout.get("a"))[0], 0.6f, 1e-6);
  EXPECT_NEAR(grads.view(layout.get("b"))[0], 0.8f, 1e-6);
}

}  // namespace
}  // namespace tern
