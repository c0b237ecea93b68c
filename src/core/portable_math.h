// Double-precision exp, log, pow and sin/cos that give the same bits on every
// platform. Thread-safe (no state).
//
// Why not <cmath>: the C standard lets each library round its transcendental
// functions its own way, and tern feeds some of them into state that swarm
// members must agree on bit for bit: the seeded initial weights (Rng::normal's
// Box–Muller), the RoPE tables, the DCT basis of DeMo, the learning-rate
// schedule and AdamW's bias corrections. Cast to float, a last-bit difference
// in double survives only rarely, but rarely is not never, and a member built
// with another C library (Apple's, MSVC's, musl) would then drift apart. These
// functions use only IEEE additions, multiplications, divisions and exact
// scalings in a fixed order (the project builds with -ffp-contract=off), which
// every platform rounds the same way.
//
// Accuracy, measured against long double on x86-64 over 2 million inputs each:
// exp within 0.97 ulp, log within 0.79 ulp, sin and cos within 0.79 ulp for |x|
// up to 10^6; pow(b, y) = exp(y·log b) within 1 + 1.6·|y·log b| ulp, since the
// rounding of y·log b is magnified by e^(·). tests/core/portable_math_test.cpp
// holds them to 1 ulp and to 1 + 2·|y·log b| ulp.
// Same-bits-everywhere is checked by a recorded digest that the x86-64 run and
// the aarch64 run under qemu must both reproduce.
#pragma once

namespace tern {

// e^x. NaN gives NaN; x > 710 gives +inf; x < −745.2 gives +0; results below
// the normal range are subnormal, rounded once.
double portable_exp(double x);

// Natural logarithm. log(+0) = −inf, log(x < 0) = NaN, log(+inf) = +inf.
double portable_log(double x);

// base^exponent for finite base ≥ 0 (a bug otherwise: CHECK), computed as
// exp(exponent·log(base)); 0^y is 0 for y > 0, 1 for y = 0, +inf for y < 0.
double portable_pow(double base, double exponent);

// sin(x) and cos(x) for |x| ≤ kPortableTrigMaxArg; NaN or ±inf give NaN for
// both; a finite x beyond the bound is a bug (CHECK). tern's largest arguments
// are RoPE angles, below max_seq, which model configs cap at 2^24.
inline constexpr double kPortableTrigMaxArg = 33554432.0;  // 2^25
struct SinCos {
  double sin;
  double cos;
};
SinCos portable_sincos(double x);
double portable_cos(double x);

}  // namespace tern
