// Ternary kernels, compiled once per Highway target (see dispatch.h).
//
// Products work on whole 128-column groups of the packed layout (ref/ternary.h):
// one 32-byte load of codes, shifted by 0, 2, 4, 6 and masked, gives the codes
// q+1 of four runs of 32 consecutive columns. Activation rows whose length is not
// a multiple of 128 are copied into zero-padded scratch first, so padding adds
// nothing; the products compute Σ (q+1)·x and subtract Σ x per row.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/ternary.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/check.h"
#include "core/thread_pool.h"
#include "kernels/cpu/prefetch.h"
#include "kernels/cpu/ternary.h"

#ifndef TERN_KERNELS_CPU_TERNARY_ONCE
#define TERN_KERNELS_CPU_TERNARY_ONCE
namespace tern::cpu {

// A packed ternary matrix seen through its bytes: either W (rows = out) or its
// transpose (rows = in).
struct PackedView {
  const uint8_t* data = nullptr;
  int64_t rows = 0;
  int64_t cols = 0;
  int64_t row_bytes = 0;
  float scale = 0.0f;
};

// Activation codes laid out for the products: rows padded to whole groups.
struct PaddedCodes {
  const int8_t* data = nullptr;
  int64_t stride = 0;                  // bytes per row, a multiple of 128
  const int32_t* sums = nullptr;       // Σ codes per row
  const float* row_factors = nullptr;  // weight scale / activation scale per row
};

// The fp32 input gradient works on runs of 32 columns (one shift of one group)
// and decodes the weight rows of a run in panels of this many rows (32 KiB).
inline constexpr int64_t kRunCols = 32;
inline constexpr int64_t kPanelRows = 256;

}  // namespace tern::cpu
#endif

HWY_BEFORE_NAMESPACE();
// Highway 1.0's AVX3_DL attributes name AVX-VNNI (the VEX form, absent on Ice
// Lake and Zen 4) while its run-time check is for AVX512-VNNI, which the tiles
// below use.
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3_DL
#pragma GCC push_options
#pragma GCC target("avx512vnni")
#endif
namespace tern::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------------------
// Activation quantization: absmax per row, codes = clamp(round_even(x·s)).

void QuantizeRows(int8_t* codes, float* scale, const float* x, int64_t begin, int64_t end,
                  int64_t d) {
  const hn::ScalableTag<float> df;
  const hn::RebindToSigned<decltype(df)> di32;
  const hn::Rebind<int8_t, decltype(df)> di8;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const auto lo = hn::Set(df, -128.0f);
  const auto hi = hn::Set(df, 127.0f);
  for (int64_t i = begin; i < end; ++i) {
    const float* row = x + i * d;
    int8_t* out = codes + i * d;
    auto vmax = hn::Zero(df);
    int64_t j = 0;
    for (; j + lanes <= d; j += lanes) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, row + j)));
    float absmax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    for (int64_t t = j; t < d; ++t) absmax = std::max(absmax, std::fabs(row[t]));
    const float s = 127.0f / std::max(absmax, ref::kActivationAbsmaxEps);
    scale[i] = s;
    const auto vs = hn::Set(df, s);
    for (j = 0; j + lanes <= d; j += lanes) {
      const auto q = hn::Min(hn::Max(hn::Round(hn::Mul(hn::LoadU(df, row + j), vs)), lo), hi);
      hn::StoreU(hn::DemoteTo(di8, hn::ConvertTo(di32, q)), di8, out + j);
    }
    for (; j < d; ++j) {
      out[j] = static_cast<int8_t>(std::clamp(std::nearbyint(row[j] * s), -128.0f, 127.0f));
    }
  }
}

// ---------------------------------------------------------------------------
// Σ (q+1)·x over whole groups for a tile of R activation rows × C weight rows.

#undef TERN_TERNARY_X86
#if HWY_ARCH_X86 && HWY_TARGET != HWY_EMU128 && HWY_TARGET != HWY_SCALAR
#define TERN_TERNARY_X86 1
// pmaddubsw: u8 codes (≤ 2) times s8 activations, adjacent pairs summed to s16.
HWY_INLINE __m128i MulAddPairs(__m128i codes, __m128i x) {
  return _mm_maddubs_epi16(codes, x);
}
HWY_INLINE __m128i WidenPairs(__m128i v) {
  return _mm_madd_epi16(v, _mm_set1_epi16(1));
}
#if HWY_TARGET <= HWY_AVX2
HWY_INLINE __m256i MulAddPairs(__m256i codes, __m256i x) {
  return _mm256_maddubs_epi16(codes, x);
}
HWY_INLINE __m256i WidenPairs(__m256i v) {
  return _mm256_madd_epi16(v, _mm256_set1_epi16(1));
}
#endif
#else
#define TERN_TERNARY_X86 0
#endif

#if HWY_TARGET == HWY_SCALAR
// Highway's one-lane fallback (GCC < 12.3 has no EMU128): plain loops.
template <int R, int C>
HWY_NOINLINE void DotTile(const int8_t* x, int64_t x_stride, const uint8_t* w, int64_t w_stride,
                          int64_t groups, int32_t* out /* [R][C] */) {
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      int32_t acc = 0;
      for (int64_t b = 0; b < groups * 32; ++b) {
        const int byte = w[c * w_stride + b];
        const int8_t* xs = x + r * x_stride + b / 32 * 128 + b % 32;
        for (int l = 0; l < 4; ++l) acc += ((byte >> (2 * l)) & 3) * xs[32 * l];
      }
      out[r * C + c] = acc;
    }
  }
}
#elif TERN_TERNARY_X86 && HWY_TARGET <= HWY_AVX3_DL
// AVX-512 VNNI. A group's 32 code bytes are broadcast to both 256-bit halves and
// masked, not shifted: 0x03 | 0x0C selects the codes of columns 0-31 | 32-63 of
// the group as 1·(q+1) | 4·(q+1), and 0x30 | 0xC0 those of columns 64-95 | 96-127
// as 16·(q+1) | 64·(q+1), so each 64-byte load of activations is contiguous and
// decoding costs two ANDs per group. vpdpbusd adds four u8·s8 products into each
// s32 lane, whose power of four is known by its half; the halves are rescaled to
// 64× before the sum and the sum divided by 64 (exact). |64·Σ (q+1)·x| over
// kMaxGroups512 groups stays below 2^30, so longer rows are summed in pieces.
constexpr int64_t kMaxGroups512 = 512;

// Bytes `low` in the lower 256 bits, `high` in the upper.
HWY_INLINE __m512i CodeMask(int low, int high) {
  return _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(low)),
                            _mm256_set1_epi8(static_cast<char>(high)), 1);
}

// A group's 32 code bytes in both 256-bit halves.
HWY_INLINE __m512i BroadcastGroup(const uint8_t* codes) {
  return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes)));
}

// Both accumulators' lanes brought to 64× by their halves (shifts 6 | 4 for the
// low masks' powers 1 | 4, 2 | 0 for the high masks' 16 | 64) and added.
HWY_INLINE __m512i Scaled64(__m512i low, __m512i high) {
  const __m512i rescale_low = _mm512_inserti64x4(_mm512_set1_epi32(6), _mm256_set1_epi32(4), 1);
  const __m512i rescale_high = _mm512_inserti64x4(_mm512_set1_epi32(2), _mm256_setzero_si256(), 1);
  return _mm512_add_epi32(_mm512_sllv_epi32(low, rescale_low),
                          _mm512_sllv_epi32(high, rescale_high));
}

// Σ of both accumulators' lanes at 64×, over 64 (exact).
HWY_INLINE int32_t SumScaled(__m512i low, __m512i high) {
  return _mm512_reduce_add_epi32(Scaled64(low, high)) / 64;
}

// SumScaled of eight accumulator pairs at once, as [8] s32 (a transposing
// reduction: a third of the instructions of eight separate sums).
HWY_INLINE __m256i SumScaled8(__m512i l0, __m512i h0, __m512i l1, __m512i h1, __m512i l2,
                              __m512i h2, __m512i l3, __m512i h3, __m512i l4, __m512i h4,
                              __m512i l5, __m512i h5, __m512i l6, __m512i h6, __m512i l7,
                              __m512i h7) {
  // [a's 256-bit halves summed | b's], then [a b c d]'s 128-bit quarters summed.
  auto fold256 = [](__m512i a, __m512i b) {
    return _mm512_add_epi32(_mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(1, 0, 1, 0)),
                            _mm512_shuffle_i64x2(a, b, _MM_SHUFFLE(3, 2, 3, 2)));
  };
  auto fold128 = [](__m512i ab, __m512i cd) {
    return _mm512_add_epi32(_mm512_shuffle_i64x2(ab, cd, _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm512_shuffle_i64x2(ab, cd, _MM_SHUFFLE(3, 1, 3, 1)));
  };
  const __m512i s0123 = fold128(fold256(Scaled64(l0, h0), Scaled64(l1, h1)),
                                fold256(Scaled64(l2, h2), Scaled64(l3, h3)));
  const __m512i s4567 = fold128(fold256(Scaled64(l4, h4), Scaled64(l5, h5)),
                                fold256(Scaled64(l6, h6), Scaled64(l7, h7)));
  // 128-bit lane i: [i's two partial pairs | (i+4)'s], then adjacent dwords summed.
  __m512i p =
      _mm512_add_epi32(_mm512_unpacklo_epi64(s0123, s4567), _mm512_unpackhi_epi64(s0123, s4567));
  p = _mm512_add_epi32(p, _mm512_shuffle_epi32(p, _MM_PERM_CDAB));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 2, 6, 10, 14, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm256_srai_epi32(_mm512_castsi512_si256(_mm512_permutexvar_epi32(order, p)), 6);
}

// Adds Σ (q+1)·x over groups [g_begin, g_end) (at most kMaxGroups512) to out.
template <int R, int C>
HWY_NOINLINE void DotTileGroups(const int8_t* x, int64_t x_stride, const uint8_t* w,
                                int64_t w_stride, int64_t g_begin, int64_t g_end,
                                int32_t* out /* [R][C] */) {
  const __m512i mask_low = CodeMask(0x03, 0x0C), mask_high = CodeMask(0x30, 0xC0);
  __m512i acc_low[R][C], acc_high[R][C];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) acc_low[r][c] = acc_high[r][c] = _mm512_setzero_si512();
  }
  for (int64_t g = g_begin; g < g_end; ++g) {
    __m512i codes_low[C], codes_high[C];
    for (int c = 0; c < C; ++c) {
      const __m512i bytes = BroadcastGroup(w + c * w_stride + g * 32);
      codes_low[c] = _mm512_and_si512(bytes, mask_low);
      codes_high[c] = _mm512_and_si512(bytes, mask_high);
    }
    for (int r = 0; r < R; ++r) {
      const int8_t* xr = x + r * x_stride + g * 128;
      for (int c = 0; c < C; ++c) {
        acc_low[r][c] = _mm512_dpbusd_epi32(acc_low[r][c], codes_low[c], _mm512_loadu_si512(xr));
        acc_high[r][c] =
            _mm512_dpbusd_epi32(acc_high[r][c], codes_high[c], _mm512_loadu_si512(xr + 64));
      }
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) out[r * C + c] += SumScaled(acc_low[r][c], acc_high[r][c]);
  }
}

// acc += codes · [x, x + 64) as in-place asm: GCC 12 copies every accumulator of
// the intrinsic's form once per iteration, and those moves halved the tiles'
// throughput on an Emerald Rapids Xeon.
#define TERN_DOT_BYTES(acc, codes, xv) asm("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(codes), "v"(xv))

// The training tile, four activation rows × two weight rows, with its 16
// accumulators in named registers.
HWY_INLINE void DotTileGroups4x2(const int8_t* x, int64_t x_stride, const uint8_t* w,
                                 int64_t w_stride, int64_t g_begin, int64_t g_end,
                                 int32_t* out /* [4][2] */) {
  const __m512i mask_low = CodeMask(0x03, 0x0C), mask_high = CodeMask(0x30, 0xC0);
  __m512i l00 = _mm512_setzero_si512(), l01 = l00, l10 = l00, l11 = l00, l20 = l00, l21 = l00,
          l30 = l00, l31 = l00, h00 = l00, h01 = l00, h10 = l00, h11 = l00, h20 = l00, h21 = l00,
          h30 = l00, h31 = l00;
  for (int64_t g = g_begin; g < g_end; ++g) {
    const __m512i b0 = BroadcastGroup(w + g * 32), b1 = BroadcastGroup(w + w_stride + g * 32);
    const __m512i cl0 = _mm512_and_si512(b0, mask_low), ch0 = _mm512_and_si512(b0, mask_high);
    const __m512i cl1 = _mm512_and_si512(b1, mask_low), ch1 = _mm512_and_si512(b1, mask_high);
    const int8_t* xg = x + g * 128;
    // One activation row against both weight rows.
#define TERN_TILE_ROW(l0, h0, l1, h1)                                            \
  {                                                                              \
    const __m512i xl = _mm512_loadu_si512(xg), xh = _mm512_loadu_si512(xg + 64); \
    TERN_DOT_BYTES(l0, cl0, xl);                                                 \
    TERN_DOT_BYTES(l1, cl1, xl);                                                 \
    TERN_DOT_BYTES(h0, ch0, xh);                                                 \
    TERN_DOT_BYTES(h1, ch1, xh);                                                 \
    xg += x_stride;                                                              \
  }
    TERN_TILE_ROW(l00, h00, l01, h01)
    TERN_TILE_ROW(l10, h10, l11, h11)
    TERN_TILE_ROW(l20, h20, l21, h21)
    TERN_TILE_ROW(l30, h30, l31, h31)
#undef TERN_TILE_ROW
  }
  const __m256i sums =
      SumScaled8(l00, h00, l01, h01, l10, h10, l11, h11, l20, h20, l21, h21, l30, h30, l31, h31);
  __m256i* const out8 = reinterpret_cast<__m256i*>(out);
  _mm256_storeu_si256(out8, _mm256_add_epi32(_mm256_loadu_si256(out8), sums));
}

// The decode tiles, one activation row × C = 2 or 4 weight rows.
template <int C>
HWY_INLINE void DotTileGroups1xC(const int8_t* x, const uint8_t* w, int64_t w_stride,
                                 int64_t g_begin, int64_t g_end, int32_t* out /* [C] */) {
  static_assert(C == 2 || C == 4);
  const __m512i mask_low = CodeMask(0x03, 0x0C), mask_high = CodeMask(0x30, 0xC0);
  __m512i l0 = _mm512_setzero_si512(), l1 = l0, l2 = l0, l3 = l0, h0 = l0, h1 = l0, h2 = l0,
          h3 = l0;
  for (int64_t g = g_begin; g < g_end; ++g) {
    const __m512i xl = _mm512_loadu_si512(x + g * 128), xh = _mm512_loadu_si512(x + g * 128 + 64);
    const uint8_t* wg = w + g * 32;
    // One weight row against the activation row.
#define TERN_TILE_COL(l, h)                                \
  {                                                        \
    const __m512i b = BroadcastGroup(wg);                  \
    TERN_DOT_BYTES(l, _mm512_and_si512(b, mask_low), xl);  \
    TERN_DOT_BYTES(h, _mm512_and_si512(b, mask_high), xh); \
    wg += w_stride;                                        \
  }
    TERN_TILE_COL(l0, h0)
    TERN_TILE_COL(l1, h1)
    if constexpr (C == 4) {
      TERN_TILE_COL(l2, h2)
      TERN_TILE_COL(l3, h3)
    }
#undef TERN_TILE_COL
  }
  const __m512i zero = _mm512_setzero_si512();
  const __m128i sums = _mm256_castsi256_si128(
      SumScaled8(l0, h0, l1, h1, l2, h2, l3, h3, zero, zero, zero, zero, zero, zero, zero, zero));
  if constexpr (C == 4) {
    __m128i* const out4 = reinterpret_cast<__m128i*>(out);
    _mm_storeu_si128(out4, _mm_add_epi32(_mm_loadu_si128(out4), sums));
  } else {
    out[0] += _mm_cvtsi128_si32(sums);
    out[1] += _mm_extract_epi32(sums, 1);
  }
}
#undef TERN_DOT_BYTES

template <int R, int C>
HWY_INLINE void DotTile(const int8_t* x, int64_t x_stride, const uint8_t* w, int64_t w_stride,
                        int64_t groups, int32_t* out /* [R][C] */) {
  std::fill(out, out + R * C, 0);
  for (int64_t g0 = 0; g0 < groups; g0 += kMaxGroups512) {
    const int64_t g1 = std::min(groups, g0 + kMaxGroups512);
    if constexpr (R == 4 && C == 2) {
      DotTileGroups4x2(x, x_stride, w, w_stride, g0, g1, out);
    } else if constexpr (R == 1 && (C == 2 || C == 4)) {
      DotTileGroups1xC<C>(x, w, w_stride, g0, g1, out);
    } else {
      DotTileGroups<R, C>(x, x_stride, w, w_stride, g0, g1, out);
    }
  }
}
#else
#if TERN_TERNARY_X86 && HWY_TARGET <= HWY_AVX2
// The AVX2 training tile, four activation rows × one weight row, with its
// accumulators in named registers and added to in place (as the AVX-512 tiles:
// GCC 12 otherwise copies each accumulator once per group).
#define TERN_ADD16(acc, v) asm("vpaddw %1, %0, %0" : "+x"(acc) : "x"(v))
HWY_INLINE void DotTile4x1(const int8_t* x, int64_t x_stride, const uint8_t* w, int64_t groups,
                           int32_t* out /* [4] */) {
  const __m256i mask = _mm256_set1_epi8(3);
  __m256i wide0 = _mm256_setzero_si256(), wide1 = wide0, wide2 = wide0, wide3 = wide0;
  // An s16 lane gathers four pair sums (|·| ≤ 512 each) per group: 15 groups fit.
  for (int64_t g0 = 0; g0 < groups; g0 += 15) {
    const int64_t g1 = std::min(groups, g0 + 15);
    __m256i n0 = _mm256_setzero_si256(), n1 = n0, n2 = n0, n3 = n0;
    for (int64_t g = g0; g < g1; ++g) {
      const __m256i bytes = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + g * 32));
      const __m256i c0 = _mm256_and_si256(bytes, mask);
      const __m256i c1 = _mm256_and_si256(_mm256_srli_epi16(bytes, 2), mask);
      const __m256i c2 = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), mask);
      const __m256i c3 = _mm256_and_si256(_mm256_srli_epi16(bytes, 6), mask);
      const int8_t* xg = x + g * 128;
#define TERN_TILE_ROW(n)                                                                        \
  {                                                                                             \
    const __m256i* xv = reinterpret_cast<const __m256i*>(xg);                                   \
    const __m256i s01 = _mm256_add_epi16(_mm256_maddubs_epi16(c0, _mm256_loadu_si256(xv)),      \
                                         _mm256_maddubs_epi16(c1, _mm256_loadu_si256(xv + 1))); \
    const __m256i s23 = _mm256_add_epi16(_mm256_maddubs_epi16(c2, _mm256_loadu_si256(xv + 2)),  \
                                         _mm256_maddubs_epi16(c3, _mm256_loadu_si256(xv + 3))); \
    TERN_ADD16(n, _mm256_add_epi16(s01, s23));                                                  \
    xg += x_stride;                                                                             \
  }
      TERN_TILE_ROW(n0)
      TERN_TILE_ROW(n1)
      TERN_TILE_ROW(n2)
      TERN_TILE_ROW(n3)
#undef TERN_TILE_ROW
    }
    const __m256i ones = _mm256_set1_epi16(1);
    wide0 = _mm256_add_epi32(wide0, _mm256_madd_epi16(n0, ones));
    wide1 = _mm256_add_epi32(wide1, _mm256_madd_epi16(n1, ones));
    wide2 = _mm256_add_epi32(wide2, _mm256_madd_epi16(n2, ones));
    wide3 = _mm256_add_epi32(wide3, _mm256_madd_epi16(n3, ones));
  }
  auto sum = [](__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    return _mm_cvtsi128_si32(_mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1))));
  };
  out[0] = sum(wide0), out[1] = sum(wide1), out[2] = sum(wide2), out[3] = sum(wide3);
}
#undef TERN_ADD16
#endif

template <int R, int C>
HWY_NOINLINE void DotTile(const int8_t* x, int64_t x_stride, const uint8_t* w, int64_t w_stride,
                          int64_t groups, int32_t* out /* [R][C] */) {
#if TERN_TERNARY_X86 && HWY_TARGET <= HWY_AVX2
  if constexpr (R == 4 && C == 1) {
    DotTile4x1(x, x_stride, w, groups, out);
    return;
  }
#endif
  const hn::CappedTag<uint8_t, 32> du8;
  const hn::Repartition<int8_t, decltype(du8)> di8;
  const hn::Repartition<int32_t, decltype(du8)> di32;
  using VU8 = hn::Vec<decltype(du8)>;
  using VI32 = hn::Vec<decltype(di32)>;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(du8));  // 16 or 32
  const VU8 mask = hn::Set(du8, 3);
  VI32 acc[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = hn::Zero(di32);

#if TERN_TERNARY_X86
  const hn::Repartition<int16_t, decltype(du8)> di16;
  using VI16 = hn::Vec<decltype(di16)>;
  // An s16 lane gathers one pair sum (|·| ≤ 2·2·128 = 512) per shift and chunk;
  // 63 of them fit, so widen to s32 after at most that many groups.
  const int64_t flush_groups = std::max<int64_t>(1, 63 / (4 * (32 / lanes)));
  VI16 acc16[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc16[r][c] = hn::Zero(di16);
  auto step = [&](const VU8(&codes)[4][C], int64_t x_offset) {
    for (int r = 0; r < R; ++r) {
      const int8_t* xr = x + r * x_stride + x_offset;
      const auto x0 = hn::LoadU(di8, xr);
      const auto x1 = hn::LoadU(di8, xr + 32);
      const auto x2 = hn::LoadU(di8, xr + 64);
      const auto x3 = hn::LoadU(di8, xr + 96);
      for (int c = 0; c < C; ++c) {
        const VI16 p01 = hn::Add(VI16{MulAddPairs(codes[0][c].raw, x0.raw)},
                                 VI16{MulAddPairs(codes[1][c].raw, x1.raw)});
        const VI16 p23 = hn::Add(VI16{MulAddPairs(codes[2][c].raw, x2.raw)},
                                 VI16{MulAddPairs(codes[3][c].raw, x3.raw)});
        acc16[r][c] = hn::Add(acc16[r][c], hn::Add(p01, p23));
      }
    }
  };
  auto flush = [&] {
    for (int r = 0; r < R; ++r) {
      for (int c = 0; c < C; ++c) {
        acc[r][c] = hn::Add(acc[r][c], VI32{WidenPairs(acc16[r][c].raw)});
        acc16[r][c] = hn::Zero(di16);
      }
    }
  };
#else
  // Portable: widen both operands to s16 and multiply-accumulate pairs into s32.
  const hn::Half<decltype(du8)> dh8;
  const hn::Half<decltype(di8)> dhi8;
  const hn::Rebind<int16_t, decltype(dh8)> di16;
  VI32 acc_b[R][C];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc_b[r][c] = hn::Zero(di32);
  auto step = [&](const VU8(&codes_by_shift)[4][C], int64_t x_offset) {
    for (int r = 0; r < R; ++r) {
      for (int l = 0; l < 4; ++l) {
        const VU8* codes = codes_by_shift[l];
        const auto xv = hn::LoadU(di8, x + r * x_stride + x_offset + 32 * l);
        const auto x_lo = hn::PromoteTo(di16, hn::LowerHalf(dhi8, xv));
        const auto x_hi = hn::PromoteTo(di16, hn::UpperHalf(dhi8, xv));
        for (int c = 0; c < C; ++c) {
          const auto c_lo = hn::BitCast(di16, hn::PromoteTo(hn::RebindToUnsigned<decltype(di16)>(),
                                                            hn::LowerHalf(dh8, codes[c])));
          const auto c_hi = hn::BitCast(di16, hn::PromoteTo(hn::RebindToUnsigned<decltype(di16)>(),
                                                            hn::UpperHalf(dh8, codes[c])));
          acc[r][c] = hn::ReorderWidenMulAccumulate(di32, c_lo, x_lo, acc[r][c], acc_b[r][c]);
          acc[r][c] = hn::ReorderWidenMulAccumulate(di32, c_hi, x_hi, acc[r][c], acc_b[r][c]);
        }
      }
    }
  };
  const int64_t flush_groups = groups;
  auto flush = [] {};
#endif

  for (int64_t g0 = 0; g0 < groups; g0 += flush_groups) {
    const int64_t g1 = std::min(groups, g0 + flush_groups);
    for (int64_t g = g0; g < g1; ++g) {
      for (int64_t h = 0; h < 32; h += lanes) {
        // All four shifts of the C rows first, then each activation row once.
        VU8 codes[4][C];
        for (int c = 0; c < C; ++c) {
          const VU8 bytes = hn::LoadU(du8, w + c * w_stride + g * 32 + h);
          codes[0][c] = hn::And(bytes, mask);
          codes[1][c] = hn::And(hn::ShiftRight<2>(bytes), mask);
          codes[2][c] = hn::And(hn::ShiftRight<4>(bytes), mask);
          codes[3][c] = hn::ShiftRight<6>(bytes);
        }
        step(codes, g * 128 + h);
      }
    }
    flush();
  }
#if !TERN_TERNARY_X86
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c) acc[r][c] = hn::Add(acc[r][c], acc_b[r][c]);
#endif
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) out[r * C + c] = hn::GetLane(hn::SumOfLanes(di32, acc[r][c]));
  }
}
#endif  // HWY_TARGET == HWY_SCALAR

// y[n, w.rows] for weight rows [o_begin, o_end): (Σ q·x) · (scale / x_scale).
template <int R, int C>
void ProductRowsTiled(float* y, const PaddedCodes& x, int64_t n, const PackedView& w,
                      int64_t o_begin, int64_t o_end) {
  const int64_t groups = w.row_bytes / 32;
  int32_t sums[R * C];
  auto emit = [&](int64_t r0, int rr, int64_t o0, int cc) {
    for (int r = 0; r < rr; ++r) {
      const float row_factor = x.row_factors[r0 + r];
      for (int c = 0; c < cc; ++c) {
        const int32_t acc = sums[r * cc + c] - x.sums[r0 + r];
        y[(r0 + r) * w.rows + o0 + c] = static_cast<float>(acc) * row_factor;
      }
    }
  };
  // Decode tiles (one activation row) read each weight byte once, from DRAM. The
  // tile does enough work per byte that the out-of-order window holds few of
  // its loads ahead, and the hardware prefetchers restart slowly on every new
  // matrix, so the lines kDecodePrefetchBytes ahead of the current rows are requested.
  // The addresses ahead are integers: near the end of the rows they point past
  // the matrix (those lines are skipped), where a pointer may not point.
  // How far ahead and into which cache is the CPU's policy (decode_prefetch).
  constexpr bool stream_weights = R == 1;
  const bool near_into_l1 = decode_prefetch() == DecodePrefetch::kNearIntoL1;
  const uintptr_t w_end = reinterpret_cast<uintptr_t>(w.data + o_end * w.row_bytes);
  auto prefetch_ahead = [&](int64_t o) {
    const uintptr_t row = reinterpret_cast<uintptr_t>(w.data + o * w.row_bytes);
    const uintptr_t span = static_cast<uintptr_t>(C * w.row_bytes);
    if (near_into_l1) {
      prefetch_span_ahead<DecodePrefetch::kNearIntoL1>(row, span, w_end);
    } else {
      prefetch_span_ahead<DecodePrefetch::kFarIntoL2>(row, span, w_end);
    }
  };
  int64_t r0 = 0;
  for (; r0 + R <= n; r0 += R) {
    const int8_t* xr = x.data + r0 * x.stride;
    int64_t o = o_begin;
    for (; o + C <= o_end; o += C) {
      if constexpr (stream_weights) prefetch_ahead(o);
      DotTile<R, C>(xr, x.stride, w.data + o * w.row_bytes, w.row_bytes, groups, sums);
      emit(r0, R, o, C);
    }
    for (; o < o_end; ++o) {
      DotTile<R, 1>(xr, x.stride, w.data + o * w.row_bytes, w.row_bytes, groups, sums);
      emit(r0, R, o, 1);
    }
  }
  for (; r0 < n; ++r0) {  // leftover activation rows, one at a time
    const int8_t* xr = x.data + r0 * x.stride;
    int64_t o = o_begin;
    for (; o + C <= o_end; o += C) {
      DotTile<1, C>(xr, x.stride, w.data + o * w.row_bytes, w.row_bytes, groups, sums);
      emit(r0, 1, o, C);
    }
    for (; o < o_end; ++o) {
      DotTile<1, 1>(xr, x.stride, w.data + o * w.row_bytes, w.row_bytes, groups, sums);
      emit(r0, 1, o, 1);
    }
  }
}

#if TERN_TERNARY_X86 && HWY_TARGET <= HWY_AVX3_DL
// 32 registers: four activation rows against two weight rows (16 accumulators,
// four masked code vectors, two activation vectors). Decode takes four weight
// rows per activation row while the four span at most kDecodeTileBytes, two on
// longer rows: on the Xeon four rows of 1408 bytes (bitnet-1b's down
// projection) read 11-18% slower from DRAM than two, and four of 512 bytes
// 3-5% faster (BENCHMARKS.md).
constexpr int kTileRows = 4;
constexpr int kTileCols = 2;
constexpr int kDecodeCols = 4;
constexpr int kDecodeColsLongRows = 2;
#else
// Training and prefill tiles: four activation rows against one weight row keep
// the accumulators, the four decoded shifts and the operands in 16 AVX2 registers
// (wider tiles spill and measured slower on Zen 3).
constexpr int kTileRows = 4;
constexpr int kTileCols = 1;
constexpr int kDecodeCols = 2;
constexpr int kDecodeColsLongRows = kDecodeCols;  // one decode width for every row length
#endif
constexpr int64_t kDecodeTileBytes = 2048;

void ProductRows(float* y, const PaddedCodes& x, int64_t n, const PackedView& w, int64_t o_begin,
                 int64_t o_end) {
  if (n < kTileRows) {
    // Decode shapes: one activation row against several weight rows per tile.
    if (kDecodeCols * w.row_bytes <= kDecodeTileBytes) {
      ProductRowsTiled<1, kDecodeCols>(y, x, n, w, o_begin, o_end);
    } else {
      ProductRowsTiled<1, kDecodeColsLongRows>(y, x, n, w, o_begin, o_end);
    }
  } else {
    ProductRowsTiled<kTileRows, kTileCols>(y, x, n, w, o_begin, o_end);
  }
}

// ---------------------------------------------------------------------------
// Exact fp32 input gradient: dx[:, cols of one 32-column run] = Σ_o dy·q in o order.

// Decodes rows [o_begin, o_end) of the run (group g, shift) into panel[o][32] as ±1/0 floats.
void DecodePanel(float* panel, const PackedView& w, int64_t g, int shift, int64_t o_begin,
                 int64_t o_end) {
  const hn::CappedTag<float, 8> df;
  const hn::Rebind<uint8_t, decltype(df)> du8;
  const hn::Rebind<int32_t, decltype(df)> di32;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  const auto mask = hn::Set(du8, 3);
  const auto one = hn::Set(df, 1.0f);
  for (int64_t o = o_begin; o < o_end; ++o) {
    const uint8_t* bytes = w.data + o * w.row_bytes + g * 32;
    float* dst = panel + (o - o_begin) * kRunCols;
    for (int64_t m = 0; m < kRunCols; m += lanes) {
      const auto b = hn::LoadU(du8, bytes + m);
      const auto codes = hn::And(hn::ShiftRightSame(b, shift), mask);
      const auto q = hn::Sub(hn::ConvertTo(df, hn::PromoteTo(di32, codes)), one);
      hn::StoreU(q, df, dst + m);
    }
  }
}

// acc[r][0..32) += Σ_{o in panel} dy[r, o] · panel[o] for rows [r_begin, r_end).
template <int R>
HWY_NOINLINE void AccumulatePanel(float* acc, const float* dy, int64_t dy_stride,
                                  const float* panel, int64_t o_begin, int64_t o_count) {
  const hn::CappedTag<float, 8> df;
  using V = hn::Vec<decltype(df)>;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t m0 = 0; m0 < kRunCols; m0 += 2 * lanes) {
    V a[R][2];
    for (int r = 0; r < R; ++r) {
      a[r][0] = hn::LoadU(df, acc + r * kRunCols + m0);
      a[r][1] = hn::LoadU(df, acc + r * kRunCols + m0 + lanes);
    }
    for (int64_t o = 0; o < o_count; ++o) {
      const V p0 = hn::LoadU(df, panel + o * kRunCols + m0);
      const V p1 = hn::LoadU(df, panel + o * kRunCols + m0 + lanes);
      for (int r = 0; r < R; ++r) {
        // dy·q is exact (q ∈ {−1, 0, 1}), so a fused multiply-add rounds like the
        // reference's separate multiply and add.
        const V g = hn::Set(df, dy[r * dy_stride + o_begin + o]);
        a[r][0] = hn::MulAdd(g, p0, a[r][0]);
        a[r][1] = hn::MulAdd(g, p1, a[r][1]);
      }
    }
    for (int r = 0; r < R; ++r) {
      hn::StoreU(a[r][0], df, acc + r * kRunCols + m0);
      hn::StoreU(a[r][1], df, acc + r * kRunCols + m0 + lanes);
    }
  }
}

// Runs [run_begin, run_end) of the row layout's 32-column runs; scratch holds
// n·32 accumulators plus one panel.
void BackwardInputRuns(float* dx, const float* dy, const PackedView& w, int64_t n,
                       int64_t run_begin, int64_t run_end, float* scratch) {
  float* acc = scratch;
  float* panel = scratch + n * kRunCols;
  const int64_t in = w.cols;
  const int64_t out = w.rows;
  for (int64_t run = run_begin; run < run_end; ++run) {
    const int64_t g = run / 4;
    const int shift = static_cast<int>(2 * (run % 4));
    const int64_t col0 = g * 128 + (run % 4) * kRunCols;
    std::fill(acc, acc + n * kRunCols, 0.0f);
    for (int64_t o0 = 0; o0 < out; o0 += kPanelRows) {
      const int64_t o1 = std::min(out, o0 + kPanelRows);
      DecodePanel(panel, w, g, shift, o0, o1);
      int64_t r = 0;
      for (; r + 4 <= n; r += 4)
        AccumulatePanel<4>(acc + r * kRunCols, dy + r * out, out, panel, o0, o1 - o0);
      for (; r < n; ++r)
        AccumulatePanel<1>(acc + r * kRunCols, dy + r * out, out, panel, o0, o1 - o0);
    }
    const int64_t valid = std::min<int64_t>(kRunCols, in - col0);
    for (int64_t r = 0; r < n; ++r) {
      for (int64_t m = 0; m < valid; ++m) dx[r * in + col0 + m] = acc[r * kRunCols + m] * w.scale;
    }
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace tern::cpu
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX3_DL
#pragma GCC pop_options
#endif
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tern::cpu {

HWY_EXPORT(QuantizeRows);
HWY_EXPORT(ProductRows);
HWY_EXPORT(BackwardInputRuns);

namespace {

// Per-thread scratch that only grows, so repeated calls do not allocate.
template <typename T>
T* scratch(std::vector<T>& buffer, int64_t count) {
  if (buffer.size() < static_cast<size_t>(count)) buffer.resize(static_cast<size_t>(count));
  return buffer.data();
}

// Copies codes[n, cols] into rows padded to whole groups (unless already whole)
// and sums each row.
PaddedCodes pad_codes(const int8_t* codes, int64_t n, int64_t cols) {
  thread_local std::vector<int8_t> padded;
  thread_local std::vector<int32_t> sums;
  const int64_t stride = ref::TernaryMatrix::bytes_per_row(cols) * 4;
  int32_t* row_sums = scratch(sums, n);
  PaddedCodes out{codes, cols, row_sums};
  if (stride != cols) {
    int8_t* dst = scratch(padded, n * stride);
    for (int64_t r = 0; r < n; ++r) {
      std::memcpy(dst + r * stride, codes + r * cols, static_cast<size_t>(cols));
      std::memset(dst + r * stride + cols, 0, static_cast<size_t>(stride - cols));
    }
    out = {dst, stride, row_sums};
  }
  for (int64_t r = 0; r < n; ++r) {
    int32_t s = 0;
    for (int64_t k = 0; k < cols; ++k) s += codes[r * cols + k];
    row_sums[r] = s;
  }
  return out;
}

void product(float* y, const int8_t* x_codes, const float* x_scale, const PackedView& w,
             int64_t n) {
  PaddedCodes x = pad_codes(x_codes, n, w.cols);
  // Once per row here rather than once per tile in the kernels: same quotient.
  thread_local std::vector<float> factors;
  float* row_factors = scratch(factors, n);
  for (int64_t r = 0; r < n; ++r) row_factors[r] = w.scale / x_scale[r];
  x.row_factors = row_factors;
  // Split by blocks of 4 weight rows; small matrices stay on one thread.
  const int64_t blocks = (w.rows + 3) / 4;
  const int64_t min_blocks = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, n * w.row_bytes));
  parallel_for(
      blocks,
      [&](int64_t b0, int64_t b1) {
        HWY_DYNAMIC_DISPATCH(ProductRows)(y, x, n, w, b0 * 4, std::min(w.rows, b1 * 4));
      },
      min_blocks);
}

PackedView row_view(const ref::TernaryMatrix& w) {
  TERN_CHECK(w.packed.size() == static_cast<size_t>(w.rows * w.row_bytes()));
  return {w.packed.data(), w.rows, w.cols, w.row_bytes(), w.scale};
}

}  // namespace

void quantize_activations_absmax(int8_t* codes, float* scale, const float* x, int64_t n,
                                 int64_t d) {
  parallel_for(
      n,
      [&](int64_t begin, int64_t end) {
        HWY_DYNAMIC_DISPATCH(QuantizeRows)(codes, scale, x, begin, end, d);
      },
      std::max<int64_t>(1, 16384 / std::max<int64_t>(1, d)));
}

void bitlinear_forward(float* y, const int8_t* x_codes, const float* x_scale,
                       const ref::TernaryMatrix& w, int64_t n) {
  if (n <= 0) return;
  product(y, x_codes, x_scale, row_view(w), n);
}

void bitlinear_backward_input(float* dx, const float* dy, const ref::TernaryMatrix& w, int64_t n) {
  if (n <= 0) return;
  const PackedView view = row_view(w);
  const int64_t runs = (w.cols + kRunCols - 1) / kRunCols;
  parallel_for(runs, [&](int64_t r0, int64_t r1) {
    thread_local std::vector<float> buffer;
    float* s = scratch(buffer, (n + kPanelRows) * kRunCols);
    HWY_DYNAMIC_DISPATCH(BackwardInputRuns)(dx, dy, view, n, r0, r1, s);
  });
}

void bitlinear_backward_input_int8(float* dx, const int8_t* dy_codes, const float* dy_scale,
                                   const ref::TernaryMatrix& w, int64_t n) {
  if (n <= 0) return;
  if (w.has_transposed()) {
    TERN_CHECK(w.transposed.size() == static_cast<size_t>(w.cols * w.transposed_row_bytes()));
    product(dx, dy_codes, dy_scale,
            {w.transposed.data(), w.cols, w.rows, w.transposed_row_bytes(), w.scale}, n);
    return;
  }
  ref::TernaryMatrix transposed_copy = w;
  transposed_copy.build_transposed();
  cpu::bitlinear_backward_input_int8(dx, dy_codes, dy_scale, transposed_copy, n);
}

}  // namespace tern::cpu
#endif  // HWY_ONCE
