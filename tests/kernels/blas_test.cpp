// Dense fp32 products (kernels/cpu/blas.h): every SIMD target against the scalar
// references on odd shapes, and the determinism the model relies on: same bits
// for any thread count, a row's result independent of how many rows one call
// gets, a chunked weight gradient equal to one call over all rows.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/ref/f16_linear.h"
#include "kernels/ref/linear.h"

namespace tern::cpu {
namespace {

std::vector<float> random_floats(Rng& rng, int64_t n) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(rng.normal());
  return v;
}

// Finite binary16 weights of magnitude 2^-6 … 4, with some subnormals and zeros.
std::vector<uint16_t> random_f16(Rng& rng, int64_t n) {
  std::vector<uint16_t> v(static_cast<size_t>(n));
  for (uint16_t& h : v) {
    const uint32_t sign = static_cast<uint32_t>(rng.below(2)) << 15;
    const uint32_t mantissa = static_cast<uint32_t>(rng.below(1024));
    const uint64_t kind = rng.below(20);
    const uint32_t exponent = kind == 0 ? 0 : static_cast<uint32_t>(9 + rng.below(8));
    h = static_cast<uint16_t>(sign | (exponent << 10) | (kind == 1 ? 0 : mantissa));
  }
  return v;
}

// max |a − b| / max |ref|: relative error in the max norm, so values near zero
// are judged against the scale of the whole result.
double max_norm_error(const std::vector<float>& a, const std::vector<float>& ref) {
  EXPECT_EQ(a.size(), ref.size());
  double diff = 0.0, scale = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    if (!std::isfinite(a[i])) return std::numeric_limits<double>::infinity();
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - ref[i]));
    scale = std::max(scale, std::fabs(static_cast<double>(ref[i])));
  }
  return diff / std::max(scale, 1e-30);
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// Restores the default pool size when a test changes it.
class ThreadCountGuard {
 public:
  ~ThreadCountGuard() {
    const unsigned hw = std::thread::hardware_concurrency();
    set_num_threads(hw == 0 ? 1 : static_cast<int>(hw));
  }
};

// One problem and the five products on it.
struct Problem {
  int64_t n, in, out;
  std::vector<float> x, w, dy, dw0;
  std::vector<uint16_t> h;

  Problem(int64_t n_, int64_t in_, int64_t out_, uint64_t seed) : n(n_), in(in_), out(out_) {
    Rng rng(seed);
    x = random_floats(rng, n * in);
    w = random_floats(rng, out * in);
    dy = random_floats(rng, n * out);
    dw0 = random_floats(rng, out * in);
    h = random_f16(rng, out * in);
  }
};

struct Outputs {
  std::vector<float> y, dx, dw, y16, dx16;
};

// NaN-filled outputs, so an element a kernel forgets to write is caught.
Outputs blank(const Problem& p) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  Outputs o;
  o.y.assign(static_cast<size_t>(p.n * p.out), nan);
  o.dx.assign(static_cast<size_t>(p.n * p.in), nan);
  o.dw = p.dw0;
  o.y16 = o.y;
  o.dx16 = o.dx;
  return o;
}

Outputs run_cpu(const Problem& p) {
  Outputs o = blank(p);
  linear_forward(o.y.data(), p.x.data(), p.w.data(), p.n, p.in, p.out);
  linear_backward_input(o.dx.data(), p.dy.data(), p.w.data(), p.n, p.in, p.out);
  linear_backward_weight(o.dw.data(), p.dy.data(), p.x.data(), p.n, p.in, p.out);
  linear_f16_forward(o.y16.data(), p.x.data(), p.h.data(), p.n, p.in, p.out);
  linear_f16_backward_input(o.dx16.data(), p.dy.data(), p.h.data(), p.n, p.in, p.out);
  return o;
}

Outputs run_ref(const Problem& p) {
  Outputs o = blank(p);
  ref::linear_forward(o.y.data(), p.x.data(), p.w.data(), p.n, p.in, p.out);
  ref::linear_backward_input(o.dx.data(), p.dy.data(), p.w.data(), p.n, p.in, p.out);
  ref::linear_backward_weight(o.dw.data(), p.dy.data(), p.x.data(), p.n, p.in, p.out);
  ref::linear_f16_forward(o.y16.data(), p.x.data(), p.h.data(), p.n, p.in, p.out);
  ref::linear_f16_backward_input(o.dx16.data(), p.dy.data(), p.h.data(), p.n, p.in, p.out);
  return o;
}

void expect_same_bits(const Outputs& a, const Outputs& b, bool with_dw = true) {
  EXPECT_TRUE(same_bits(a.y, b.y)) << "forward";
  EXPECT_TRUE(same_bits(a.dx, b.dx)) << "backward_input";
  if (with_dw) {
    EXPECT_TRUE(same_bits(a.dw, b.dw)) << "backward_weight";
  }
  EXPECT_TRUE(same_bits(a.y16, b.y16)) << "f16_forward";
  EXPECT_TRUE(same_bits(a.dx16, b.dx16)) << "f16_backward_input";
}

constexpr double kTolerance = 1e-5;

void expect_close(const Outputs& a, const Outputs& b) {
  EXPECT_LE(max_norm_error(a.y, b.y), kTolerance) << "forward";
  EXPECT_LE(max_norm_error(a.dx, b.dx), kTolerance) << "backward_input";
  EXPECT_LE(max_norm_error(a.dw, b.dw), kTolerance) << "backward_weight";
  EXPECT_LE(max_norm_error(a.y16, b.y16), kTolerance) << "f16_forward";
  EXPECT_LE(max_norm_error(a.dx16, b.dx16), kTolerance) << "f16_backward_input";
}

// Tails of every block size (8 lanes, 3-row and 4-row blocks, vectors of 4, 8
// or 16 columns, 64-wide tiles, 512-term passes). The largest products are left
// out so the sanitizer build stays quick.
std::vector<Problem> odd_shapes() {
  std::vector<Problem> problems;
  uint64_t seed = 1;
  for (int64_t n : {1, 3, 17, 64}) {
    for (int64_t in : {1, 7, 33, 100, 768}) {
      for (int64_t out : {1, 7, 33, 100, 768}) {
        if (n * in * out <= 2'000'000) problems.emplace_back(n, in, out, seed++);
      }
    }
  }
  problems.emplace_back(5, 300, 1000, seed++);  // input gradient over > 512 terms
  problems.emplace_back(70, 300, 260, seed++);  // several tiles with tails both ways
  problems.emplace_back(600, 9, 130, seed++);   // weight gradient over > 512 rows
  return problems;
}

TEST(BlasTest, EveryTargetGivesTheReferenceBits) {
  const std::vector<Problem> problems = odd_shapes();
  std::vector<Outputs> want;
  for (const Problem& p : problems) want.push_back(run_ref(p));
  for (const int64_t target : attainable_simd_targets()) {
    ScopedSimdTarget pin(target);
    for (size_t i = 0; i < problems.size(); ++i) {
      const Problem& p = problems[i];
      SCOPED_TRACE(testing::Message() << simd_target_name(target) << " n=" << p.n << " in=" << p.in
                                      << " out=" << p.out);
      const Outputs got = run_cpu(p);
      expect_same_bits(got, want[i]);
      expect_close(got, want[i]);  // the weaker norm check, for its message
    }
  }
}

TEST(BlasTest, ErrorMetricCatchesAWrongProduct) {
  // The tolerance means something: x·W (the wrong orientation) is far from x·Wᵀ.
  Rng rng(3);
  const int64_t n = 4, d = 33;
  const std::vector<float> x = random_floats(rng, n * d);
  const std::vector<float> w = random_floats(rng, d * d);
  std::vector<float> right(static_cast<size_t>(n * d)), wrong(right.size());
  ref::linear_forward(right.data(), x.data(), w.data(), n, d, d);
  ref::linear_backward_input(wrong.data(), x.data(), w.data(), n, d, d);
  EXPECT_GT(max_norm_error(wrong, right), 0.1);
}

TEST(BlasTest, SpecialValuesAsTheReference) {
  // Infinities, NaN, signed zeros and subnormal inputs follow the same operations,
  // on every target, for one row of x (binary16 widened where it is loaded) and
  // for several (widened into scratch).
  auto same_or_both_nan = [](const std::vector<float>& a, const std::vector<float>& b) {
    for (size_t i = 0; i < a.size(); ++i) {
      if (std::isnan(a[i]) && std::isnan(b[i])) continue;
      if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) return false;
    }
    return true;
  };
  for (const int64_t n : {1, 5}) {
    Problem p(n, 45, 11, 4);
    const float inf = std::numeric_limits<float>::infinity();
    if (n > 1) p.x[3] = inf;  // row 0 only: the other rows see the weights' specials
    p.x[40] = -0.0f;
    p.x[41] = std::numeric_limits<float>::denorm_min();
    p.w[7] = std::numeric_limits<float>::quiet_NaN();
    p.w[30] = -inf;
    p.dy[2] = 0.0f;
    p.dy[9] = -std::numeric_limits<float>::denorm_min();
    p.h[5] = 0x7c00;    // +inf
    p.h[9] = 0x8000;    // −0
    p.h[50] = 0xfc00;   // −inf
    p.h[95] = 0x0001;   // the smallest subnormal
    p.h[140] = 0x83ff;  // the largest negative subnormal
    p.h[185] = 0x7e01;  // NaN
    const Outputs want = run_ref(p);
    for (const int64_t target : attainable_simd_targets()) {
      ScopedSimdTarget pin(target);
      SCOPED_TRACE(testing::Message() << simd_target_name(target) << " n=" << n);
      const Outputs got = run_cpu(p);
      EXPECT_TRUE(same_or_both_nan(got.y, want.y));
      EXPECT_TRUE(same_or_both_nan(got.dx, want.dx));
      EXPECT_TRUE(same_or_both_nan(got.dw, want.dw));
      EXPECT_TRUE(same_or_both_nan(got.y16, want.y16));
      EXPECT_TRUE(same_or_both_nan(got.dx16, want.dx16));
    }
  }
}

TEST(BlasTest, EmptyDimensions) {
  // in = 0: y = 0; out = 0: dx = 0; n = 0: nothing changes.
  for (auto [n, in, out] : {std::tuple{2, 0, 3}, {2, 3, 0}, {0, 3, 2}}) {
    const Problem p(n, in, out, 5);
    expect_same_bits(run_cpu(p), run_ref(p));
  }
}

TEST(BlasTest, WidenF16IsExact) {
  std::vector<uint16_t> all(65536);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  for (const int64_t target : attainable_simd_targets()) {
    ScopedSimdTarget pin(target);
    std::vector<float> wide(all.size());
    widen_f16(wide.data(), all.data(), static_cast<int64_t>(all.size()));
    for (size_t i = 0; i < all.size(); ++i) {
      const float expected = ref::f16_to_f32(all[i]);
      if (std::isnan(expected)) {
        ASSERT_TRUE(std::isnan(wide[i])) << i;
      } else {
        ASSERT_EQ(std::memcmp(&wide[i], &expected, sizeof(float)), 0)
            << simd_target_name(target) << " binary16 " << i;
      }
    }
  }
}

TEST(BlasTest, SameBitsForAnyThreadCount) {
  ThreadCountGuard guard;
  // Many tiles with tails in every dimension, more than one 512-term pass.
  const Problem p(37, 300, 1000, 11);
  set_num_threads(1);
  const Outputs one = run_cpu(p);
  for (int threads : {2, 3, 7}) {
    SCOPED_TRACE(testing::Message() << threads << " threads");
    set_num_threads(threads);
    expect_same_bits(run_cpu(p), one);
  }
}

// Forward and input gradients of rows [begin, end) computed on their own.
Outputs run_rows(const Problem& p, int64_t begin, int64_t end) {
  Problem part = p;
  part.n = end - begin;
  part.x.assign(p.x.begin() + begin * p.in, p.x.begin() + end * p.in);
  part.dy.assign(p.dy.begin() + begin * p.out, p.dy.begin() + end * p.out);
  return run_cpu(part);
}

TEST(BlasTest, RowResultsDoNotDependOnRowsPerCall) {
  ThreadCountGuard guard;
  set_num_threads(2);
  const Problem p(67, 300, 600, 12);
  const Outputs all = run_cpu(p);
  auto slice = [](const std::vector<float>& v, int64_t begin, int64_t end, int64_t width) {
    return std::vector<float>(v.begin() + begin * width, v.begin() + end * width);
  };
  auto check_range = [&](int64_t begin, int64_t end) {
    SCOPED_TRACE(testing::Message() << "rows [" << begin << ", " << end << ")");
    Outputs part = run_rows(p, begin, end);
    Outputs expected;
    expected.y = slice(all.y, begin, end, p.out);
    expected.dx = slice(all.dx, begin, end, p.in);
    expected.y16 = slice(all.y16, begin, end, p.out);
    expected.dx16 = slice(all.dx16, begin, end, p.in);
    expect_same_bits(part, expected, /*with_dw=*/false);
  };
  // The model's 32-row chunks, a KV-cache decoder's single rows, odd ranges.
  for (int64_t begin = 0; begin < p.n; begin += 32) check_range(begin, std::min(p.n, begin + 32));
  for (int64_t row : {0, 1, 5, 31, 32, 33, 66}) check_range(row, row + 1);
  check_range(3, 20);
  check_range(5, 67);
}

TEST(BlasTest, ChunkedWeightGradientEqualsOneCall) {
  // The model accumulates the weight gradient chunk by chunk in one mode and over
  // all rows in another; both must give the same bits.
  const Problem p(70, 150, 90, 13);
  std::vector<float> whole = p.dw0, chunked = p.dw0;
  linear_backward_weight(whole.data(), p.dy.data(), p.x.data(), p.n, p.in, p.out);
  for (int64_t r0 = 0; r0 < p.n; r0 += 32) {
    const int64_t rows = std::min<int64_t>(32, p.n - r0);
    linear_backward_weight(chunked.data(), p.dy.data() + r0 * p.out, p.x.data() + r0 * p.in, rows,
                           p.in, p.out);
  }
  EXPECT_TRUE(same_bits(whole, chunked));
}

TEST(BlasTest, F16KernelsGiveTheBitsOfFp32OnWidenedWeights) {
  const Problem p(19, 300, 260, 14);
  std::vector<float> wide(p.h.size());
  widen_f16(wide.data(), p.h.data(), static_cast<int64_t>(wide.size()));
  std::vector<float> y(static_cast<size_t>(p.n * p.out)), y16(y.size());
  linear_forward(y.data(), p.x.data(), wide.data(), p.n, p.in, p.out);
  linear_f16_forward(y16.data(), p.x.data(), p.h.data(), p.n, p.in, p.out);
  EXPECT_TRUE(same_bits(y, y16));
  std::vector<float> dx(static_cast<size_t>(p.n * p.in)), dx16(dx.size());
  linear_backward_input(dx.data(), p.dy.data(), wide.data(), p.n, p.in, p.out);
  linear_f16_backward_input(dx16.data(), p.dy.data(), p.h.data(), p.n, p.in, p.out);
  EXPECT_TRUE(same_bits(dx, dx16));
}

TEST(BlasTest, OpenBlasProductsMatchTheReference) {
  ThreadCountGuard guard;
  EXPECT_FALSE(blas_core_name().empty());
  for (const auto& [n, in, out] : {std::tuple{1, 7, 1}, {33, 200, 150}, {64, 768, 300}}) {
    SCOPED_TRACE(testing::Message() << "n=" << n << " in=" << in << " out=" << out);
    const Problem p(n, in, out, 15);
    std::vector<float> want(static_cast<size_t>(n * out)), tiled(want.size()),
        threaded(want.size());
    ref::linear_forward(want.data(), p.x.data(), p.w.data(), n, in, out);
    openblas_linear_forward(tiled.data(), p.x.data(), p.w.data(), n, in, out);
    sgemm_openblas_threaded(threaded.data(), p.x.data(), p.w.data(), n, in, out, 2);
    EXPECT_LE(max_norm_error(tiled, want), kTolerance);
    EXPECT_LE(max_norm_error(threaded, want), kTolerance);
    // The tiled OpenBLAS product keeps its bits for any pool size.
    set_num_threads(1);
    std::vector<float> one(want.size());
    openblas_linear_forward(one.data(), p.x.data(), p.w.data(), n, in, out);
    set_num_threads(3);
    openblas_linear_forward(tiled.data(), p.x.data(), p.w.data(), n, in, out);
    EXPECT_TRUE(same_bits(one, tiled));
  }
}

}  // namespace
}  // namespace tern::cpu
