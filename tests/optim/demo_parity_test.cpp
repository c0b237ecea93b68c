// Parity of tern's DeMo optimizer with the independent PyTorch reference
// (tests/ref/make_demo_golden.py, tests/ref/README.md "DeMo reference").
//
// demo_dct.tgld: the block-length policy exactly, the DCT-II bases exactly (both
// round the same float64 value once), and single-block forward / sparse inverse
// transforms within 1e-6 of the block's largest |value|.
// demo_{sign,fp16,overlap}.tgld: 3 peers, 20 steps on a layout covering every block
// shape. Inputs are regenerated here from the shared splitmix64 generator (and must
// equal the stored ones bit for bit); gradients are g = (θ_working − target) + 0.5·u.
// Every update goes through the wire codec (encode → decode) before it is used.
// Asserted: kept index sets identical at every step and peer; sent values exactly
// equal (sign) or within 1e-6 relative (fp16: in practice the same fp16 value);
// aggregated directions, canonical params and each peer's final momentum within
// 1e-6·(the tensor's largest |reference value|). The reference walked its seed until
// every discrete decision is far from flipping (margins in the config record), so
// any mismatch is a real difference, not last-bit rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "core/check.h"
#include "core/flat_buffer.h"
#include "optim/dct.h"
#include "optim/demo.h"
#include "optim/demo_codec.h"
#include "support/golden_file.h"

namespace tern {
namespace {

using testing::GoldenFile;

constexpr double kRelTol = 1e-6;
// Generator streams (make_demo_golden.py: S_PARAM, S_TARGET, S_NOISE, S_BLOCK).
constexpr uint64_t kStreamParam = 1, kStreamTarget = 2, kStreamNoise = 3, kStreamBlock = 4;

std::string golden_dir() {
  const char* env = std::getenv("TERN_GOLDEN_DIR");
  return env != nullptr ? env : TERN_SOURCE_DIR "/tests/golden";
}

GoldenFile load(const std::string& stem) {
  const std::string path = golden_dir() + "/" + stem + ".tgld";
  Result<GoldenFile> file = GoldenFile::load(path);
  TERN_CHECK(file.ok(), file.status().message());
  return std::move(file).value();
}

// ---------------------------------------------------------------------------- generator

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// n floats in [-1, 1): h = sm(seed), h = sm(h ^ id) per id, element i = sm(h ^ i);
// value = (x >> 40)·2⁻²³ − 1, exact in fp32.
std::vector<float> uniform(uint64_t seed, const std::vector<uint64_t>& ids, int64_t n) {
  uint64_t h = splitmix64(seed);
  for (uint64_t id : ids) h = splitmix64(h ^ id);
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const uint64_t x = splitmix64(h ^ static_cast<uint64_t>(i));
    out[static_cast<size_t>(i)] = static_cast<float>(x >> 40) * 0x1p-23f - 1.0f;
  }
  return out;
}

// ---------------------------------------------------------------------------- comparisons

// First element where |got − want| > tol·scale, scale = max |want| (or 1e-30), as text;
// empty when all agree.
std::string compare(std::span<const float> got, std::span<const float> want, double tol) {
  if (got.size() != want.size()) {
    return "size " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
  }
  double scale = 1e-30;
  for (float w : want) scale = std::max(scale, std::fabs(static_cast<double>(w)));
  size_t bad = 0, first = 0;
  double worst = 0.0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = std::fabs(static_cast<double>(got[i]) - want[i]);
    worst = std::max(worst, d / scale);
    if (d > tol * scale) {
      if (bad++ == 0) first = i;
    }
  }
  if (bad == 0) return "";
  std::ostringstream s;
  s << bad << " of " << want.size() << " elements differ, worst " << worst
    << " relative to max |want| " << scale << "; first at " << first << ": got " << got[first]
    << " want " << want[first];
  return s.str();
}

// ---------------------------------------------------------------------------- DCT

TEST(demo_parity, DctBasisAndBlocks) {
  const GoldenFile file = load("demo_dct");
  const nlohmann::json cfg = nlohmann::json::parse(file.get("config").text());

  // Block-length policy.
  const auto policy = file.get("policy").i32();
  for (size_t r = 0; r + 4 <= policy.size(); r += 4) {
    int64_t padded = 0;
    const int64_t block = dct_block_length(policy[r], policy[r + 1], &padded);
    EXPECT_EQ(block, policy[r + 2]) << "dim " << policy[r] << " chunk " << policy[r + 1];
    EXPECT_EQ(padded, policy[r + 3]) << "dim " << policy[r] << " chunk " << policy[r + 1];
  }

  // Bases: both sides round the same float64 expression once, so bit-identical.
  for (int64_t n : cfg.at("sizes").get<std::vector<int64_t>>()) {
    const auto want = file.get("basis/n" + std::to_string(n)).f32();
    const auto got = dct_basis(n);
    ASSERT_EQ(got.size(), want.size()) << n;
    for (size_t i = 0; i < want.size(); ++i) {
      EXPECT_EQ(got[i], want[i]) << "basis n=" << n << " entry " << i;
    }
  }

  // Single blocks: forward transform and a sparse inverse.
  const auto seed = cfg.at("seed").get<uint64_t>();
  const auto idct_kept = cfg.at("idct_kept").get<std::vector<uint32_t>>();
  for (const auto& b : cfg.at("blocks")) {
    const int64_t br = b.at(0).get<int64_t>(), bc = b.at(1).get<int64_t>();
    const std::string tag = "block/" + std::to_string(br) + "x" + std::to_string(bc) + "/";
    const std::vector<int64_t> shape =
        br == 1 ? std::vector<int64_t>{bc} : std::vector<int64_t>{br, bc};
    const BlockGrid grid = make_block_grid(shape, 64);
    ASSERT_EQ(grid.num_blocks(), 1);
    ASSERT_EQ(grid.block_size(), br * bc);
    const std::vector<float> x = uniform(
        seed, {kStreamBlock, static_cast<uint64_t>(br), static_cast<uint64_t>(bc)}, br * bc);
    const auto want_x = file.get(tag + "input").f32();
    ASSERT_TRUE(std::equal(x.begin(), x.end(), want_x.begin(), want_x.end())) << tag;

    std::vector<float> gathered(x.size()), coeffs(x.size()), scratch(x.size());
    gather_block(grid, x.data(), 0, gathered.data());
    dct_forward_block(grid, gathered.data(), coeffs.data(), scratch.data());
    const auto want_c = file.get(tag + "forward").f32();
    EXPECT_EQ(compare(coeffs, want_c, kRelTol), "") << tag << "forward";

    std::vector<uint32_t> idx;
    std::vector<float> vals;
    for (uint32_t i : idct_kept) {
      if (i < static_cast<uint32_t>(br * bc)) {
        idx.push_back(i);
        vals.push_back(want_c[i]);
      }
    }
    std::vector<float> inv(x.size());
    idct_sparse_block(grid, idx, vals, inv.data());
    EXPECT_EQ(compare(inv, file.get(tag + "inverse").f32(), kRelTol), "") << tag << "inverse";
  }
}

// Exact ties in |C| (a one-hot gradient with lr 1, so C_k is a basis entry or a product
// of two): with top-2 the lower coefficient index must win, as in the reference.
TEST(demo_parity, TopKTieBreak) {
  const GoldenFile file = load("demo_dct");
  const nlohmann::json ties = nlohmann::json::parse(file.get("config").text()).at("ties");
  TensorLayout layout;
  int n = 0;
  for (const auto& shape : ties.at("shapes")) {
    layout.add("tie" + std::to_string(n++), shape.get<std::vector<int64_t>>());
  }
  DemoConfig config;
  config.chunk = ties.at("chunk").get<int64_t>();
  config.topk = ties.at("topk").get<int64_t>();
  Result<DemoPlan> plan = DemoPlan::create(layout, config);
  ASSERT_TRUE(plan.ok()) << plan.status().message();
  DemoOptimizer opt(plan.value());
  FlatBuffer grads(layout.buffer_size());
  for (const TensorInfo& info : layout.tensors()) grads.view(info)[0] = 1.0f;
  const DemoUpdate u = opt.encode(grads, ties.at("lr").get<double>(), 1);
  std::vector<int32_t> got_idx;
  std::vector<float> got_val;
  for (const TensorUpdate& t : u.tensors) {
    got_idx.insert(got_idx.end(), t.indices.begin(), t.indices.end());
    got_val.insert(got_val.end(), t.values.begin(), t.values.end());
  }
  const auto want_idx = file.get("ties/index").i32();
  const auto want_val = file.get("ties/value").f32();
  EXPECT_EQ(got_idx, std::vector<int32_t>(want_idx.begin(), want_idx.end()));
  EXPECT_EQ(got_val, std::vector<float>(want_val.begin(), want_val.end()));
}

// ---------------------------------------------------------------------------- trajectories

struct Case {
  GoldenFile file;
  nlohmann::json cfg;
  TensorLayout layout;
  std::unique_ptr<DemoPlan> plan;
  uint64_t seed = 0;
  int64_t peers = 0, steps = 0;
  double lr = 0.0;
  float noise = 0.0f;
  bool overlap = false;
};

Case load_case(const std::string& stem) {
  Case c;
  c.file = load(stem);
  c.cfg = nlohmann::json::parse(c.file.get("config").text());
  for (const auto& t : c.cfg.at("tensors")) {
    c.layout.add(t.at("name").get<std::string>(), t.at("shape").get<std::vector<int64_t>>());
  }
  DemoConfig config;
  config.chunk = c.cfg.at("chunk").get<int64_t>();
  config.topk = c.cfg.at("topk").get<int64_t>();
  config.beta = c.cfg.at("beta").get<double>();
  config.weight_decay = c.cfg.at("weight_decay").get<double>();
  Result<DemoValues> values = parse_demo_values(c.cfg.at("values").get<std::string>());
  TERN_CHECK(values.ok(), values.status().message());
  config.values = values.value();
  Result<DemoPlan> plan = DemoPlan::create(c.layout, config);
  TERN_CHECK(plan.ok(), plan.status().message());
  c.plan = std::make_unique<DemoPlan>(std::move(plan).value());
  c.seed = c.cfg.at("seed").get<uint64_t>();
  c.peers = c.cfg.at("peers").get<int64_t>();
  c.steps = c.cfg.at("steps").get<int64_t>();
  c.lr = c.cfg.at("lr").get<double>();
  c.noise = c.cfg.at("noise").get<float>();
  c.overlap = c.cfg.at("overlap").get<bool>();
  return c;
}

// Golden flat records hold the tensors' elements back to back (no alignment padding).
std::vector<float> pack(const TensorLayout& layout, const FlatBuffer& buffer) {
  std::vector<float> out;
  for (const TensorInfo& info : layout.tensors()) {
    const auto v = buffer.view(info);
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

// Per tensor, in a packed record: [begin, begin + size).
std::span<const float> tensor_slice(const TensorLayout& layout, std::span<const float> packed,
                                    size_t t) {
  int64_t begin = 0;
  for (size_t i = 0; i < t; ++i) begin += layout.at(i).size;
  return packed.subspan(static_cast<size_t>(begin), static_cast<size_t>(layout.at(t).size));
}

// Compares every tensor of `got` with the packed reference record `name`.
void expect_tensors_near(const Case& c, const FlatBuffer& got, const std::string& name,
                         const std::string& what) {
  const auto want = c.file.get(name).f32();
  ASSERT_EQ(want.size(), static_cast<size_t>(c.layout.num_elements())) << name;
  for (size_t t = 0; t < c.layout.count(); ++t) {
    EXPECT_EQ(compare(got.view(c.layout.at(t)), tensor_slice(c.layout, want, t), kRelTol), "")
        << what << ", tensor " << c.layout.at(t).name;
  }
}

std::vector<float> generated(const Case& c, std::initializer_list<uint64_t> prefix, size_t t,
                             std::initializer_list<uint64_t> suffix) {
  std::vector<uint64_t> ids(prefix);
  ids.push_back(t);
  ids.insert(ids.end(), suffix);
  return uniform(c.seed, ids, c.layout.at(t).size);
}

// Compares one peer's (decoded) update with the golden slots of step/peer.
void expect_update_matches(const Case& c, const DemoUpdate& u, int64_t step, int64_t peer) {
  const GoldenFile& f = c.file;
  const auto& idx_rec = f.get("kept/index");
  const auto index = idx_rec.i8();
  const auto value = f.get("kept/value").f32();
  const auto slots = static_cast<size_t>(idx_rec.dims.at(2));
  const size_t row =
      (static_cast<size_t>(step - 1) * static_cast<size_t>(c.peers) + static_cast<size_t>(peer)) *
      slots;
  const bool sign = c.plan->config().values == DemoValues::kSign;
  size_t slot = 0;
  ASSERT_EQ(u.tensors.size(), c.layout.count());
  for (size_t t = 0; t < c.layout.count(); ++t) {
    const TensorUpdate& tu = u.tensors[t];
    const BlockGrid& grid = c.plan->grids()[t];
    const auto k = static_cast<size_t>(c.plan->topk(t));
    for (int64_t b = 0; b < grid.num_blocks(); ++b, slot += k) {
      std::vector<uint32_t> want_idx;
      std::vector<float> want_val;
      for (size_t s = 0; s < k; ++s) {
        if (index[row + slot + s] >= 0) {
          want_idx.push_back(static_cast<uint32_t>(index[row + slot + s]));
          want_val.push_back(value[row + slot + s]);
        }
      }
      const std::vector<uint32_t> got_idx(tu.indices.begin() + tu.block_begin[b],
                                          tu.indices.begin() + tu.block_begin[b + 1]);
      const std::vector<float> got_val(tu.values.begin() + tu.block_begin[b],
                                       tu.values.begin() + tu.block_begin[b + 1]);
      const std::string where = "step " + std::to_string(step) + " peer " + std::to_string(peer) +
                                " tensor " + c.layout.at(t).name + " block " + std::to_string(b);
      ASSERT_EQ(got_idx, want_idx) << where << ": kept index set";
      for (size_t e = 0; e < want_val.size(); ++e) {
        if (sign) {
          ASSERT_EQ(got_val[e], want_val[e]) << where << " entry " << e;
        } else {
          ASSERT_LE(std::fabs(static_cast<double>(got_val[e]) - want_val[e]),
                    kRelTol * std::fabs(static_cast<double>(want_val[e])))
              << where << " entry " << e << ": got " << got_val[e] << " want " << want_val[e];
        }
      }
    }
  }
  ASSERT_EQ(slot, slots);
}

void run_trajectory(const std::string& stem) {
  const Case c = load_case(stem);
  const DemoPlan& plan = *c.plan;
  const TensorLayout& layout = c.layout;
  const int64_t n = layout.buffer_size();

  FlatBuffer params(n), target(n);
  for (size_t t = 0; t < layout.count(); ++t) {
    const auto p = generated(c, {kStreamParam}, t, {});
    const auto g = generated(c, {kStreamTarget}, t, {});
    std::copy(p.begin(), p.end(), params.view(layout.at(t)).begin());
    std::copy(g.begin(), g.end(), target.view(layout.at(t)).begin());
  }
  // The generator must reproduce the reference's inputs bit for bit.
  ASSERT_EQ(compare(pack(layout, params), c.file.get("params/init").f32(), 0.0), "");

  const auto snapshots = c.cfg.at("snapshot_steps").get<std::vector<int64_t>>();
  const auto directions = c.cfg.at("direction_steps").get<std::vector<int64_t>>();
  std::vector<DemoOptimizer> peers;
  for (int64_t p = 0; p < c.peers; ++p) peers.emplace_back(plan);
  std::vector<FlatBuffer> grads;
  for (int64_t p = 0; p < c.peers; ++p) grads.emplace_back(n);
  FlatBuffer working(n), direction(n);
  std::vector<DemoUpdate> pending;
  auto pointers = [](const std::vector<DemoUpdate>& us) {
    std::vector<const DemoUpdate*> out;
    for (const DemoUpdate& u : us) out.push_back(&u);
    return out;
  };

  for (int64_t step = 1; step <= c.steps; ++step) {
    for (int64_t p = 0; p < c.peers; ++p) {
      const FlatBuffer* at = &params;
      if (c.overlap) {
        demo_lookahead(plan, params, peers[p].momentum(), c.lr, working);
        at = &working;
      }
      for (size_t t = 0; t < layout.count(); ++t) {
        const TensorInfo& info = layout.at(t);
        const auto u = generated(c, {kStreamNoise}, t,
                                 {static_cast<uint64_t>(p), static_cast<uint64_t>(step)});
        const auto w = at->view(info);
        const auto tg = target.view(info);
        auto g = grads[p].view(info);
        for (int64_t i = 0; i < info.size; ++i) g[i] = (w[i] - tg[i]) + c.noise * u[i];
      }
    }
    if (c.overlap && !pending.empty()) {
      const auto ptrs = pointers(pending);
      demo_apply(plan, ptrs, c.lr, params);
    }
    std::vector<DemoUpdate> updates;
    for (int64_t p = 0; p < c.peers; ++p) {
      const DemoUpdate sent = peers[p].encode(grads[p], c.lr, step);
      // Through the wire: what the other peers would decode.
      const std::vector<uint8_t> bytes = encode_demo_update(plan, sent);
      Result<DemoUpdate> received = decode_demo_update(plan, bytes);
      ASSERT_TRUE(received.ok()) << received.status().message();
      ASSERT_TRUE(received.value() == sent) << "codec round trip, step " << step << " peer " << p;
      ASSERT_NO_FATAL_FAILURE(expect_update_matches(c, received.value(), step, p));
      updates.push_back(std::move(received).value());
    }
    const auto ptrs = pointers(updates);
    demo_aggregate_direction(plan, ptrs, direction);
    if (std::find(directions.begin(), directions.end(), step) != directions.end()) {
      expect_tensors_near(c, direction, "direction/step" + std::to_string(step),
                          "direction at step " + std::to_string(step));
    }
    if (c.overlap) {
      pending = std::move(updates);
    } else {
      demo_apply(plan, ptrs, c.lr, params);
    }
    if (std::find(snapshots.begin(), snapshots.end(), step) != snapshots.end()) {
      expect_tensors_near(c, params, "params/step" + std::to_string(step),
                          "params after step " + std::to_string(step));
    }
    ASSERT_FALSE(::testing::Test::HasFailure()) << "stopping at step " << step;
  }
  if (c.overlap) {
    const auto ptrs = pointers(pending);
    demo_apply(plan, ptrs, c.lr, params);
  }
  expect_tensors_near(c, params,
                      c.overlap ? "params/final" : "params/step" + std::to_string(c.steps),
                      "final params");
  // Momentum: relative to the peer's largest |δ| over all tensors. A block that keeps
  // most of its coefficients (g.small keeps 3 of 4) leaves a residual that is
  // cancellation noise at the scale of the momentum before extraction, so its own
  // max would be the wrong scale.
  for (int64_t p = 0; p < c.peers; ++p) {
    const std::string name = "momentum/peer" + std::to_string(p);
    EXPECT_EQ(compare(pack(layout, peers[p].momentum()), c.file.get(name).f32(), kRelTol), "")
        << "final momentum of peer " << p;
  }
}

TEST(demo_parity, SignTrajectory) {
  run_trajectory("demo_sign");
}
TEST(demo_parity, FP16Trajectory) {
  run_trajectory("demo_fp16");
}
TEST(demo_parity, OverlapTrajectory) {
  run_trajectory("demo_overlap");
}

}  // namespace
}  // namespace tern
