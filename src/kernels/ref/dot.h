// Fixed-order dot product shared by the reference kernels.
//
// Sums in 8 interleaved lanes and folds them pairwise. The order is part of the
// numerical contract: a SIMD kernel that keeps 8 lanes reproduces it bit for bit,
// and the compiler can vectorize it without reassociating. Pure function.
#pragma once

#include <cstdint>

namespace tern::ref {

template <typename T>
inline T dot(const T* a, const T* b, int64_t n) {
  T lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += a[i + l] * b[i + l];
  }
  for (int l = 0; i < n; ++i, ++l) lanes[l] += a[i] * b[i];
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

}  // namespace tern::ref
