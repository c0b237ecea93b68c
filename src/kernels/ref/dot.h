// Fixed-order dot product and sum shared by the reference kernels.
//
// Both sum in 8 interleaved lanes (element i goes to lane i mod 8, in order)
// and fold the lanes pairwise. The order is part of the numerical contract: a
// SIMD kernel that keeps 8 lanes reproduces it bit for bit, and the compiler
// can vectorize it without reassociating. Pure functions.
#pragma once

#include <cstdint>

namespace tern::ref {

template <typename T>
inline T fold_lanes(const T (&lanes)[8]) {
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

template <typename T>
inline T dot(const T* a, const T* b, int64_t n) {
  T lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += a[i + l] * b[i + l];
  }
  for (int l = 0; i < n; ++i, ++l) lanes[l] += a[i] * b[i];
  return fold_lanes(lanes);
}

template <typename T>
inline T sum(const T* x, int64_t n) {
  T lanes[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int l = 0; l < 8; ++l) lanes[l] += x[i + l];
  }
  for (int l = 0; i < n; ++i, ++l) lanes[l] += x[i];
  return fold_lanes(lanes);
}

}  // namespace tern::ref
