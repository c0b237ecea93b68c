// The SIMD Box–Muller (kernels/cpu/box_muller.h) against the scalar
// tern::box_muller, bit for bit, on every attainable target (and, in the
// aarch64 build under qemu, on NEON), and through Rng::normals.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include "core/portable_math_terms.h"
#include "core/rng.h"
#include "kernels/cpu/box_muller.h"
#include "kernels/cpu/dispatch.h"

namespace tern {
namespace {

// Uniform pairs as Rng draws them, then the edges of the contract and of the
// scalar code's branches: u1 at 2^-53, below 1 and at 1, on both sides of the
// √2/2 mantissa split; u2 at 0, below 1 and on both sides of the quadrant
// boundaries, where 2π·u2·(2/π) rounds to the next integer.
std::vector<double> test_slots() {
  std::vector<double> u1s = {0x1p-53, 0x1p-52, 3 * 0x1p-53, 0.5, 1.0, std::nextafter(1.0, 0.0)};
  for (int k = 1; k <= 6; ++k) {
    const double split = std::ldexp(portable_math_terms::kSqrt2, -k);
    u1s.insert(u1s.end(), {split, std::nextafter(split, 0.0), std::nextafter(split, 1.0)});
  }
  std::vector<double> u2s = {0.0, std::nextafter(1.0, 0.0), 0x1p-53};
  for (int j = 0; j < 8; ++j) {
    const double boundary = (2 * j + 1) / 16.0;  // 2π·u2 = (2j + 1)·π/8 … and π/4 multiples
    const double quarter = j / 8.0;
    for (const double u : {boundary, quarter}) {
      u2s.insert(u2s.end(), {u, std::nextafter(u, 0.0), std::nextafter(u, 1.0)});
    }
  }
  std::vector<double> slots;
  for (const double u1 : u1s) {
    for (const double u2 : u2s) slots.insert(slots.end(), {u1, u2});
  }
  Rng rng(11);
  for (int k = 0; k < 100000; ++k) {
    double u1;
    do {
      u1 = rng.uniform();
    } while (u1 <= 0.0);
    slots.insert(slots.end(), {u1, rng.uniform()});
  }
  return slots;
}

TEST(BoxMullerTest, SameBitsAsTheScalarFunctionOnEveryTarget) {
  const std::vector<double> slots = test_slots();
  const auto all_pairs = static_cast<int64_t>(slots.size() / 2);
  std::vector<uint64_t> expected(slots.size());
  for (int64_t k = 0; k < all_pairs; ++k) {
    const NormalPair pair = box_muller(slots[2 * k], slots[2 * k + 1]);
    expected[2 * k] = std::bit_cast<uint64_t>(pair.first);
    expected[2 * k + 1] = std::bit_cast<uint64_t>(pair.second);
  }
  for (const int64_t target : cpu::attainable_simd_targets()) {
    SCOPED_TRACE(cpu::simd_target_name(target));
    cpu::ScopedSimdTarget pin(target);
    // Pair counts that leave a scalar tail on every vector width.
    for (const int64_t pairs : {all_pairs, all_pairs - 3, int64_t{5}, int64_t{1}}) {
      const int64_t first = all_pairs - pairs;
      std::vector<double> got(slots.begin() + 2 * first, slots.end());
      cpu::box_muller_pairs(got.data(), pairs);
      int64_t mismatches = 0;
      for (int64_t i = 0; i < 2 * pairs; ++i) {
        if (std::bit_cast<uint64_t>(got[i]) != expected[2 * first + i] && mismatches++ < 5) {
          const int64_t k = (2 * first + i) / 2;
          ADD_FAILURE() << "u1 = " << slots[2 * k] << ", u2 = " << slots[2 * k + 1] << ": "
                        << got[i] << " vs " << std::bit_cast<double>(expected[2 * first + i]);
        }
      }
      EXPECT_EQ(mismatches, 0) << pairs << " pairs";
    }
  }
}

TEST(BoxMullerTest, GivesStandardNormals) {
  // The transform itself, not only its agreement with the scalar code: mean 0,
  // variance 1, and the two halves of each pair uncorrelated.
  std::vector<double> v(400000);
  Rng rng(5);
  rng.normals(v, cpu::box_muller_pairs);
  double sum = 0.0, sum_sq = 0.0, cross = 0.0;
  for (size_t i = 0; i < v.size(); i += 2) {
    sum += v[i] + v[i + 1];
    sum_sq += v[i] * v[i] + v[i + 1] * v[i + 1];
    cross += v[i] * v[i + 1];
  }
  const double n = static_cast<double>(v.size());
  EXPECT_NEAR(sum / n, 0.0, 0.01);
  EXPECT_NEAR(sum_sq / n, 1.0, 0.01);
  EXPECT_NEAR(cross / (n / 2), 0.0, 0.01);
}

TEST(BoxMullerTest, RngNormalsWithTheSimdTransformEqualOneAtATime) {
  // Odd and even lengths, a spare carried in, and the state afterwards.
  Rng one_by_one(3);
  Rng blocks(3);
  for (const size_t n : {size_t{7}, size_t{1}, size_t{4096}, size_t{1001}, size_t{2}}) {
    std::vector<double> expected(n);
    for (double& x : expected) x = one_by_one.normal();
    std::vector<double> got(n);
    blocks.normals(got, cpu::box_muller_pairs);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(std::bit_cast<uint64_t>(got[i]), std::bit_cast<uint64_t>(expected[i]))
          << "n = " << n << ", i = " << i;
    }
  }
  EXPECT_EQ(std::bit_cast<uint64_t>(blocks.normal()), std::bit_cast<uint64_t>(one_by_one.normal()));
}

}  // namespace
}  // namespace tern
