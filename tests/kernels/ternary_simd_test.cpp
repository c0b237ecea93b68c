// SIMD ternary kernels against the scalar references, on every target this CPU
// can run: same bits for codes, scales, products and input gradients.
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/ternary.h"

namespace tern::cpu {
namespace {

struct Shape {
  int64_t n, in, out;
};

// Odd sizes on purpose: partial groups (in % 128), partial 32-column runs,
// leftover activation rows (n % 4) and weight rows (out % 4). Decode rows of
// more than 512 bytes (in > 2048) take the two-row decode tile on AVX-512.
const Shape kShapes[] = {{1, 1, 1},    {1, 7, 5},     {2, 128, 3},  {3, 129, 6},  {4, 300, 9},
                         {5, 256, 4},  {7, 33, 17},   {9, 768, 13}, {1, 2048, 7}, {17, 640, 5},
                         {6, 1000, 2}, {12, 96, 130}, {8, 31, 1},   {1, 2100, 9}, {2, 2300, 5}};

std::vector<float> random_floats(Rng& rng, int64_t count, double scale) {
  std::vector<float> v(static_cast<size_t>(count));
  for (float& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}

ref::TernaryMatrix random_ternary(Rng& rng, int64_t rows, int64_t cols) {
  std::vector<int8_t> codes(static_cast<size_t>(rows * cols));
  for (int8_t& c : codes) c = static_cast<int8_t>(static_cast<int>(rng.below(3)) - 1);
  return ref::pack_ternary(codes.data(), rows, cols, 0.03125f + static_cast<float>(rng.uniform()));
}

void expect_same_bits(const std::vector<float>& got, const std::vector<float>& want,
                      const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    if (std::memcmp(&got[i], &want[i], sizeof(float)) != 0) {
      ADD_FAILURE() << what << ": first difference at " << i << ": " << got[i] << " vs " << want[i];
      return;
    }
  }
}

std::string label(int64_t target, const Shape& s) {
  return simd_target_name(target) + " n=" + std::to_string(s.n) + " in=" + std::to_string(s.in) +
         " out=" + std::to_string(s.out);
}

TEST(TernarySimdTest, ReportsTargets) {
  std::string names;
  for (int64_t t : attainable_simd_targets()) names += simd_target_name(t) + " ";
  std::printf("attainable SIMD targets: %s(active: %s)\n", names.c_str(),
              active_simd_target().c_str());
  EXPECT_FALSE(attainable_simd_targets().empty());
}

TEST(TernarySimdTest, ActivationQuantizationMatchesReference) {
  Rng rng(1);
  for (int64_t target : attainable_simd_targets()) {
    ScopedSimdTarget pin(target);
    for (const Shape& s : kShapes) {
      std::vector<float> x = random_floats(rng, s.n * s.in, 3.0);
      if (s.in > 2) x[1] = 0.5f * (x[0] + x[2]);  // ties and exact halves appear below
      for (int64_t i = 0; i < s.n * s.in; i += 5) x[static_cast<size_t>(i)] = 0.0f;
      std::vector<int8_t> want(x.size()), got(x.size());
      std::vector<float> want_s(static_cast<size_t>(s.n)), got_s(static_cast<size_t>(s.n));
      ref::quantize_activations_absmax(want.data(), want_s.data(), x.data(), s.n, s.in);
      cpu::quantize_activations_absmax(got.data(), got_s.data(), x.data(), s.n, s.in);
      EXPECT_EQ(got, want) << label(target, s);
      expect_same_bits(got_s, want_s, label(target, s));
    }
  }
}

TEST(TernarySimdTest, RoundsHalfToEvenLikeTheReference) {
  // absmax 127 makes s = 1, so x·s are the values themselves: ties must go to even.
  std::vector<float> x = {127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.5f, -127.0f, 3.49f};
  for (int64_t target : attainable_simd_targets()) {
    ScopedSimdTarget pin(target);
    std::vector<int8_t> want(x.size()), got(x.size());
    float ws = 0, gs = 0;
    ref::quantize_activations_absmax(want.data(), &ws, x.data(), 1, 10);
    cpu::quantize_activations_absmax(got.data(), &gs, x.data(), 1, 10);
    EXPECT_EQ(got, want) << simd_target_name(target);
    EXPECT_EQ(got[1], 0);
    EXPECT_EQ(got[2], 2);
    EXPECT_EQ(got[7], 126);
  }
}

TEST(TernarySimdTest, ForwardMatchesReferenceBitForBit) {
  Rng rng(2);
  for (int64_t target : attainable_simd_targets()) {
    ScopedSimdTarget pin(target);
    for (const Shape& s : kShapes) {
      const ref::TernaryMatrix w = random_ternary(rng, s.out, s.in);
      const std::vector<float> x = random_floats(rng, s.n * s.in, 1.0);
      std::vector<int8_t> codes(x.size());
      std::vector<float> scales(static_cast<size_t>(s.n));
      ref::quantize_activations_absmax(codes.data(), scales.data(), x.data(), s.n, s.in);
      std::vector<float> want(static_cast<size_t>(s.n * s.out)), got(want.size(), -1.0f);
      ref::bitlinear_forward(want.data(), codes.data(), scales.data(), w, s.n);
      cpu::bitlinear_forward(got.data(), codes.data(), scales.data(), w, s.n);
      expect_same_bits(got, want, label(target, s));
    }
  }
}

TEST(TernarySimdTest, ExtremeCodesDoNotOverflow) {
  // Every activation at −128 or 127 against all-(+1) and all-(−1) rows: the
  // largest sums the 16-bit partial accumulators ever see (8192 columns), and
  // rows long enough that the AVX-512 tiles' 64x-scaled sums must be taken in
  // pieces of 512 groups.
  for (const int64_t in : {int64_t{8192}, int64_t{140000}}) {
    std::vector<int8_t> plus(static_cast<size_t>(in), 1), minus(static_cast<size_t>(in), -1);
    std::vector<int8_t> w_codes = plus;
    w_codes.insert(w_codes.end(), minus.begin(), minus.end());
    const ref::TernaryMatrix w = ref::pack_ternary(w_codes.data(), 2, in, 1.0f);
    std::vector<int8_t> x(static_cast<size_t>(2 * in));
    for (int64_t k = 0; k < in; ++k) {
      x[static_cast<size_t>(k)] = -128;
      x[static_cast<size_t>(in + k)] = 127;
    }
    const std::vector<float> scales = {1.0f, 1.0f};
    for (int64_t target : attainable_simd_targets()) {
      ScopedSimdTarget pin(target);
      std::vector<float> y(4);
      cpu::bitlinear_forward(y.data(), x.data(), scales.data(), w, 2);
      const std::string what = simd_target_name(target) + " in=" + std::to_string(in);
      EXPECT_EQ(y[0], -128.0f * in) << what;
      EXPECT_EQ(y[1], 128.0f * in) << what;
      EXPECT_EQ(y[2], 127.0f * in) << what;
      EXPECT_EQ(y[3], -127.0f * in) << what;
    }
  }
}

TEST(TernarySimdTest, Fp32InputGradientMatchesReferenceBitForBit) {
  Rng rng(3);
  for (int64_t target : attainable_simd_targets()) {
    ScopedSimdTarget pin(target);
    for (const Shape& s : kShapes) {
      const ref::TernaryMatrix w = random_ternary(rng, s.out, s.in);
      std::vector<float> dy = random_floats(rng, s.n * s.out, 1.0);
      dy[0] = -0.0f;  // signed zeros take the same path as the reference
      std::vector<float> want(static_cast<size_t>(s.n * s.in)), got(want.size(), 7.0f);
      ref::bitlinear_backward_input(want.data(), dy.data(), w, s.n);
      cpu::bitlinear_backward_input(got.data(), dy.data(), w, s.n);
      expect_same_bits(got, want, label(target, s));
    }
  }
}

TEST(TernarySimdTest, Int8InputGradientMatchesReferenceBitForBit) {
  Rng rng(4);
  for (int64_t target : attainable_simd_targets()) {
    ScopedSimdTarget pin(target);
    for (const Shape& s : kShapes) {
      ref::TernaryMatrix w = random_ternary(rng, s.out, s.in);
      const std::vector<float> dy = random_floats(rng, s.n * s.out, 1e-3);
      std::vector<int8_t> codes(dy.size());
      std::vector<float> scales(static_cast<size_t>(s.n));
      ref::quantize_activations_absmax(codes.data(), scales.data(), dy.data(), s.n, s.out);
      std::vector<float> want(static_cast<size_t>(s.n * s.in)), got(want.size(), 7.0f);
      ref::bitlinear_backward_input_int8(want.data(), codes.data(), scales.data(), w, s.n);
      cpu::bitlinear_backward_input_int8(got.data(), codes.data(), scales.data(), w, s.n);
      expect_same_bits(got, want, label(target, s) + " (temporary transpose)");
      w.build_transposed();
      std::fill(got.begin(), got.end(), 7.0f);
      cpu::bitlinear_backward_input_int8(got.data(), codes.data(), scales.data(), w, s.n);
      expect_same_bits(got, want, label(target, s) + " (built transpose)");
    }
  }
}

TEST(TernarySimdTest, ThreadCountDoesNotChangeBits) {
  Rng rng(5);
  const Shape s{13, 520, 70};
  const ref::TernaryMatrix w = random_ternary(rng, s.out, s.in);
  const std::vector<float> x = random_floats(rng, s.n * s.in, 1.0);
  const std::vector<float> dy = random_floats(rng, s.n * s.out, 1.0);
  auto run = [&] {
    std::vector<int8_t> codes(x.size());
    std::vector<float> scales(static_cast<size_t>(s.n));
    cpu::quantize_activations_absmax(codes.data(), scales.data(), x.data(), s.n, s.in);
    std::vector<float> y(static_cast<size_t>(s.n * s.out)), dx(static_cast<size_t>(s.n * s.in));
    cpu::bitlinear_forward(y.data(), codes.data(), scales.data(), w, s.n);
    cpu::bitlinear_backward_input(dx.data(), dy.data(), w, s.n);
    y.insert(y.end(), dx.begin(), dx.end());
    return y;
  };
  set_num_threads(1);
  const std::vector<float> one = run();
  set_num_threads(3);
  const std::vector<float> three = run();
  set_num_threads(2);
  expect_same_bits(three, one, "1 vs 3 threads");
}

}  // namespace
}  // namespace tern::cpu
