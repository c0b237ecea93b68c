// Run-time SIMD target selection for the kernels in kernels/cpu (Google Highway).
//
// Every kernel in kernels/cpu is compiled once per Highway target (x86: SSE4,
// AVX2, AVX-512, AVX-512 with VNNI; Arm: NEON; everywhere: a one-lane
// scalar fallback) and dispatched at run time to the best target the CPU supports.
// Integer kernels give the same bits on every target; float kernels keep the
// summation order their header names.
//
// Tests and benchmarks can pin a target with ScopedSimdTarget. Not thread-safe:
// change targets only while no kernel runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tern::cpu {

// Name of the target kernels dispatch to now, e.g. "AVX2", "NEON", "SCALAR".
std::string active_simd_target();

// Targets compiled into this binary that this CPU can run, best first.
std::vector<int64_t> attainable_simd_targets();
std::string simd_target_name(int64_t target);

// Restricts dispatch to one target for the lifetime of the object (CHECKs that
// the target is attainable), then restores the normal choice.
class ScopedSimdTarget {
 public:
  explicit ScopedSimdTarget(int64_t target);
  ~ScopedSimdTarget();
  ScopedSimdTarget(const ScopedSimdTarget&) = delete;
  ScopedSimdTarget& operator=(const ScopedSimdTarget&) = delete;
};

}  // namespace tern::cpu
