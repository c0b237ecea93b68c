// ref::exp_f32 over arrays with run-time SIMD dispatch (kernels/cpu/dispatch.h):
// the same bits as the scalar function on every target. The kernels call the
// vector code (exp-inl.h) inline; this entry point lets tests/kernels/exp_test.cpp
// check it, special values included, target by target. Thread-safe (no state).
#pragma once

#include <cstdint>

namespace tern::cpu {

// y[i] = ref::exp_f32(x[i]) for i < n; y may equal x.
void exp_f32(float* y, const float* x, int64_t n);

}  // namespace tern::cpu
