// Dense fp32 products, compiled once per Highway target (see dispatch.h, blas.h).
//
// Forward: register blocks of rows of x × rows of w, one 8-lane accumulator
// (ref::dot's lanes) per output element, folded pairwise at the end.
// Gradients: register blocks of output rows × whole vectors of columns, one
// multiply and one add per term in the reference's order. Sizeless SVE vectors
// cannot live in arrays, so scalable targets use unblocked loops with the same
// arithmetic; the scalar target runs the reference's loops.
#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/blas.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
#include <hwy/highway.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/check.h"
#include "core/thread_pool.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/prefetch.h"

#ifndef TERN_KERNELS_CPU_BLAS_ONCE
#define TERN_KERNELS_CPU_BLAS_ONCE
namespace tern::cpu {

// Exact binary16 → binary32 with float operations that vectorize: normal values
// are rebiased by a multiply by 2^-112, subnormals built as (0.5 + m·2^-24) − 0.5.
// Both steps are exact; infinities stay infinite and NaNs NaN (quieted).
inline float widen_one(uint16_t h) {
  const uint32_t w = static_cast<uint32_t>(h) << 16;
  const uint32_t sign = w & 0x80000000u;
  const uint32_t two_w = w + w;  // exponent and mantissa, sign shifted out
  const float normal = std::bit_cast<float>((two_w >> 4) + (0xE0u << 23)) * 0x1.0p-112f;
  const float subnormal = std::bit_cast<float>((two_w >> 17) | (126u << 23)) - 0.5f;
  const uint32_t magnitude =
      two_w < (1u << 27) ? std::bit_cast<uint32_t>(subnormal) : std::bit_cast<uint32_t>(normal);
  return std::bit_cast<float>(sign | magnitude);
}

// Pairwise fold of ref::dot's 8 lanes.
inline float fold_lanes(const float* l) {
  return ((l[0] + l[1]) + (l[2] + l[3])) + ((l[4] + l[5]) + (l[6] + l[7]));
}

}  // namespace tern::cpu
#endif

HWY_BEFORE_NAMESPACE();
namespace tern::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// ---------------------------------------------------------------------------
// Forward: y[i, o] = dot(x_i, w_o) in ref::dot's order.

#if HWY_TARGET == HWY_SCALAR

inline float weight_value(float w) {
  return w;
}
inline float weight_value(uint16_t w) {
  return widen_one(w);
}

// No vectors: ref::dot's loop itself; w is fp32 or binary16 (W = uint16_t).
// The scalar target keeps the reference's speed too: it does not prefetch.
template <typename W>
void DotRows(float* y, int64_t ldy, const float* x, int64_t n, const W* w, int64_t outs, int64_t in,
             uintptr_t /*prefetch_end*/) {
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < outs; ++o) {
      const float* xr = x + i * in;
      const W* wr = w + o * in;
      float lanes[8] = {};
      int64_t k = 0;
      for (; k + 8 <= in; k += 8) {
        for (int l = 0; l < 8; ++l) lanes[l] += xr[k + l] * weight_value(wr[k + l]);
      }
      for (int l = 0; k < in; ++k, ++l) lanes[l] += xr[k] * weight_value(wr[k]);
      y[i * ldy + o] = fold_lanes(lanes);
    }
  }
}

#else  // HWY_TARGET != HWY_SCALAR

// One 8-lane accumulator is kParts vectors of kPartLanes floats: part p, lane l
// holds ref::dot's lane p·kPartLanes + l.
constexpr int kPartLanes = (HWY_HAVE_SCALABLE || HWY_MAX_BYTES < 32) ? 4 : 8;
constexpr int kParts = 8 / kPartLanes;
using D8 = hn::FixedTag<float, kPartLanes>;

// Lanes of d from binary16 bits, exactly as widen_one (a signalling NaN may
// come back quieted). F16C and AArch64 convert in one instruction; elsewhere
// widen_one's steps run on vectors, because Highway's portable conversion
// turns infinities and NaNs into finite values.
template <class DF>
HWY_INLINE hn::Vec<DF> LoadWidened(DF d, const uint16_t* p) {
#if (HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2 && !defined(HWY_DISABLE_F16C)) || \
    (HWY_ARCH_ARM_A64 && defined(__ARM_FP) && (__ARM_FP & 2))
  const hn::Rebind<hwy::float16_t, DF> dh;
  return hn::PromoteTo(d, hn::LoadU(dh, reinterpret_cast<const hwy::float16_t*>(p)));
#else
  const hn::Rebind<uint16_t, DF> d16;
  const hn::RebindToUnsigned<DF> du;
  const auto w = hn::ShiftLeft<16>(hn::PromoteTo(du, hn::LoadU(d16, p)));
  const auto two_w = hn::Add(w, w);
  const auto normal =
      hn::Mul(hn::BitCast(d, hn::Add(hn::ShiftRight<4>(two_w), hn::Set(du, 0xE0u << 23))),
              hn::Set(d, 0x1.0p-112f));
  const auto subnormal = hn::Sub(
      hn::BitCast(d, hn::Or(hn::ShiftRight<17>(two_w), hn::Set(du, 126u << 23))), hn::Set(d, 0.5f));
  const auto is_subnormal = hn::RebindMask(d, hn::Eq(hn::ShiftRight<27>(two_w), hn::Zero(du)));
  return hn::Or(hn::IfThenElse(is_subnormal, subnormal, normal),
                hn::BitCast(d, hn::And(w, hn::Set(du, 0x80000000u))));
#endif
}

// Weights as floats: fp32 loaded, binary16 widened.
HWY_INLINE hn::Vec<D8> LoadWeights(D8 d, const float* p) {
  return hn::LoadU(d, p);
}
HWY_INLINE hn::Vec<D8> LoadWeights(D8 d, const uint16_t* p) {
  return LoadWidened(d, p);
}

// Decoding (one row of x) streams the weights: whenever the dot of row w_row
// reaches a new 64-byte line at element k, the line kDecodePrefetchBytes<P>
// ahead is requested unless it lies at or past prefetch_end (0: never).
template <DecodePrefetch P = DecodePrefetch::kFarIntoL2, typename W>
HWY_INLINE void PrefetchRowAhead(const W* w_row, int64_t k, uintptr_t prefetch_end) {
  if (k % static_cast<int64_t>(64 / sizeof(W)) != 0) return;
  const uintptr_t ahead = reinterpret_cast<uintptr_t>(w_row + k) + kDecodePrefetchBytes<P>;
  if (ahead < prefetch_end) prefetch_for_decode<P>(ahead);
}

#if !HWY_HAVE_SCALABLE

// Register block: rows of x × rows of w.
constexpr int kDotRows = kParts == 1 ? 4 : 2;
constexpr int kDotOuts = 3;

// y[r, c] (row stride ldy) = dot(x_r, w_c) for r < R, c < C; rows of x and w are
// `in` elements apart; w is fp32 or binary16 (W = uint16_t). A single row of x
// prefetches the weights ahead (PrefetchRowAhead with policy P).
template <int R, int C, DecodePrefetch P, typename W>
HWY_INLINE void DotBlock(float* y, int64_t ldy, const float* x, const W* w, int64_t in,
                         uintptr_t prefetch_end) {
  const D8 d;
  using V = hn::Vec<D8>;
  V acc[R][C][kParts];
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      for (int p = 0; p < kParts; ++p) acc[r][c][p] = hn::Zero(d);
    }
  }
  auto step = [&](const float* const* xs, const W* const* ws) {
    for (int p = 0; p < kParts; ++p) {
      V xv[R];
      for (int r = 0; r < R; ++r) xv[r] = hn::LoadU(d, xs[r] + p * kPartLanes);
      for (int c = 0; c < C; ++c) {
        const V wv = LoadWeights(d, ws[c] + p * kPartLanes);
        for (int r = 0; r < R; ++r) acc[r][c][p] = hn::Add(acc[r][c][p], hn::Mul(xv[r], wv));
      }
    }
  };
  const int64_t main = in / 8 * 8;
  const float* xs[R];
  const W* ws[C];
  for (int64_t k = 0; k < main; k += 8) {
    if constexpr (R == 1) {
      for (int c = 0; c < C; ++c) PrefetchRowAhead<P>(w + c * in, k, prefetch_end);
    }
    for (int r = 0; r < R; ++r) xs[r] = x + r * in + k;
    for (int c = 0; c < C; ++c) ws[c] = w + c * in + k;
    step(xs, ws);
  }
  if (main < in) {
    // ref::dot adds tail element j to lane j. Zero-padded copies do the same:
    // the other lanes add 0·0 = +0, which changes nothing (a lane starts at +0
    // and is never −0).
    HWY_ALIGN float x_tail[R][8] = {};
    HWY_ALIGN W w_tail[C][8] = {};  // binary16 +0 is all zero bits, as fp32's
    const size_t tail = static_cast<size_t>(in - main);
    for (int r = 0; r < R; ++r) {
      std::memcpy(x_tail[r], x + r * in + main, tail * sizeof(float));
      xs[r] = x_tail[r];
    }
    for (int c = 0; c < C; ++c) {
      std::memcpy(w_tail[c], w + c * in + main, tail * sizeof(W));
      ws[c] = w_tail[c];
    }
    step(xs, ws);
  }
  for (int r = 0; r < R; ++r) {
    for (int c = 0; c < C; ++c) {
      HWY_ALIGN float lanes[8];
      for (int p = 0; p < kParts; ++p) hn::Store(acc[r][c][p], d, lanes + p * kPartLanes);
      y[r * ldy + c] = fold_lanes(lanes);
    }
  }
}

template <int R, DecodePrefetch P = DecodePrefetch::kFarIntoL2, typename W>
void DotRowBlock(float* y, int64_t ldy, const float* x, const W* w, int64_t outs, int64_t in,
                 uintptr_t prefetch_end) {
  int64_t o = 0;
  for (; o + kDotOuts <= outs; o += kDotOuts) {
    DotBlock<R, kDotOuts, P>(y + o, ldy, x, w + o * in, in, prefetch_end);
  }
  for (; o < outs; ++o) DotBlock<R, 1, P>(y + o, ldy, x, w + o * in, in, prefetch_end);
}

// y[i, o] (row stride ldy) = dot(x_i, w_o) for i < n, o < outs. With one row of
// x the weights are prefetched up to prefetch_end (0: not at all).
template <typename W>
void DotRows(float* y, int64_t ldy, const float* x, int64_t n, const W* w, int64_t outs, int64_t in,
             uintptr_t prefetch_end) {
  int64_t i = 0;
  for (; i + kDotRows <= n; i += kDotRows) {
    DotRowBlock<kDotRows>(y + i * ldy, ldy, x + i * in, w, outs, in, 0);
  }
  // The CPU's policy (dense_decode_prefetch), a compile-time constant per branch.
  const bool far_into_l1 = dense_decode_prefetch() == DecodePrefetch::kFarIntoL1;
  for (; i < n; ++i) {
    if (far_into_l1) {
      DotRowBlock<1, DecodePrefetch::kFarIntoL1>(y + i * ldy, ldy, x + i * in, w, outs, in,
                                                 prefetch_end);
    } else {
      DotRowBlock<1, DecodePrefetch::kFarIntoL2>(y + i * ldy, ldy, x + i * in, w, outs, in,
                                                 prefetch_end);
    }
  }
}

#else  // HWY_HAVE_SCALABLE

static_assert(kParts == 2);

template <typename W>
void DotRows(float* y, int64_t ldy, const float* x, int64_t n, const W* w, int64_t outs, int64_t in,
             uintptr_t prefetch_end) {
  const D8 d;
  const int64_t main = in / 8 * 8;
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t o = 0; o < outs; ++o) {
      const float* xr = x + i * in;
      const W* wr = w + o * in;
      auto a0 = hn::Zero(d);
      auto a1 = hn::Zero(d);
      for (int64_t k = 0; k < main; k += 8) {
        PrefetchRowAhead(wr, k, prefetch_end);
        a0 = hn::Add(a0, hn::Mul(hn::LoadU(d, xr + k), LoadWeights(d, wr + k)));
        a1 = hn::Add(a1, hn::Mul(hn::LoadU(d, xr + k + 4), LoadWeights(d, wr + k + 4)));
      }
      if (main < in) {  // as in the blocked version: zero-padded tails
        HWY_ALIGN float xt[8] = {};
        HWY_ALIGN W wt[8] = {};
        std::memcpy(xt, xr + main, static_cast<size_t>(in - main) * sizeof(float));
        std::memcpy(wt, wr + main, static_cast<size_t>(in - main) * sizeof(W));
        a0 = hn::Add(a0, hn::Mul(hn::Load(d, xt), LoadWeights(d, wt)));
        a1 = hn::Add(a1, hn::Mul(hn::Load(d, xt + 4), LoadWeights(d, wt + 4)));
      }
      HWY_ALIGN float lanes[8];
      hn::Store(a0, d, lanes);
      hn::Store(a1, d, lanes + 4);
      y[i * ldy + o] = fold_lanes(lanes);
    }
  }
}

#endif  // HWY_HAVE_SCALABLE
#endif  // HWY_TARGET == HWY_SCALAR

void DenseWidenF16(float* out, const uint16_t* h, int64_t count) {
  int64_t i = 0;
#if HWY_TARGET != HWY_SCALAR
  const D8 d;
  for (; i + kPartLanes <= count; i += kPartLanes) hn::StoreU(LoadWidened(d, h + i), d, out + i);
#endif
  for (; i < count; ++i) out[i] = widen_one(h[i]);
}

// End of the weight rows of tiles [.., t_end) as an integer, for a prefetch
// bound: decoding (n = 1) streams them; other shapes reuse each tile from cache.
template <typename W>
uintptr_t DecodePrefetchEnd(const W* w, int64_t n, int64_t in, int64_t out, int64_t tile,
                            int64_t t_end) {
  return n == 1 ? reinterpret_cast<uintptr_t>(w + std::min(t_end * tile, out) * in) : 0;
}

// Tiles [t_begin, t_end) of `tile` rows of w: y[:, tile] for all n rows.
void DenseForwardTiles(float* y, const float* x, const float* w, int64_t n, int64_t in, int64_t out,
                       int64_t tile, int64_t t_begin, int64_t t_end) {
  const uintptr_t prefetch_end = DecodePrefetchEnd(w, n, in, out, tile, t_end);
  for (int64_t t = t_begin; t < t_end; ++t) {
    const int64_t o0 = t * tile;
    DotRows(y + o0, out, x, n, w + o0 * in, std::min(tile, out - o0), in, prefetch_end);
  }
}

// As DenseForwardTiles with binary16 weights, widened one tile at a time into
// scratch[tile · in]. For a single row of x (decoding) each weight is used
// once, so it is widened where it is loaded instead and scratch may be null.
void DenseForwardF16Tiles(float* y, const float* x, const uint16_t* w, int64_t n, int64_t in,
                          int64_t out, int64_t tile, int64_t t_begin, int64_t t_end,
                          float* scratch) {
  for (int64_t t = t_begin; t < t_end; ++t) {
    const int64_t o0 = t * tile;
    const int64_t rows = std::min(tile, out - o0);
    if (n == 1) {
      DotRows(y + o0, out, x, n, w + o0 * in, rows, in,
              DecodePrefetchEnd(w, n, in, out, tile, t_end));
      continue;
    }
    DenseWidenF16(scratch, w + o0 * in, rows * in);
    DotRows(y + o0, out, x, n, scratch, rows, in, 0);
  }
}

// ---------------------------------------------------------------------------
// Gradients: c[r, j] = (accumulate ? c[r, j] : 0) + Σ_t a(r, t) · b[t, j], t
// ascending, one multiply and one add per term; a(r, t) = a[r·a_rs + t·a_ts].

struct OuterArgs {
  float* c;
  int64_t ldc;
  bool accumulate;
  const float* a;
  int64_t a_rs, a_ts;
  const float* b;
  int64_t ldb;
  int64_t steps;  // T
};

#if HWY_TARGET == HWY_SCALAR

// No vectors: the reference's loops, summing in c.
void OuterWhole(OuterArgs g, int64_t rows, int64_t cols) {
  for (int64_t r = 0; r < rows; ++r) {
    float* c_row = g.c + r * g.ldc;
    if (!g.accumulate) std::fill(c_row, c_row + cols, 0.0f);
    for (int64_t t = 0; t < g.steps; ++t) {
      const float a = g.a[r * g.a_rs + t * g.a_ts];
      const float* b_row = g.b + t * g.ldb;
      for (int64_t j = 0; j < cols; ++j) c_row[j] += a * b_row[j];
    }
  }
}

#elif !HWY_HAVE_SCALABLE

constexpr int kOuterRows = 4;
constexpr int kOuterVecs = 2;

// Rows [0, R) × vectors [0, C) starting at column j0; the last vector holds
// `last` valid columns (b is readable for the whole vector).
template <int R, int C>
HWY_INLINE void OuterBlock(const OuterArgs& g, int64_t j0, int64_t last) {
  const hn::ScalableTag<float> d;
  using V = hn::Vec<decltype(d)>;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  V acc[R][C];
  HWY_ALIGN float buffer[HWY_MAX_BYTES / sizeof(float)];
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < C; ++v) {
      const float* src = g.c + r * g.ldc + j0 + v * lanes;
      if (!g.accumulate) {
        acc[r][v] = hn::Zero(d);
      } else if (v + 1 < C || last == lanes) {
        acc[r][v] = hn::LoadU(d, src);
      } else {
        std::memcpy(buffer, src, static_cast<size_t>(last) * sizeof(float));
        acc[r][v] = hn::Load(d, buffer);
      }
    }
  }
  for (int64_t t = 0; t < g.steps; ++t) {
    V bv[C];
    for (int v = 0; v < C; ++v) bv[v] = hn::LoadU(d, g.b + t * g.ldb + j0 + v * lanes);
    for (int r = 0; r < R; ++r) {
      const V av = hn::Set(d, g.a[r * g.a_rs + t * g.a_ts]);
      for (int v = 0; v < C; ++v) acc[r][v] = hn::Add(acc[r][v], hn::Mul(av, bv[v]));
    }
  }
  for (int r = 0; r < R; ++r) {
    for (int v = 0; v < C; ++v) {
      float* dst = g.c + r * g.ldc + j0 + v * lanes;
      if (v + 1 < C || last == lanes) {
        hn::StoreU(acc[r][v], d, dst);
      } else {
        hn::Store(acc[r][v], d, buffer);
        std::memcpy(dst, buffer, static_cast<size_t>(last) * sizeof(float));
      }
    }
  }
}

template <int R>
void OuterRowBlock(const OuterArgs& g, int64_t cols) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(hn::ScalableTag<float>()));
  const int64_t block = kOuterVecs * lanes;
  int64_t j = 0;
  for (; j + block <= cols; j += block) OuterBlock<R, kOuterVecs>(g, j, lanes);
  for (; j < cols; j += lanes) OuterBlock<R, 1>(g, j, std::min(lanes, cols - j));
}

// Rows [0, rows) × columns [0, cols); b readable in whole vectors.
void OuterWhole(OuterArgs g, int64_t rows, int64_t cols) {
  int64_t r = 0;
  for (; r + kOuterRows <= rows; r += kOuterRows) {
    OuterRowBlock<kOuterRows>(g, cols);
    g.c += kOuterRows * g.ldc;
    g.a += kOuterRows * g.a_rs;
  }
  for (; r < rows; ++r) {
    OuterRowBlock<1>(g, cols);
    g.c += g.ldc;
    g.a += g.a_rs;
  }
}

#else  // HWY_HAVE_SCALABLE

void OuterWhole(OuterArgs g, int64_t rows, int64_t cols) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  std::vector<float> buffer(static_cast<size_t>(lanes));
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < cols; j += lanes) {
      const int64_t valid = std::min(lanes, cols - j);
      float* dst = g.c + r * g.ldc + j;
      std::fill(buffer.begin(), buffer.end(), 0.0f);
      if (g.accumulate) std::memcpy(buffer.data(), dst, static_cast<size_t>(valid) * sizeof(float));
      auto acc = hn::LoadU(d, buffer.data());
      for (int64_t t = 0; t < g.steps; ++t) {
        const auto av = hn::Set(d, g.a[r * g.a_rs + t * g.a_ts]);
        acc = hn::Add(acc, hn::Mul(av, hn::LoadU(d, g.b + t * g.ldb + j)));
      }
      hn::StoreU(acc, d, buffer.data());
      std::memcpy(dst, buffer.data(), static_cast<size_t>(valid) * sizeof(float));
    }
  }
}

#endif  // HWY_HAVE_SCALABLE

// The outer-product update of rows [0, rows) × columns [0, cols), any cols: a
// last partial vector reads b from a zero-padded copy of its columns.
void DenseOuter(float* c, int64_t ldc, bool accumulate, const float* a, int64_t a_rs, int64_t a_ts,
                int64_t rows, const float* b, int64_t ldb, int64_t steps, int64_t cols) {
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(hn::ScalableTag<float>()));
  const int64_t whole = cols / lanes * lanes;
  OuterArgs g{c, ldc, accumulate, a, a_rs, a_ts, b, ldb, steps};
  if (whole > 0) OuterWhole(g, rows, whole);
  if (whole == cols) return;
  thread_local std::vector<float> padded;  // [steps, lanes]
  padded.assign(static_cast<size_t>(steps * lanes), 0.0f);
  for (int64_t t = 0; t < steps; ++t) {
    std::memcpy(padded.data() + t * lanes, b + t * ldb + whole,
                static_cast<size_t>(cols - whole) * sizeof(float));
  }
  g.c = c + whole;
  g.b = padded.data();
  g.ldb = lanes;
  OuterWhole(g, rows, cols - whole);
}

}  // namespace HWY_NAMESPACE
}  // namespace tern::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
#include <cblas.h>

namespace tern::cpu {

HWY_EXPORT(DenseWidenF16);
HWY_EXPORT(DenseForwardTiles);
HWY_EXPORT(DenseForwardF16Tiles);
HWY_EXPORT(DenseOuter);

namespace {

// Tile sizes. The bits never depend on them (every element has one fixed order
// of operations), only the speed.
constexpr int64_t kForwardTile = 24;  // rows of w per forward tile (L2-resident)
constexpr int64_t kGradRows = 64;     // output rows per gradient tile
constexpr int64_t kGradCols = 64;     // output columns per gradient tile
constexpr int64_t kGradSteps = 512;   // summed terms per pass over a gradient tile

int64_t num_tiles(int64_t extent, int64_t tile) {
  return (extent + tile - 1) / tile;
}

// Per-thread scratch of the gradient kernels, allocated once per call.
struct GradScratch {
  std::vector<float> a;  // [kGradSteps, kGradRows]
  std::vector<float> b;  // [kGradSteps, kGradCols]
};

// Runs fn(r0, r1, c0, c1, scratch) over the kGradRows × kGradCols tiles of a
// rows × cols output, column tiles outermost so a thread's tiles share b's columns.
template <typename Fn>
void for_grad_tiles(int64_t rows, int64_t cols, const Fn& fn) {
  const int64_t row_tiles = num_tiles(rows, kGradRows);
  parallel_for(row_tiles * num_tiles(cols, kGradCols), [&](int64_t begin, int64_t end) {
    GradScratch scratch;
    scratch.a.resize(static_cast<size_t>(kGradSteps * kGradRows));
    scratch.b.resize(static_cast<size_t>(kGradSteps * kGradCols));
    for (int64_t t = begin; t < end; ++t) {
      const int64_t r0 = t % row_tiles * kGradRows, c0 = t / row_tiles * kGradCols;
      fn(r0, std::min(rows, r0 + kGradRows), c0, std::min(cols, c0 + kGradCols), scratch);
    }
  });
}

void dense_outer(float* c, int64_t ldc, bool accumulate, const float* a, int64_t a_rs, int64_t a_ts,
                 int64_t rows, const float* b, int64_t ldb, int64_t steps, int64_t cols) {
  HWY_DYNAMIC_DISPATCH(DenseOuter)(c, ldc, accumulate, a, a_rs, a_ts, rows, b, ldb, steps, cols);
}

// c = (accumulate ? c : 0) + Σ_t a(r, t)·b[t, :] over t in passes of kGradSteps.
// Each pass copies its rows of b (and a, when a's terms are strided) into
// contiguous scratch: rows 2^k floats apart would share a few cache sets. The
// sum continues from c in memory, so the order per element is unchanged.
void outer_in_passes(float* c, int64_t ldc, bool accumulate, const float* a, int64_t a_rs,
                     int64_t a_ts, int64_t rows, const float* b, int64_t ldb, int64_t steps,
                     int64_t cols, GradScratch& scratch) {
  int64_t t0 = 0;
  do {
    const int64_t t1 = std::min(steps, t0 + kGradSteps);
    for (int64_t t = t0; t < t1; ++t) {
      std::memcpy(scratch.b.data() + (t - t0) * cols, b + t * ldb,
                  static_cast<size_t>(cols) * sizeof(float));
    }
    const float* a_pass = a + t0 * a_ts;
    int64_t a_rs_pass = a_rs, a_ts_pass = a_ts;
    if (a_ts != 1) {
      for (int64_t t = t0; t < t1; ++t) {
        for (int64_t r = 0; r < rows; ++r) scratch.a[(t - t0) * rows + r] = a[r * a_rs + t * a_ts];
      }
      a_pass = scratch.a.data();
      a_rs_pass = 1;
      a_ts_pass = rows;
    }
    dense_outer(c, ldc, accumulate || t0 > 0, a_pass, a_rs_pass, a_ts_pass, rows, scratch.b.data(),
                cols, t1 - t0, cols);
    t0 = t1;
  } while (t0 < steps);
}

void check_dims(int64_t n, int64_t in, int64_t out) {
  TERN_CHECK(n >= 0 && in >= 0 && out >= 0, "n=", n, " in=", in, " out=", out);
}

}  // namespace

void widen_f16(float* out, const uint16_t* h, int64_t count) {
  HWY_DYNAMIC_DISPATCH(DenseWidenF16)(out, h, count);
}

void linear_forward(float* y, const float* x, const float* w, int64_t n, int64_t in, int64_t out) {
  check_dims(n, in, out);
  if (n == 0) return;
  parallel_for(num_tiles(out, kForwardTile), [&](int64_t t0, int64_t t1) {
    HWY_DYNAMIC_DISPATCH(DenseForwardTiles)(y, x, w, n, in, out, kForwardTile, t0, t1);
  });
}

void linear_f16_forward(float* y, const float* x, const uint16_t* w, int64_t n, int64_t in,
                        int64_t out) {
  check_dims(n, in, out);
  if (n == 0) return;
  parallel_for(num_tiles(out, kForwardTile), [&](int64_t t0, int64_t t1) {
    std::vector<float> scratch;  // a single row needs none
    if (n > 1) scratch.resize(static_cast<size_t>(std::min(kForwardTile, out) * in));
    const auto tiles = HWY_DYNAMIC_DISPATCH(DenseForwardF16Tiles);
    tiles(y, x, w, n, in, out, kForwardTile, t0, t1, scratch.data());
  });
}

void linear_backward_input(float* dx, const float* dy, const float* w, int64_t n, int64_t in,
                           int64_t out) {
  check_dims(n, in, out);
  for_grad_tiles(n, in, [&](int64_t r0, int64_t r1, int64_t c0, int64_t c1, GradScratch& s) {
    // dx[r0:r1, c0:c1] = Σ_o dy[r, o] · w[o, c0:c1]
    outer_in_passes(dx + r0 * in + c0, in, false, dy + r0 * out, out, 1, r1 - r0, w + c0, in, out,
                    c1 - c0, s);
  });
}

void linear_f16_backward_input(float* dx, const float* dy, const uint16_t* w, int64_t n, int64_t in,
                               int64_t out) {
  check_dims(n, in, out);
  if (n == 0) return;
  const int64_t row_tiles = num_tiles(n, kGradRows);
  parallel_for(row_tiles * num_tiles(in, kGradCols), [&](int64_t begin, int64_t end) {
    std::vector<float> wide(static_cast<size_t>(kGradSteps * kGradCols));  // [steps, cols]
    for (int64_t t = begin; t < end; ++t) {
      const int64_t r0 = t % row_tiles * kGradRows, c0 = t / row_tiles * kGradCols;
      const int64_t rows = std::min(n, r0 + kGradRows) - r0;
      const int64_t cols = std::min(in, c0 + kGradCols) - c0;
      int64_t o0 = 0;
      do {  // passes over kGradSteps weight rows, widened once per pass
        const int64_t o1 = std::min(out, o0 + kGradSteps);
        for (int64_t o = o0; o < o1; ++o) {
          widen_f16(wide.data() + (o - o0) * cols, w + o * in + c0, cols);
        }
        dense_outer(dx + r0 * in + c0, in, o0 > 0, dy + r0 * out + o0, out, 1, rows, wide.data(),
                    cols, o1 - o0, cols);
        o0 = o1;
      } while (o0 < out);
    }
  });
}

void linear_backward_weight(float* dw, const float* dy, const float* x, int64_t n, int64_t in,
                            int64_t out) {
  check_dims(n, in, out);
  if (n == 0) return;
  for_grad_tiles(out, in, [&](int64_t o0, int64_t o1, int64_t c0, int64_t c1, GradScratch& s) {
    // dw[o0:o1, c0:c1] += Σ_i dy[i, o] · x[i, c0:c1]
    outer_in_passes(dw + o0 * in + c0, in, true, dy + o0, 1, out, o1 - o0, x + c0, in, n, c1 - c0,
                    s);
  });
}

// --- OpenBLAS ------------------------------------------------------------------

namespace {

int blas_int(int64_t v) {
  TERN_CHECK(v >= 0 && v <= INT_MAX, "dimension ", v, " does not fit OpenBLAS's int");
  return static_cast<int>(v);
}

// tern's pool does the threading: OpenBLAS stays single-threaded except inside
// sgemm_openblas_threaded.
void init_openblas() {
  static std::once_flag once;
  std::call_once(once, [] { openblas_set_num_threads(1); });
}

// y[rows, cols] (row stride ldy) = x[rows, k] · w[cols, k]ᵀ.
void sgemm_nt(float* y, int64_t ldy, const float* x, int64_t rows, const float* w, int64_t k,
              int64_t cols) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, blas_int(rows), blas_int(cols), blas_int(k),
              1.0f, x, blas_int(k), w, blas_int(k), 0.0f, y, blas_int(ldy));
}

constexpr int64_t kOpenBlasTile = 128;  // output features per sgemm call

}  // namespace

std::string blas_core_name() {
  init_openblas();
  const char* name = openblas_get_corename();
  return name != nullptr ? name : "";
}

void openblas_linear_forward(float* y, const float* x, const float* w, int64_t n, int64_t in,
                             int64_t out) {
  check_dims(n, in, out);
  if (n == 0 || out == 0) return;
  init_openblas();
  parallel_for(num_tiles(out, kOpenBlasTile), [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t o0 = t * kOpenBlasTile;
      sgemm_nt(y + o0, out, x, n, w + o0 * in, in, std::min(kOpenBlasTile, out - o0));
    }
  });
}

void sgemm_openblas_threaded(float* y, const float* x, const float* w, int64_t n, int64_t in,
                             int64_t out, int threads) {
  TERN_CHECK(threads >= 1, "threads=", threads);
  check_dims(n, in, out);
  if (n == 0 || out == 0) return;
  init_openblas();
  openblas_set_num_threads(threads);
  sgemm_nt(y, out, x, n, w, in, out);
  openblas_set_num_threads(1);
}

}  // namespace tern::cpu
#endif  // HWY_ONCE
