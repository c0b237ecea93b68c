#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "optim/dct.h"
#include "optim/demo.h"

namespace tern {
namespace {

TEST(DctTest, BlockPolicyPrefersDivisorsAndPadsWhenThatSavesBlocks) {
  int64_t padded = 0;
  EXPECT_EQ(dct_block_length(768, 64, &padded), 64);
  EXPECT_EQ(padded, 768);
  EXPECT_EQ(dct_block_length(100, 64, &padded), 50);  // 2 blocks either way: no padding
  EXPECT_EQ(padded, 100);
  EXPECT_EQ(dct_block_length(176, 64, &padded), 64);  // 44 would need 4 blocks, padding 3
  EXPECT_EQ(padded, 192);
  EXPECT_EQ(dct_block_length(97, 64, &padded), 64);  // prime
  EXPECT_EQ(padded, 128);
  EXPECT_EQ(dct_block_length(48, 64, &padded), 48);  // shorter than a chunk: one block
  EXPECT_EQ(padded, 48);
  EXPECT_EQ(dct_block_length(1, 64, &padded), 1);
  EXPECT_EQ(padded, 1);
  EXPECT_EQ(dct_block_length(2048, 64, &padded), 64);
  EXPECT_EQ(padded, 2048);
}

TEST(DctTest, GridsFoldHigherRanksAndKeepVectorsOneDimensional) {
  const int64_t vec[] = {176};
  const BlockGrid v = make_block_grid(vec, 64);
  EXPECT_FALSE(v.two_d());
  EXPECT_EQ(v.num_blocks(), 3);
  EXPECT_EQ(v.block_size(), 64);
  const int64_t mat[] = {2, 3, 100};  // folds to [6, 100]
  const BlockGrid m = make_block_grid(mat, 64);
  EXPECT_TRUE(m.two_d());
  EXPECT_EQ(m.rows, 6);
  EXPECT_EQ(m.block_rows, 6);
  EXPECT_EQ(m.block_cols, 50);
  EXPECT_EQ(m.num_blocks(), 2);
}

TEST(DctTest, BasisIsOrthonormal) {
  for (int64_t n : {1, 2, 7, 8, 44, 64}) {
    std::span<const float> d = dct_basis(n);
    for (int64_t a = 0; a < n; ++a) {
      for (int64_t b = 0; b < n; ++b) {
        double dot = 0.0;
        for (int64_t i = 0; i < n; ++i) dot += double(d[a * n + i]) * d[b * n + i];
        EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, 1e-6) << "n " << n << " rows " << a << "," << b;
      }
    }
  }
}

TEST(DctTest, ForwardThenFullSparseInverseIsIdentityAndDcIsScaledMean) {
  const int64_t shape[] = {12, 10};
  const BlockGrid g = make_block_grid(shape, 8);  // 12 → 2 x 6, 10 → 2 x 5
  ASSERT_EQ(g.block_rows, 6);
  ASSERT_EQ(g.block_cols, 5);
  std::vector<float> x(120);
  Rng rng(3);
  for (float& v : x) v = static_cast<float>(rng.normal());
  std::vector<float> block(30), coeffs(30), scratch(30), back(30);
  std::vector<uint32_t> all(30);
  for (uint32_t i = 0; i < 30; ++i) all[i] = i;
  for (int64_t b = 0; b < g.num_blocks(); ++b) {
    gather_block(g, x.data(), b, block.data());
    dct_forward_block(g, block.data(), coeffs.data(), scratch.data());
    double sum = 0.0;
    for (float v : block) sum += v;
    EXPECT_NEAR(coeffs[0], sum / std::sqrt(30.0), 1e-5);
    idct_sparse_block(g, all, coeffs, back.data());
    for (int i = 0; i < 30; ++i) EXPECT_NEAR(back[i], block[i], 1e-5);
  }
}

TEST(DctTest, SparseAndDenseInversePathsMatchADoubleReference) {
  const int64_t shape[] = {8, 6};
  const BlockGrid g = make_block_grid(shape, 8);
  std::span<const float> dr = dct_basis(8);
  std::span<const float> dc = dct_basis(6);
  Rng rng(5);
  for (size_t nnz : {size_t{5}, size_t{40}}) {  // 40 > 8 + 6: the dense path
    std::vector<uint32_t> idx;
    std::vector<float> val;
    for (uint32_t i = 0; i < 48 && idx.size() < nnz; ++i) {
      if (nnz == 48 || rng.below(48) < nnz + 2) {
        idx.push_back(i);
        val.push_back(static_cast<float>(rng.normal()));
      }
    }
    std::vector<float> out(48);
    idct_sparse_block(g, idx, val, out.data());
    for (int64_t i = 0; i < 8; ++i) {
      for (int64_t j = 0; j < 6; ++j) {
        double want = 0.0;
        for (size_t n = 0; n < idx.size(); ++n) {
          want += double(val[n]) * dr[(idx[n] / 6) * 8 + i] * dc[(idx[n] % 6) * 6 + j];
        }
        EXPECT_NEAR(out[i * 6 + j], want, 1e-5) << "nnz " << idx.size();
      }
    }
  }
}

TEST(DctTest, PaddedBlocksGatherZerosPastTheTensor) {
  const int64_t shape[] = {97};
  const BlockGrid g = make_block_grid(shape, 64);
  std::vector<float> x(97, 1.0f);
  std::vector<float> block(64);
  gather_block(g, x.data(), 1, block.data());
  for (int i = 0; i < 64; ++i) EXPECT_EQ(block[i], i < 33 ? 1.0f : 0.0f) << i;
  int visited = 0;
  for_each_block_element(g, 1, [&](int64_t t, int64_t e) {
    EXPECT_EQ(t, 64 + e);
    ++visited;
  });
  EXPECT_EQ(visited, 33);
}

TEST(DemoTest, TopKTiesGoToTheLowerIndexAndZerosAreNeverKept) {
  std::vector<uint32_t> out;
  const float c[] = {1.0f, -3.0f, 0.0f, 3.0f, 2.0f, -3.0f};
  select_top_k(c, 2, out);
  EXPECT_EQ(out, (std::vector<uint32_t>{1, 3}));
  select_top_k(c, 4, out);
  EXPECT_EQ(out, (std::vector<uint32_t>{1, 3, 4, 5}));
  const float sparse[] = {0.0f, 0.5f, 0.0f, 0.0f};
  select_top_k(sparse, 3, out);
  EXPECT_EQ(out, (std::vector<uint32_t>{1}));
  const float zeros[] = {0.0f, -0.0f};
  select_top_k(zeros, 2, out);
  EXPECT_TRUE(out.empty());
}

TEST(DemoTest, ConfigErrorsNameTheField) {
  DemoConfig c;
  c.topk = 0;
  EXPECT_NE(c.validate().message().find("topk = 0"), std::string::npos);
  c = DemoConfig{};
  c.beta = 1.0;
  EXPECT_NE(c.validate().message().find("beta"), std::string::npos);
  c = DemoConfig{};
  c.chunk = 1000;
  EXPECT_NE(c.validate().message().find("chunk = 1000"), std::string::npos);
  EXPECT_FALSE(parse_demo_values("2bit").ok());
}

struct Fixture {
  TensorLayout layout;
  Fixture() {
    layout.add("w", {24, 40});
    layout.add("norm", {37});
    layout.add("still", {8, 8});
  }
};

void fill_grads(const TensorLayout& layout, FlatBuffer& grads, uint64_t seed, bool zero_still) {
  Rng rng(seed);
  for (const TensorInfo& info : layout.tensors()) {
    for (float& g : grads.view(info)) {
      g = zero_still && info.name == "still" ? 0.0f : static_cast<float>(rng.normal());
    }
  }
}

double sum_sq(std::span<const float> v) {
  double s = 0.0;
  for (float x : v) s += double(x) * x;
  return s;
}

TEST(DemoTest, ErrorFeedbackRemovesExactlyTheKeptUnquantizedEnergy) {
  Fixture f;
  DemoConfig config;
  config.chunk = 8;
  config.topk = 3;
  config.beta = 0.5;
  for (DemoValues values : {DemoValues::kSign, DemoValues::kFp16}) {
    config.values = values;
    Result<DemoPlan> plan = DemoPlan::create(f.layout, config);
    ASSERT_TRUE(plan.ok());
    DemoOptimizer opt(plan.value());
    FlatBuffer grads(f.layout.buffer_size());
    fill_grads(f.layout, grads, 7, false);
    // δ before extraction is η·g (δ starts at zero); the DCT is orthonormal, so
    // ‖δ_after‖² = ‖η·g‖² − Σ kept² per block when the unquantized values are
    // subtracted. The padded tensor ("norm": 37 → 40) loses energy into the
    // padding, so check the unpadded ones.
    const double lr = 0.1;
    const DemoUpdate u = opt.encode(grads, lr, 1);
    EXPECT_TRUE(validate_update(plan.value(), u).ok());
    const TensorInfo& w = f.layout.get("w");
    double before = 0.0;
    for (float g : grads.view(w)) before += double(g * 0.1f) * (g * 0.1f);
    // Recompute the kept coefficients from the fresh momentum.
    const BlockGrid& g = plan.value().grids()[0];
    FlatBuffer fresh(f.layout.buffer_size());
    for (int64_t i = 0; i < w.size; ++i)
      fresh.data()[w.offset + i] = grads.data()[w.offset + i] * 0.1f;
    double kept_sq = 0.0;
    std::vector<float> block(g.block_size()), coeffs(g.block_size()), scratch(g.block_size());
    for (int64_t b = 0; b < g.num_blocks(); ++b) {
      gather_block(g, fresh.data() + w.offset, b, block.data());
      dct_forward_block(g, block.data(), coeffs.data(), scratch.data());
      const TensorUpdate& tu = u.tensors[0];
      ASSERT_EQ(tu.block_begin[b + 1] - tu.block_begin[b], 3u);
      for (uint32_t e = tu.block_begin[b]; e < tu.block_begin[b + 1]; ++e) {
        const float c = coeffs[tu.indices[e]];
        kept_sq += double(c) * c;
        if (values == DemoValues::kSign) {
          EXPECT_EQ(tu.values[e], c > 0 ? 1.0f : -1.0f);
        } else {
          EXPECT_NEAR(tu.values[e], c, std::fabs(c) * 1e-3);
        }
      }
    }
    const double after = sum_sq(opt.momentum().view(w));
    EXPECT_NEAR(after, before - kept_sq, 1e-5 * before);
    EXPECT_GT(kept_sq, 0.0);
  }
}

TEST(DemoTest, KeepingEveryCoefficientEmptiesTheMomentum) {
  Fixture f;
  DemoConfig config;
  config.chunk = 8;
  config.topk = 64;
  Result<DemoPlan> plan = DemoPlan::create(f.layout, config);
  ASSERT_TRUE(plan.ok());
  DemoOptimizer opt(plan.value());
  FlatBuffer grads(f.layout.buffer_size());
  fill_grads(f.layout, grads, 8, false);
  opt.encode(grads, 1.0, 1);
  for (const TensorInfo& info : f.layout.tensors()) {
    for (float d : opt.momentum().view(info)) EXPECT_NEAR(d, 0.0f, 1e-5) << info.name;
  }
}

TEST(DemoTest, UntouchedTensorsDoNotDriftAndOthersMoveBySignSteps) {
  Fixture f;
  DemoConfig config;
  config.chunk = 8;
  config.topk = 2;
  Result<DemoPlan> plan = DemoPlan::create(f.layout, config);
  ASSERT_TRUE(plan.ok());
  FlatBuffer params(f.layout.buffer_size());
  fill_grads(f.layout, params, 99, false);
  FlatBuffer before(f.layout.buffer_size());
  std::copy(params.data(), params.data() + params.size(), before.data());
  std::vector<DemoOptimizer> peers;
  std::vector<DemoUpdate> updates;
  for (int p = 0; p < 3; ++p) {
    peers.emplace_back(plan.value());
    FlatBuffer grads(f.layout.buffer_size());
    fill_grads(f.layout, grads, 100 + p, /*zero_still=*/true);
    updates.push_back(peers.back().encode(grads, 0.01, 1));
  }
  for (const DemoUpdate& u : updates) EXPECT_TRUE(u.tensors[2].indices.empty());
  std::vector<const DemoUpdate*> ptrs = {&updates[0], &updates[1], &updates[2]};
  demo_apply(plan.value(), ptrs, 0.01, params);
  const TensorInfo& still = f.layout.get("still");
  for (int64_t i = 0; i < still.size; ++i) {
    EXPECT_EQ(params.data()[still.offset + i], before.data()[still.offset + i]);
  }
  int moved = 0;
  const TensorInfo& w = f.layout.get("w");
  for (int64_t i = 0; i < w.size; ++i) {
    const float d = params.data()[w.offset + i] - before.data()[w.offset + i];
    if (d != 0.0f) ++moved;
    EXPECT_NEAR(std::fabs(d), d == 0.0f ? 0.0f : 0.01f, 1e-6);
  }
  EXPECT_GT(moved, w.size / 2);
}

TEST(DemoTest, AggregateIsTheMeanOverPeersThatChoseAnIndex) {
  TensorLayout layout;
  layout.add("v", {4});
  DemoConfig config;
  config.chunk = 4;
  config.topk = 2;
  config.values = DemoValues::kFp16;
  Result<DemoPlan> plan = DemoPlan::create(layout, config);
  ASSERT_TRUE(plan.ok());
  auto update = [](std::vector<uint32_t> idx, std::vector<float> val) {
    DemoUpdate u;
    u.values = DemoValues::kFp16;
    TensorUpdate t;
    t.block_begin = {0, static_cast<uint32_t>(idx.size())};
    t.indices = std::move(idx);
    t.values = std::move(val);
    u.tensors.push_back(std::move(t));
    return u;
  };
  // Index 0: peers a and b → (2 + 4)/2 = 3; index 1: only b → 1 (not 1/2);
  // index 3: a and c cancel → 0.
  const DemoUpdate a = update({0, 3}, {2.0f, 0.5f});
  const DemoUpdate b = update({0, 1}, {4.0f, 1.0f});
  const DemoUpdate c = update({3}, {-0.5f});
  const std::vector<const DemoUpdate*> ptrs = {&a, &b, &c};
  FlatBuffer dir(layout.buffer_size());
  demo_aggregate_direction(plan.value(), ptrs, dir);
  std::vector<float> expect(4);
  const BlockGrid& g = plan.value().grids()[0];
  const uint32_t idx[] = {0, 1};
  const float val[] = {3.0f, 1.0f};
  idct_sparse_block(g, idx, val, expect.data());
  for (int i = 0; i < 4; ++i) EXPECT_EQ(dir.data()[i], expect[i]) << i;
}

TEST(DemoTest, OppositeSignsCancelAndSignOfZeroDoesNotMove) {
  TensorLayout layout;
  layout.add("v", {8});
  DemoConfig config;
  config.chunk = 8;
  config.topk = 1;
  Result<DemoPlan> plan = DemoPlan::create(layout, config);
  ASSERT_TRUE(plan.ok());
  DemoUpdate plus;
  plus.tensors.push_back({{0, 1}, {0}, {1.0f}});
  DemoUpdate minus;
  minus.tensors.push_back({{0, 1}, {0}, {-1.0f}});
  FlatBuffer params(layout.buffer_size());
  for (int i = 0; i < 8; ++i) params.data()[i] = 0.25f * i;
  const std::vector<const DemoUpdate*> both = {&plus, &minus};
  demo_apply(plan.value(), both, 0.5, params);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(params.data()[i], 0.25f * i);
  // A positive DC coefficient alone moves every element down by lr.
  const std::vector<const DemoUpdate*> one = {&plus};
  demo_apply(plan.value(), one, 0.5, params);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(params.data()[i], 0.25f * i - 0.5f);
}

TEST(DemoTest, WeightDecayAppliesToMatricesOnly) {
  Fixture f;
  DemoConfig config;
  config.chunk = 8;
  config.weight_decay = 0.5;
  Result<DemoPlan> plan = DemoPlan::create(f.layout, config);
  ASSERT_TRUE(plan.ok());
  FlatBuffer params(f.layout.buffer_size());
  for (const TensorInfo& info : f.layout.tensors()) {
    for (float& p : params.view(info)) p = 2.0f;
  }
  demo_apply(plan.value(), {}, 0.1, params);  // no updates: decay only
  EXPECT_EQ(params.view(f.layout.get("w"))[5], 2.0f * 0.95f);
  EXPECT_EQ(params.view(f.layout.get("norm"))[5], 2.0f);
}

TEST(DemoTest, LookaheadStepsAgainstTheMomentumSignWithoutTouchingCanonical) {
  Fixture f;
  Result<DemoPlan> plan = DemoPlan::create(f.layout, DemoConfig{});
  ASSERT_TRUE(plan.ok());
  FlatBuffer canonical(f.layout.buffer_size());
  FlatBuffer momentum(f.layout.buffer_size());
  FlatBuffer working(f.layout.buffer_size());
  fill_grads(f.layout, canonical, 1, false);
  fill_grads(f.layout, momentum, 2, true);
  std::vector<float> saved(canonical.data(), canonical.data() + canonical.size());
  demo_lookahead(plan.value(), canonical, momentum, 0.25, working);
  for (int64_t i = 0; i < canonical.size(); ++i) {
    const float d = momentum.data()[i];
    const float s = d > 0 ? 1.0f : (d < 0 ? -1.0f : 0.0f);
    EXPECT_EQ(working.data()[i], saved[i] - 0.25f * s);
    EXPECT_EQ(canonical.data()[i], saved[i]);
  }
}

TEST(DemoTest, PlanHashDependsOnShapesAndSettings) {
  Fixture f;
  DemoConfig config;
  Result<DemoPlan> a = DemoPlan::create(f.layout, config);
  config.topk = 8;
  Result<DemoPlan> b = DemoPlan::create(f.layout, config);
  TensorLayout other;
  other.add("w", {24, 41});
  other.add("norm", {37});
  other.add("still", {8, 8});
  Result<DemoPlan> c = DemoPlan::create(other, DemoConfig{});
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_NE(a.value().table_hash(), b.value().table_hash());
  EXPECT_NE(a.value().table_hash(), c.value().table_hash());
  EXPECT_NE(a.value().describe().find("norm [37]: 1x37 blocks"), std::string::npos)
      << a.value().describe();
}

TEST(DemoTest, ValidateRejectsMalformedUpdates) {
  TensorLayout layout;
  layout.add("v", {8});
  DemoConfig config;
  config.chunk = 8;
  config.topk = 2;
  Result<DemoPlan> plan = DemoPlan::create(layout, config);
  ASSERT_TRUE(plan.ok());
  DemoUpdate u;
  u.tensors.push_back({{0, 2}, {3, 1}, {1.0f, -1.0f}});  // not ascending
  EXPECT_FALSE(validate_update(plan.value(), u).ok());
  u.tensors[0] = {{0, 2}, {1, 8}, {1.0f, -1.0f}};  // outside the block
  EXPECT_FALSE(validate_update(plan.value(), u).ok());
  u.tensors[0] = {{0, 3}, {1, 2, 3}, {1.0f, 1.0f, 1.0f}};  // more than top-k
  EXPECT_NE(validate_update(plan.value(), u).message().find("3 entries (top-k is 2)"),
            std::string::npos);
  u.tensors[0] = {{0, 1}, {1}, {0.5f}};  // sign mode allows only ±1
  EXPECT_NE(validate_update(plan.value(), u).message().find("value 0.5"), std::string::npos);
  u.tensors[0] = {{0, 1}, {1}, {-1.0f}};
  EXPECT_TRUE(validate_update(plan.value(), u).ok());
}

}  // namespace
}  // namespace tern
