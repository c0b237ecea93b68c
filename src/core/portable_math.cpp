#include "core/portable_math.h"

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/check.h"
#include "core/portable_math_terms.h"

namespace tern {

namespace {

using namespace portable_math_terms;

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// 2^k for −1022 ≤ k ≤ 1023.
double pow2(int64_t k) {
  return std::bit_cast<double>(static_cast<uint64_t>(k + 1023) << 52);
}

// Rounds to the nearest integer, ties to even: an exact operation, the same on
// every IEEE platform in the default rounding mode.
double round_to_int(double x) {
  return std::nearbyint(x);
}

// c[0]·x^(n−1) + … + c[n−1] in Horner form: ((c[0]·x + c[1])·x + …) + c[n−1],
// each step a multiply then an add, in this order on every platform.
template <size_t N>
double horner(const double (&c)[N], double x) {
  double p = c[0];
  for (size_t k = 1; k < N; ++k) p = p * x + c[k];
  return p;
}

// sin(hi + lo) for |hi| ≤ about π/4 and |lo| ≤ ulp(hi): the Taylor series to
// hi^19 (the next term is below 2^-60 of the result), as hi + (hi·z·P(z) + lo·cos hi)
// with z = hi², so hi itself is not rounded; cos hi ≈ 1 − z/2 is plenty for lo.
double sin_kernel(double hi, double lo) {
  const double z = hi * hi;
  return hi + (hi * z * horner(kSinTerms, z) + lo * (1.0 - 0.5 * z));
}

// cos(hi + lo) for |hi| ≤ about π/4: 1 − z/2 + z²·Q(z) − lo·sin hi, Q the
// Taylor terms to hi^18. 1 − z/2 is formed as w plus its rounding error, so the
// result keeps the low bits that a plain 1 − z/2 would lose when z/2 is near 0.3.
double cos_kernel(double hi, double lo) {
  const double z = hi * hi;
  const double half_z = 0.5 * z;
  const double w = 1.0 - half_z;
  return w + (((1.0 - w) - half_z) + (z * z * horner(kCosTerms, z) - hi * lo));
}

}  // namespace

double portable_exp(double x) {
  if (x != x) return x;
  if (x > 710.0) return kInf;
  if (x < -745.2) return 0.0;  // below 2^-1075.1: rounds to 0
  // x = n·ln 2 + r, |r| ≤ ln 2 / 2 (a little more where x·log2 e rounded).
  const double n = round_to_int(x * kLog2e);  // in [−1075, 1024]
  const double hi = x - n * kLn2Hi;           // exact: n·kLn2Hi is, and cancels
  const double r = hi - n * kLn2Lo;
  // e^r − 1 = r + r²·p, p the Taylor terms 1/2! … r^11/13! (the next term is
  // below 2^-57).
  const double p = horner(kExpTerms, r);
  const double e_r = 1.0 + (r + r * r * p);
  // ·2^n in two exact steps: the first keeps the value normal (|half| ≤ 538),
  // so a subnormal result is rounded once, by the second.
  const auto k = static_cast<int64_t>(n);
  const int64_t half = k >> 1;
  return e_r * pow2(half) * pow2(k - half);
}

double portable_log(double x) {
  if (x != x) return x;
  if (x < 0.0) return kNaN;
  if (x == 0.0) return -kInf;
  if (x == kInf) return x;
  // x = 2^e · m with m in [√2/2, √2).
  int64_t e = 0;
  if (x < std::numeric_limits<double>::min()) {
    x *= 0x1p54;  // subnormal: scale into the normal range, exactly
    e = -54;
  }
  const auto bits = std::bit_cast<uint64_t>(x);
  e += static_cast<int64_t>(bits >> 52) - 1023;
  double m = std::bit_cast<double>((bits & kMantissaMask) | (uint64_t{1023} << 52));  // [1, 2)
  if (m > kSqrt2) {
    m *= 0.5;
    ++e;
  }
  // log(1 + f) = 2·atanh(s) with s = f/(2 + f), |s| ≤ 0.1716:
  // = f − (f²/2 − s·(f²/2 + R)), R = Σ 2s^(2k)/(2k+1) for k = 1..10 (the next
  // term is below 2^-60 of the result).
  const double f = m - 1.0;  // exact
  const double s = f / (2.0 + f);
  const double z = s * s;
  const double c = horner(kLogTerms, z);
  const double big_r = z * c;
  const double half_f2 = 0.5 * f * f;
  const auto de = static_cast<double>(e);
  return de * kLn2Hi + (f - (half_f2 - (s * (half_f2 + big_r) + de * kLn2Lo)));
}

double portable_pow(double base, double exponent) {
  TERN_CHECK(base >= 0.0 && base < kInf, "portable_pow: base ", base);
  if (base == 0.0) return exponent > 0.0 ? 0.0 : exponent == 0.0 ? 1.0 : kInf;
  return portable_exp(exponent * portable_log(base));
}

SinCos portable_sincos(double x) {
  if (x != x || x == kInf || x == -kInf) return {kNaN, kNaN};
  TERN_CHECK(std::fabs(x) <= kPortableTrigMaxArg, "portable_sincos: |x| = ", std::fabs(x),
             " is beyond ", kPortableTrigMaxArg);
  if (x == 0.0) return {x, 1.0};  // keeps the sign of −0
  // x = n·π/2 + (hi + lo). x − n·part1 is exact (the two are within a factor
  // of 2, or n = 0), and so is n·part2; the rounding error of subtracting it is
  // recovered into lo, with n·part3; what is left of π/2 past part3 is below
  // 2^-113.
  const double n = round_to_int(x * kTwoOverPi);
  const double t = x - n * kPio2Part1;
  const double w = n * kPio2Part2;
  const double t_minus_w = t - w;
  const double correction = n * kPio2Part3 - ((t - t_minus_w) - w);
  const double hi = t_minus_w - correction;
  const double lo = (t_minus_w - hi) - correction;
  const double s = sin_kernel(hi, lo);
  const double c = cos_kernel(hi, lo);
  switch (static_cast<int64_t>(n) & 3) {
    case 0:
      return {s, c};
    case 1:
      return {c, -s};
    case 2:
      return {-s, -c};
    default:
      return {-c, s};
  }
}

double portable_cos(double x) {
  return portable_sincos(x).cos;
}

}  // namespace tern
