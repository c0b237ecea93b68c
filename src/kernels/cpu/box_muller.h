// Box–Muller over arrays with run-time SIMD dispatch (kernels/cpu/dispatch.h):
// the same bits as the scalar tern::box_muller (core/rng.h) on every target, so
// a seeded random init does not depend on the machine that builds it.
//
// The vector code repeats core/portable_math.cpp's log and sin/cos operation
// for operation, lane by lane, with the constants of core/portable_math_terms.h
// (IEEE adds, multiplies, divisions, square roots, exact scalings and
// round-to-nearest-even; the project builds with -ffp-contract=off). Targets
// without double-precision lanes run the scalar function. Thread-safe (no state);
// splits the work over the default thread pool.
#pragma once

#include <cstdint>

namespace tern::cpu {

// slots[2k], slots[2k + 1] = box_muller(slots[2k], slots[2k + 1]) for k < pairs.
// Each u1 (even slot) must be a normal double in (0, 1] and each u2 (odd slot)
// a double in [0, 1), as Rng draws them; other values give unspecified results.
void box_muller_pairs(double* slots, int64_t pairs);

}  // namespace tern::cpu
