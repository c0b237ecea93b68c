// A memory-read reference for benchmarks, with run-time SIMD dispatch
// (kernels/cpu/dispatch.h).
//
// `tern bench kernels` compares the decode product's weight bandwidth with how
// fast the machine can read at all. That reference must read with the widest
// loads the CPU has: a loop of 64-bit loads keeps too few cache lines in flight
// and reads about a quarter slower than full-width vector loads on the Emerald
// Rapids Xeon of BENCHMARKS.md, which would make the product look closer to the
// memory's limit than it is. Thread-safe (no state); runs on the calling thread.
#pragma once

#include <cstdint>

namespace tern::cpu {

// Σ of the 64-bit words of bytes[0, n) in host byte order, the last partial
// word padded with zero bytes, modulo 2^64: the same value on every target. The
// first and second halves of the range are read side by side (two streams read
// a few percent faster than one on that Xeon).
uint64_t sum_words(const uint8_t* bytes, int64_t n);

}  // namespace tern::cpu
