// Software prefetch for the matrix-vector products of decoding (internal to
// kernels/cpu).
//
// A decode product reads each weight once and does little work per byte, so
// the core's own loads keep too few DRAM requests in flight; requesting the
// lines kDecodePrefetchBytes ahead of the rows being read is what keeps memory
// busy. 16 KiB ahead into L2 measured best on the Emerald Rapids Xeon of
// BENCHMARKS.md for the packed ternary rows (4 KiB ahead: 26 GB/s, 12–16 KiB:
// 30–34, a plain read 35–37) and for fp32 and binary16 head rows alike.
// AMD cores want the T0 hint, into L1: 4 KiB ahead for the ternary rows (Zen 3
// and Zen 5) and 16 KiB ahead for the binary16 head rows (Zen 5; fp32 rows
// read at the same speed either way), BENCHMARKS.md. So both products pick
// their policy per CPU vendor (decode_prefetch, dense_decode_prefetch).
// Callers compute addresses ahead as integers and skip those past the end of
// their weights, where a pointer may not point. Thread-safe (the policy is
// chosen once, by a thread-safe static).
//
// The prefetches are volatile asm on x86 and aarch64: GCC 12 judges a prefetch
// builtin to have no side effects, and deleted the calls of a wrapper it left
// out of line and loops of prefetches in functions it did not inline; on
// aarch64 it deleted every prefetch of the ternary decode
// (tests/kernels/object_code_test.sh checks that they stay).
#pragma once

#include <hwy/base.h>

#include <cstdint>

#if !defined(__x86_64__) && !defined(__i386__) && !defined(__aarch64__)
#include <hwy/cache_control.h>
#endif

namespace tern::cpu {

// How far ahead, and into which cache level, a decode product requests lines.
enum class DecodePrefetch {
  kFarIntoL2,   // 16 KiB ahead, x86 hint T2 (into L2 on Intel cores)
  kFarIntoL1,   // 16 KiB ahead, x86 hint T0
  kNearIntoL1,  // 4 KiB ahead, x86 hint T0
};

template <DecodePrefetch P = DecodePrefetch::kFarIntoL2>
inline constexpr int64_t kDecodePrefetchBytes = P == DecodePrefetch::kNearIntoL1 ? 4096 : 16384;

// True on AMD x86 cores; decided once per process.
inline bool amd_x86() {
#if defined(__x86_64__) || defined(__i386__)
  static const bool amd = [] {
    __builtin_cpu_init();
    return __builtin_cpu_is("amd") != 0;
  }();
  return amd;
#else
  return false;
#endif
}

// The ternary decode's policy for this CPU: kNearIntoL1 on AMD x86 cores,
// kFarIntoL2 elsewhere (Intel; on other architectures only the distance
// differs between the policies).
inline DecodePrefetch decode_prefetch() {
  return amd_x86() ? DecodePrefetch::kNearIntoL1 : DecodePrefetch::kFarIntoL2;
}

// The same for the fp32 and binary16 rows of the dense decode (the output
// head): kFarIntoL1 on AMD x86 cores, kFarIntoL2 elsewhere.
inline DecodePrefetch dense_decode_prefetch() {
  return amd_x86() ? DecodePrefetch::kFarIntoL1 : DecodePrefetch::kFarIntoL2;
}

// Requests the line at `address` as a volatile asm statement, which GCC may
// not delete. On x86 with P's hint (T2 measured a few percent faster than T0
// on the Xeon at 16 KiB; T0 is faster on AMD cores). On aarch64 as a load kept
// in L1 (PLDL1KEEP, what Highway's Prefetch asks for; no Arm core has been
// measured). Elsewhere Highway's Prefetch.
template <DecodePrefetch P = DecodePrefetch::kFarIntoL2>
HWY_INLINE void prefetch_for_decode(uintptr_t address) {
#if defined(__x86_64__) || defined(__i386__)
  if constexpr (P == DecodePrefetch::kFarIntoL2) {
    asm volatile("prefetcht2 (%0)" : : "r"(address));
  } else {
    asm volatile("prefetcht0 (%0)" : : "r"(address));
  }
#elif defined(__aarch64__)
  asm volatile("prfm pldl1keep, [%0]" : : "r"(address));
#else
  hwy::Prefetch(reinterpret_cast<const uint8_t*>(address));
#endif
}

// Requests the lines of [from + kDecodePrefetchBytes<P>, + span) that lie below
// `limit` (the end of the caller's weights).
template <DecodePrefetch P>
HWY_INLINE void prefetch_span_ahead(uintptr_t from, uintptr_t span, uintptr_t limit) {
  uintptr_t ahead = from + kDecodePrefetchBytes<P>;
  const uintptr_t ahead_end = ahead + span < limit ? ahead + span : limit;
  for (; ahead < ahead_end; ahead += 64) prefetch_for_decode<P>(ahead);
}

}  // namespace tern::cpu
