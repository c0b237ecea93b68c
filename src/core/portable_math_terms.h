// The constants of core/portable_math.cpp's reductions and series, shared with
// the SIMD Box–Muller (kernels/cpu/box_muller.cpp), which repeats the scalar
// functions' operations lane by lane and so must use the very same numbers.
#pragma once

#include <cstdint>

namespace tern::portable_math_terms {

// ln 2 in two parts (Cody and Waite): the high part has 42 significant bits, so
// k·kLn2Hi is exact for every exponent |k| < 2^11 that exp and log meet.
inline constexpr double kLn2Hi = 0x1.62e42fefa3800p-1;
inline constexpr double kLn2Lo = 0x1.ef35793c76730p-45;
inline constexpr double kLog2e = 0x1.71547652b82fep+0;
inline constexpr double kSqrt2 = 0x1.6a09e667f3bcdp+0;

// π/2 in three parts: the first two have 28 significant bits, so n·part is exact
// for |n| < 2^25, which |x| ≤ kPortableTrigMaxArg guarantees.
inline constexpr double kPio2Part1 = 0x1.921fb54000000p+0;
inline constexpr double kPio2Part2 = 0x1.10b4612000000p-30;
inline constexpr double kPio2Part3 = -0x1.676733ae8fe48p-60;
inline constexpr double kTwoOverPi = 0x1.45f306dc9c883p-1;

// The 52 fraction bits of a double.
inline constexpr uint64_t kMantissaMask = (uint64_t{1} << 52) - 1;

// Taylor coefficients, rounded to double, highest degree first.
// sin: ±1/k! for k = 19, 17, …, 3, as a polynomial in z = x².
inline constexpr double kSinTerms[] = {
    -0x1.2f49b46814157p-57, 0x1.952c77030ad4ap-49,  -0x1.ae7f3e733b81fp-41,
    0x1.6124613a86d09p-33,  -0x1.ae64567f544e4p-26, 0x1.71de3a556c734p-19,
    -0x1.a01a01a01a01ap-13, 0x1.1111111111111p-7,   -0x1.5555555555555p-3};
// cos: ±1/k! for k = 18, 16, …, 4, in z = x².
inline constexpr double kCosTerms[] = {
    -0x1.6827863b97d97p-53, 0x1.ae7f3e733b81fp-45, -0x1.93974a8c07c9dp-37, 0x1.1eed8eff8d898p-29,
    -0x1.27e4fb7789f5cp-22, 0x1.a01a01a01a01ap-16, -0x1.6c16c16c16c17p-10, 0x1.5555555555555p-5};
// exp: 1/k! for k = 13, 12, …, 2, in x.
inline constexpr double kExpTerms[] = {
    0x1.6124613a86d09p-33, 0x1.1eed8eff8d898p-29, 0x1.ae64567f544e4p-26, 0x1.27e4fb7789f5cp-22,
    0x1.71de3a556c734p-19, 0x1.a01a01a01a01ap-16, 0x1.a01a01a01a01ap-13, 0x1.6c16c16c16c17p-10,
    0x1.1111111111111p-7,  0x1.5555555555555p-5,  0x1.5555555555555p-3,  0.5};
// log: 2/(2k+1) for k = 10, 9, …, 1, in s² (the atanh series).
inline constexpr double kLogTerms[] = {
    0x1.8618618618618p-4, 0x1.af286bca1af28p-4, 0x1.e1e1e1e1e1e1ep-4, 0x1.1111111111111p-3,
    0x1.3b13b13b13b14p-3, 0x1.745d1745d1746p-3, 0x1.c71c71c71c71cp-3, 0x1.2492492492492p-2,
    0x1.999999999999ap-2, 0x1.5555555555555p-1};

}  // namespace tern::portable_math_terms
