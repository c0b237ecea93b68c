// core/portable_math.h: accuracy against long double (where it is wider than
// double), the range contracts, and the same bits on every platform (a recorded
// digest that the x86-64 and the aarch64 runs must both reproduce).
#include "core/portable_math.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/rng.h"

namespace tern {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// |got − truth| in units of the double spacing at truth (normal results).
double ulp_error(double got, long double truth) {
  const auto rounded = static_cast<double>(truth);
  const double ulp = std::nextafter(std::fabs(rounded), kInf) - std::fabs(rounded);
  return static_cast<double>(std::fabs(static_cast<long double>(got) - truth) /
                             static_cast<long double>(ulp));
}

// n inputs uniform in [lo, hi), from a fixed seed.
std::vector<double> uniform_inputs(double lo, double hi, int n, uint64_t seed) {
  Rng rng(seed);
  std::vector<double> x(static_cast<size_t>(n));
  for (double& v : x) v = lo + (hi - lo) * rng.uniform();
  return x;
}

// The accuracy tests need a long double wider than double (x86-64's 64-bit
// significand, aarch64's 113-bit one).
bool have_wide_long_double() {
  return std::numeric_limits<long double>::digits > 53;
}

template <typename F, typename Truth>
double worst_error(const std::vector<double>& x, F f, Truth truth, double* worst_x) {
  double worst = 0.0;
  for (double v : x) {
    const double e = ulp_error(f(v), truth(static_cast<long double>(v)));
    if (e > worst) {
      worst = e;
      *worst_x = v;
    }
  }
  return worst;
}

TEST(PortableMathTest, ExpWithinOneUlp) {
  if (!have_wide_long_double()) GTEST_SKIP() << "long double is no wider than double here";
  double at = 0.0;
  for (const auto& [lo, hi] : {std::pair{-708.0, 709.7}, {-1.0, 1.0}, {-1e-6, 1e-6}}) {
    const double worst = worst_error(
        uniform_inputs(lo, hi, 100000, 1), portable_exp, [](long double v) { return expl(v); },
        &at);
    EXPECT_LE(worst, 1.0) << "in [" << lo << ", " << hi << ") at x = " << at;
  }
}

TEST(PortableMathTest, LogWithinOneUlp) {
  if (!have_wide_long_double()) GTEST_SKIP() << "long double is no wider than double here";
  double at = 0.0;
  // Around 1 (where log is small and cancellation would show), the range of
  // Box–Muller's uniforms, and across the exponents.
  for (const auto& [lo, hi] : {std::pair{0.5, 2.0}, {0.999, 1.001}, {1e-16, 1.0}, {1.0, 1e300}}) {
    const double worst = worst_error(
        uniform_inputs(lo, hi, 100000, 2), portable_log, [](long double v) { return logl(v); },
        &at);
    EXPECT_LE(worst, 1.0) << "in [" << lo << ", " << hi << ") at x = " << at;
  }
  // Powers of two and subnormals go through the exponent path alone.
  for (int e = -1074; e <= 1023; e += 7) {
    const double x = std::ldexp(1.0, e);
    EXPECT_LE(ulp_error(portable_log(x), logl(static_cast<long double>(x))), 1.0) << x;
  }
}

TEST(PortableMathTest, SinCosWithinOneUlp) {
  if (!have_wide_long_double()) GTEST_SKIP() << "long double is no wider than double here";
  double at = 0.0;
  // Box–Muller's angles, the schedule's and the DCT's, and RoPE's out to
  // positions of a million, and out near the bound.
  for (const auto& [lo, hi] : {std::pair{0.0, 6.3}, {-1.0, 1.0}, {-1e6, 1e6}, {-3e7, 3e7}}) {
    const auto x = uniform_inputs(lo, hi, 100000, 3);
    const double worst_sin = worst_error(
        x, [](double v) { return portable_sincos(v).sin; }, [](long double v) { return sinl(v); },
        &at);
    EXPECT_LE(worst_sin, 1.0) << "sin in [" << lo << ", " << hi << ") at x = " << at;
    const double worst_cos = worst_error(
        x, portable_cos, [](long double v) { return cosl(v); }, &at);
    EXPECT_LE(worst_cos, 1.0) << "cos in [" << lo << ", " << hi << ") at x = " << at;
  }
}

TEST(PortableMathTest, PowErrorGrowsWithTheExponentOnly) {
  if (!have_wide_long_double()) GTEST_SKIP() << "long double is no wider than double here";
  // RoPE's inverse frequencies: theta^(−2i/d).
  for (const double theta : {10000.0, 500000.0}) {
    for (int i = 0; i < 64; ++i) {
      const double y = -2.0 * i / 128.0;
      const long double truth = powl(static_cast<long double>(theta), static_cast<long double>(y));
      EXPECT_LE(ulp_error(portable_pow(theta, y), truth),
                1.0 + 2.0 * std::fabs(y * std::log(theta)))
          << theta << "^" << y;
    }
  }
  // AdamW's β^t.
  for (const double beta : {0.9, 0.95, 0.999}) {
    for (int t = 1; t <= 100000; t = t * 3 + 1) {
      const long double truth = powl(static_cast<long double>(beta), static_cast<long double>(t));
      EXPECT_LE(ulp_error(portable_pow(beta, t), truth), 1.0 + 2.0 * std::fabs(t * std::log(beta)))
          << beta << "^" << t;
    }
  }
}

TEST(PortableMathTest, RangeContract) {
  EXPECT_EQ(portable_exp(0.0), 1.0);
  EXPECT_EQ(portable_exp(-0.0), 1.0);
  EXPECT_TRUE(std::isnan(portable_exp(kNaN)));
  EXPECT_EQ(portable_exp(kInf), kInf);
  EXPECT_EQ(portable_exp(-kInf), 0.0);
  EXPECT_EQ(portable_exp(709.79), kInf);  // just past ln(DBL_MAX)
  EXPECT_TRUE(std::isfinite(portable_exp(709.78)));
  EXPECT_EQ(portable_exp(-745.0), std::numeric_limits<double>::denorm_min());
  EXPECT_EQ(portable_exp(-746.0), 0.0);
  EXPECT_EQ(std::fpclassify(portable_exp(-720.0)), FP_SUBNORMAL);

  EXPECT_EQ(portable_log(1.0), 0.0);
  EXPECT_EQ(portable_log(0.0), -kInf);
  EXPECT_EQ(portable_log(-0.0), -kInf);
  EXPECT_TRUE(std::isnan(portable_log(-1.0)));
  EXPECT_TRUE(std::isnan(portable_log(kNaN)));
  EXPECT_EQ(portable_log(kInf), kInf);
  EXPECT_EQ(portable_log(std::numeric_limits<double>::denorm_min()), -744.4400719213812);

  EXPECT_EQ(portable_sincos(0.0).sin, 0.0);
  EXPECT_EQ(portable_sincos(0.0).cos, 1.0);
  EXPECT_TRUE(std::signbit(portable_sincos(-0.0).sin));
  EXPECT_TRUE(std::isnan(portable_sincos(kInf).sin));
  EXPECT_TRUE(std::isnan(portable_sincos(-kInf).cos));
  EXPECT_TRUE(std::isnan(portable_sincos(kNaN).cos));
  // The quadrants: sin and cos of ±π/2, π, 3π/2 have the right signs and sizes.
  const double half_pi = 0x1.921fb54442d18p+0;
  EXPECT_EQ(portable_sincos(half_pi).sin, 1.0);
  EXPECT_EQ(portable_sincos(-half_pi).sin, -1.0);
  EXPECT_EQ(portable_sincos(2 * half_pi).cos, -1.0);
  EXPECT_EQ(portable_sincos(3 * half_pi).sin, -1.0);
  EXPECT_LT(std::fabs(portable_sincos(2 * half_pi).sin), 1.3e-16);
  EXPECT_EQ(portable_pow(2.0, 10.0), 1024.0);
  EXPECT_EQ(portable_pow(7.0, 0.0), 1.0);
  EXPECT_EQ(portable_pow(0.0, 3.0), 0.0);  // AdamW with β = 0
  EXPECT_EQ(portable_pow(0.0, 0.0), 1.0);
  EXPECT_EQ(portable_pow(0.0, -1.0), kInf);
}

TEST(PortableMathDeathTest, OutOfContractArgumentsAbort) {
  EXPECT_DEATH(portable_sincos(kPortableTrigMaxArg * 2), "portable_sincos");
  EXPECT_DEATH(portable_pow(-2.0, 0.5), "portable_pow");
  EXPECT_DEATH(portable_pow(kInf, 2.0), "portable_pow");
}

// FNV-1a over the result bits of every function on fixed inputs (Rng's
// uniforms are exact 53-bit fractions, so the inputs are the same everywhere).
// Recorded on x86-64; the aarch64 build under qemu (ctest label arm) must give
// the same digest, which is the point of these functions. If a method changes
// on purpose, record the new digest here.
TEST(PortableMathTest, SameBitsOnEveryPlatform) {
  uint64_t digest = 0xcbf29ce484222325ull;
  auto add = [&](double v) {
    const auto bits = std::bit_cast<uint64_t>(v);
    for (int byte = 0; byte < 8; ++byte) {
      digest ^= (bits >> (8 * byte)) & 0xffu;
      digest *= 0x100000001b3ull;
    }
  };
  for (double x : uniform_inputs(-745.0, 710.0, 50000, 4)) add(portable_exp(x));
  for (double x : uniform_inputs(-1.0, 1.0, 50000, 5)) add(portable_exp(x));
  for (double x : uniform_inputs(0.0, 2.0, 50000, 6)) add(portable_log(x));
  for (double x : uniform_inputs(0.0, 1e300, 50000, 7)) add(portable_log(x));
  for (double x : uniform_inputs(-1e6, 1e6, 50000, 8)) {
    const SinCos sc = portable_sincos(x);
    add(sc.sin);
    add(sc.cos);
  }
  for (double x : uniform_inputs(0.0, 6.3, 50000, 9)) add(portable_sincos(x).sin);
  for (double x : uniform_inputs(-10.0, 10.0, 50000, 10)) add(portable_pow(10000.0, x / 10.0));
  EXPECT_EQ(digest, 0xc94838415c3592b3ull) << std::hex << "digest 0x" << digest;
}

}  // namespace
}  // namespace tern
