// tern's exponential (kernels/ref/exp.h, kernels/cpu/exp.h): accuracy against
// double-precision exp, the range contract, the same bits on every SIMD target,
// and the same bits on every platform (a recorded digest that the x86 and the
// aarch64 runs must both reproduce).
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/exp.h"
#include "kernels/ref/exp.h"

namespace tern {
namespace {

using ref::exp_f32;
using ref::kExpFlushBelow;
using ref::kExpOverflow;

constexpr float kInf = std::numeric_limits<float>::infinity();

// Every float in [kExpFlushBelow, kExpOverflow) at a step of 2^-12, then
// random floats over a wider range, then special values.
std::vector<float> test_inputs() {
  std::vector<float> x;
  for (float v = kExpFlushBelow; v < kExpOverflow; v += 1.0f / 4096.0f) x.push_back(v);
  Rng rng(7);
  for (int i = 0; i < 100000; ++i) x.push_back(static_cast<float>((rng.uniform() - 0.5) * 240.0));
  for (int i = 0; i < 10000; ++i) x.push_back(static_cast<float>((rng.uniform() - 0.5) * 1e-3));
  const float specials[] = {0.0f,
                            -0.0f,
                            1.0f,
                            -1.0f,
                            kInf,
                            -kInf,
                            std::numeric_limits<float>::quiet_NaN(),
                            -std::numeric_limits<float>::quiet_NaN(),
                            kExpOverflow,
                            std::nextafter(kExpOverflow, 0.0f),
                            kExpFlushBelow,
                            std::nextafter(kExpFlushBelow, -kInf),
                            std::numeric_limits<float>::denorm_min(),
                            -std::numeric_limits<float>::denorm_min(),
                            std::numeric_limits<float>::max(),
                            std::numeric_limits<float>::lowest(),
                            1e-30f,
                            -1e-30f};
  x.insert(x.end(), std::begin(specials), std::end(specials));
  return x;
}

// |got − e^x| in units of the float spacing at e^x (normal results only).
double ulp_error(float got, float x) {
  const double truth = std::exp(static_cast<double>(x));
  const float rounded = static_cast<float>(truth);
  const double ulp = static_cast<double>(std::nextafter(rounded, kInf)) - rounded;
  return std::fabs(static_cast<double>(got) - truth) / ulp;
}

TEST(ExpTest, WithinOneUlpAcrossTheRange) {
  double worst = 0.0;
  float worst_x = 0.0f;
  for (float x = kExpFlushBelow; x < kExpOverflow; x += 1.0f / 4096.0f) {
    const double e = ulp_error(exp_f32(x), x);
    if (e > worst) {
      worst = e;
      worst_x = x;
    }
  }
  EXPECT_LE(worst, 1.01) << "at x = " << worst_x;  // 1.005 measured
  // Near 0 the result must be 1 ± 1 ulp, not a rounded-off constant.
  for (float x : {1e-7f, -1e-7f, 3e-5f, -3e-5f}) EXPECT_LE(ulp_error(exp_f32(x), x), 1.0) << x;
}

TEST(ExpTest, RangeContract) {
  EXPECT_EQ(exp_f32(0.0f), 1.0f);
  EXPECT_EQ(exp_f32(-0.0f), 1.0f);
  EXPECT_TRUE(std::isnan(exp_f32(std::numeric_limits<float>::quiet_NaN())));
  EXPECT_EQ(exp_f32(kInf), kInf);
  EXPECT_EQ(exp_f32(1000.0f), kInf);
  EXPECT_EQ(exp_f32(kExpOverflow), kInf);
  const float below_overflow = std::nextafter(kExpOverflow, 0.0f);
  EXPECT_TRUE(std::isfinite(exp_f32(below_overflow)));
  EXPECT_LE(ulp_error(exp_f32(below_overflow), below_overflow), 1.01);
  EXPECT_EQ(exp_f32(-kInf), 0.0f);
  EXPECT_EQ(exp_f32(-1000.0f), 0.0f);
  EXPECT_EQ(exp_f32(std::nextafter(kExpFlushBelow, -kInf)), 0.0f);
  // Every result that is not flushed is a normal float.
  for (float x = kExpFlushBelow; x < kExpFlushBelow + 2.0f; x += 1.0f / 65536.0f) {
    ASSERT_EQ(std::fpclassify(exp_f32(x)), FP_NORMAL) << x;
  }
}

TEST(ExpTest, SameBitsOnEveryTarget) {
  const std::vector<float> x = test_inputs();
  std::vector<float> expected(x.size());
  for (size_t i = 0; i < x.size(); ++i) expected[i] = exp_f32(x[i]);
  for (const int64_t target : cpu::attainable_simd_targets()) {
    SCOPED_TRACE(cpu::simd_target_name(target));
    cpu::ScopedSimdTarget pin(target);
    // Odd lengths and offsets, so every target also runs its scalar tail.
    for (const size_t n : {x.size(), x.size() - 3, size_t{5}}) {
      std::vector<float> y(n, 123.0f);
      cpu::exp_f32(y.data(), x.data() + (x.size() - n), static_cast<int64_t>(n));
      ASSERT_EQ(std::memcmp(y.data(), expected.data() + (x.size() - n), n * sizeof(float)), 0);
    }
    std::vector<float> in_place(x);
    cpu::exp_f32(in_place.data(), in_place.data(), static_cast<int64_t>(in_place.size()));
    ASSERT_EQ(std::memcmp(in_place.data(), expected.data(), x.size() * sizeof(float)), 0);
  }
}

// FNV-1a over the result bits of exp_f32 on the sweep of WithinOneUlp
// (plain float steps, nothing platform-dependent). Recorded on x86-64; the
// aarch64 build under qemu (ctest label arm) must give the same digest, which
// is the point of having our own exp. If the method changes on purpose,
// record the new digest here.
TEST(ExpTest, SameBitsOnEveryPlatform) {
  uint64_t digest = 0xcbf29ce484222325ull;
  for (float x = kExpFlushBelow; x < kExpOverflow; x += 1.0f / 4096.0f) {
    const uint32_t bits = std::bit_cast<uint32_t>(exp_f32(x));
    for (int byte = 0; byte < 4; ++byte) {
      digest ^= (bits >> (8 * byte)) & 0xffu;
      digest *= 0x100000001b3ull;
    }
  }
  EXPECT_EQ(digest, 0x528543eecec0291full) << std::hex << "digest 0x" << digest;
}

}  // namespace
}  // namespace tern
