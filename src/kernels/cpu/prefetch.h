// Software prefetch for the matrix-vector products of decoding (internal to
// kernels/cpu).
//
// A decode product reads each weight once and does little work per byte, so
// the core's own loads keep too few DRAM requests in flight; requesting the
// lines kDecodePrefetchBytes ahead of the rows being read is what keeps memory
// busy. 16 KiB ahead into L2 measured best on the Emerald Rapids Xeon of
// BENCHMARKS.md for the packed ternary rows (4 KiB ahead: 26 GB/s, 12–16 KiB:
// 30–34, a plain read 35–37) and for fp32 and binary16 head rows alike.
// Callers compute addresses ahead as integers and skip those past the end of
// their weights, where a pointer may not point. Thread-safe (no state).
//
// prefetch_for_decode must be inlined: GCC 12 judges a function whose only
// statement is a prefetch to have no side effects, and deletes the calls of
// one it leaves out of line (as it did from the target-specific kernels).
#pragma once

#include <hwy/base.h>

#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#include <xmmintrin.h>
#else
#include <hwy/cache_control.h>
#endif

namespace tern::cpu {

inline constexpr int64_t kDecodePrefetchBytes = 16384;

// Requests the line at `address`. On x86 with the T2 hint (into L2 on Intel
// cores), which measured a few percent faster than T0 on the Xeon; elsewhere
// Highway's default.
HWY_INLINE void prefetch_for_decode(uintptr_t address) {
#if defined(__x86_64__) || defined(__i386__)
  _mm_prefetch(reinterpret_cast<const char*>(address), _MM_HINT_T2);
#else
  hwy::Prefetch(reinterpret_cast<const uint8_t*>(address));
#endif
}

}  // namespace tern::cpu
