// Blocked causal attention with Highway dispatch; the order of every sum is
// documented in attention.h. This file is compiled once per SIMD target.
#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <initializer_list>

#include "core/check.h"
#include "core/thread_pool.h"
#include "kernels/ref/dot.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/attention.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
// Must come after foreach_target.h.
#include <hwy/aligned_allocator.h>
#include <hwy/highway.h>

#include "kernels/cpu/softmax-inl.h"

HWY_BEFORE_NAMESPACE();
namespace tern::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Vectors of kLanes floats: 8 on AVX2 and AVX-512 (a 256-bit tag, so the
// 8-lane dot order fits one register), 4 on 128-bit targets, 1 on HWY_SCALAR.
#if HWY_TARGET == HWY_SCALAR
using DF = hn::ScalableTag<float>;
#elif HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
using DF = hn::FixedTag<float, 8>;
#else
using DF = hn::FixedTag<float, 4>;
#endif
using VF = hn::Vec<DF>;
constexpr int64_t kLanes = static_cast<int64_t>(hn::MaxLanes(DF()));

constexpr int64_t kQueryBlock = 32;  // queries per block (even)
constexpr int64_t kKeyBlock = 64;    // keys per block (multiple of 4)

inline int64_t round_up(int64_t n, int64_t m) {
  return (n + m - 1) / m * m;
}

// ------------------------------------------------------------------ dot tiles

#if HWY_TARGET != HWY_SCALAR
// Lane c of the result = ((x0+x1)+(x2+x3)) of vector c's lanes, per 128-bit block.
HWY_INLINE VF fold4(VF a, VF b, VF c, VF e) {
  const DF d;
  const hn::Repartition<uint64_t, DF> du;
  const VF t0 = hn::InterleaveLower(d, a, b);  // a0 b0 a1 b1
  const VF t1 = hn::InterleaveUpper(d, a, b);  // a2 b2 a3 b3
  const VF t2 = hn::InterleaveLower(d, c, e);  // c0 e0 c1 e1
  const VF t3 = hn::InterleaveUpper(d, c, e);  // c2 e2 c3 e3
  const VF c0 = hn::BitCast(d, hn::InterleaveLower(du, hn::BitCast(du, t0), hn::BitCast(du, t2)));
  const VF c1 = hn::BitCast(d, hn::InterleaveUpper(du, hn::BitCast(du, t0), hn::BitCast(du, t2)));
  const VF c2 = hn::BitCast(d, hn::InterleaveLower(du, hn::BitCast(du, t1), hn::BitCast(du, t3)));
  const VF c3 = hn::BitCast(d, hn::InterleaveUpper(du, hn::BitCast(du, t1), hn::BitCast(du, t3)));
  return hn::Add(hn::Add(c0, c1), hn::Add(c2, c3));
}

// Accumulates lanes off + 8i (+ kLanes - 1) of q_r · k_c over i for rows r < R
// and the 4 keys k + c·k_stride, and folds each dot's lanes with fold4.
template <int R>
HWY_INLINE void dot_pass(const float* HWY_RESTRICT q0, const float* HWY_RESTRICT q1,
                         const float* HWY_RESTRICT k, int64_t k_stride, int64_t dpad, int64_t off,
                         VF& f0, VF& f1) {
  const DF d;
  VF a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  VF b0 = hn::Zero(d), b1 = hn::Zero(d), b2 = hn::Zero(d), b3 = hn::Zero(d);
  for (int64_t i = off; i < dpad; i += 8) {
    const VF k0 = hn::Load(d, k + i);
    const VF k1 = hn::Load(d, k + k_stride + i);
    const VF k2 = hn::Load(d, k + 2 * k_stride + i);
    const VF k3 = hn::Load(d, k + 3 * k_stride + i);
    const VF x = hn::Load(d, q0 + i);
    a0 = hn::Add(a0, hn::Mul(x, k0));
    a1 = hn::Add(a1, hn::Mul(x, k1));
    a2 = hn::Add(a2, hn::Mul(x, k2));
    a3 = hn::Add(a3, hn::Mul(x, k3));
    if constexpr (R == 2) {
      const VF y = hn::Load(d, q1 + i);
      b0 = hn::Add(b0, hn::Mul(y, k0));
      b1 = hn::Add(b1, hn::Mul(y, k1));
      b2 = hn::Add(b2, hn::Mul(y, k2));
      b3 = hn::Add(b3, hn::Mul(y, k3));
    }
  }
  f0 = fold4(a0, a1, a2, a3);
  if constexpr (R == 2) f1 = fold4(b0, b1, b2, b3);
}
#endif

// s_r[c] = ref::dot(q_r, k + c·k_stride, dpad) · scale for the R rows q0 (,
// q1) and 4 consecutive keys. Rows are dpad floats, zero beyond head_dim.
template <int R>
HWY_INLINE void dot_tile(const float* q0, const float* q1, const float* k, int64_t k_stride,
                         int64_t dpad, float scale, float* s0, float* s1) {
#if HWY_TARGET == HWY_SCALAR
  for (int64_t c = 0; c < 4; ++c) {
    s0[c] = ref::dot(q0, k + c * k_stride, dpad) * scale;
    if constexpr (R == 2) s1[c] = ref::dot(q1, k + c * k_stride, dpad) * scale;
  }
#else
  const hn::FixedTag<float, 4> d4;
  const auto vscale = hn::Set(d4, scale);
  VF f0, f1;
  dot_pass<R>(q0, q1, k, k_stride, dpad, 0, f0, f1);
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  // Lanes 0-3 and 4-7 of the 8-lane order are the two 128-bit blocks.
  hn::StoreU(hn::Mul(hn::Add(hn::LowerHalf(d4, f0), hn::UpperHalf(d4, f0)), vscale), d4, s0);
  if constexpr (R == 2) {
    hn::StoreU(hn::Mul(hn::Add(hn::LowerHalf(d4, f1), hn::UpperHalf(d4, f1)), vscale), d4, s1);
  }
#else
  // Lanes 4-7 of the 8-lane order come from a second pass.
  VF g0, g1;
  dot_pass<R>(q0, q1, k, k_stride, dpad, 4, g0, g1);
  hn::StoreU(hn::Mul(hn::Add(f0, g0), vscale), d4, s0);
  if constexpr (R == 2) hn::StoreU(hn::Mul(hn::Add(f1, g1), vscale), d4, s1);
#endif
#endif
}

// Rows of keys (or values) as the kernels read them: row j at data + j·stride,
// dpad floats each, zero beyond head_dim, vector-aligned. Either packed into
// scratch (stride dpad, rows = round_up(seq, 4)) or read in place from the
// caller's tensor, which holds only `rows` of them: key tiles that would run
// past the end are copied into `tail` (4 rows of dpad, zero-padded) instead.
struct KeyRows {
  const float* data;
  int64_t stride;
  int64_t rows;
  float* tail;
};

// Start of the 4 key rows j .. j + 3 for a dot tile, and their row stride.
inline const float* key_tile(const KeyRows& k, int64_t j, int64_t dpad, int64_t* stride) {
  if (j + 4 <= k.rows) {
    *stride = k.stride;
    return k.data + j * k.stride;
  }
  TERN_CHECK(k.tail != nullptr, "key tile at ", j, " past ", k.rows, " rows without a tail");
  std::fill(k.tail, k.tail + 4 * dpad, 0.0f);
  for (int64_t r = j; r < k.rows; ++r) {
    std::memcpy(k.tail + (r - j) * dpad, k.data + r * k.stride,
                static_cast<size_t>(dpad) * sizeof(float));
  }
  *stride = dpad;
  return k.tail;
}

// A block's query rows: row r is the query at position t0 + r·row_step, so
// row_step 1 is consecutive queries of one head and row_step 0 the heads of a
// GQA group at one position (a decoder step).
inline int64_t last_position(int64_t t0, int64_t nq, int64_t row_step) {
  return t0 + (nq - 1) * row_step;
}

// s[r·s_stride + j] = scale · q_r·k_j for the nq packed query rows q[r·dpad]
// (position t0 + r·row_step) and every key j up to that position, in key
// blocks so a block of keys stays in cache across the rows. Entries right of
// the diagonal up to the next multiple of 4 are written with junk; s rows must
// hold round_up(seq, 4) floats.
inline void score_block(float* s, int64_t s_stride, const float* q, const KeyRows& k, int64_t dpad,
                        int64_t t0, int64_t nq, int64_t row_step, float scale) {
  for (int64_t jb = 0; jb <= last_position(t0, nq, row_step); jb += kKeyBlock) {
    for (int64_t r = 0; r < nq; r += 2) {
      const bool two = r + 1 < nq;
      const int64_t t_last = t0 + (r + (two ? 1 : 0)) * row_step;
      const int64_t jend = std::min(jb + kKeyBlock, round_up(t_last + 1, 4));
      const float* q0 = q + r * dpad;
      float* s0 = s + r * s_stride;
      for (int64_t j = jb; j < jend; j += 4) {
        int64_t stride = 0;
        const float* tile = key_tile(k, j, dpad, &stride);
        if (two) {
          dot_tile<2>(q0, q0 + dpad, tile, stride, dpad, scale, s0 + j, s0 + s_stride + j);
        } else {
          dot_tile<1>(q0, nullptr, tile, stride, dpad, scale, s0 + j, nullptr);
        }
      }
    }
  }
}

// ------------------------------------------------------------ row kernels

// s[0, n) *= c.
inline void scale_row(float* s, int64_t n, float c) {
  const DF d;
  const VF vc = hn::Set(d, c);
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) hn::StoreU(hn::Mul(hn::LoadU(d, s + j), vc), d, s + j);
  for (; j < n; ++j) s[j] *= c;
}

// In place: s[0, n) = softmax(s[0, n)), as the reference's (softmax-inl.h).
inline void softmax_row(float* s, int64_t n) {
  const float sum = ExpRowSum<true>(s, s, n, RowMax(s, n));
  scale_row(s, n, 1.0f / sum);
}

// Probability rows of the nq query rows (positions as in score_block) into s
// (row stride s_stride).
inline void probability_block(float* s, int64_t s_stride, const float* q, const KeyRows& k,
                              int64_t dpad, int64_t t0, int64_t nq, int64_t row_step, float scale) {
  score_block(s, s_stride, q, k, dpad, t0, nq, row_step, scale);
  for (int64_t r = 0; r < nq; ++r) softmax_row(s + r * s_stride, t0 + r * row_step + 1);
}

// w[r] = Σ_{j <= t0 + r} p[r·stride + j] · x[r·stride + j] for r < nq, each a
// plain sum in key order as the reference's; four rows run as independent
// chains so the dependent adds overlap.
inline void row_dots(float* w, const float* p, const float* x, int64_t stride, int64_t t0,
                     int64_t nq) {
  int64_t r = 0;
  for (; r + 4 <= nq; r += 4) {
    const int64_t n = t0 + r + 1;  // keys of row r; rows r + i have n + i
    const float* p0 = p + r * stride;
    const float* x0 = x + r * stride;
    const float* p1 = p0 + stride;
    const float* x1 = x0 + stride;
    const float* p2 = p1 + stride;
    const float* x2 = x1 + stride;
    const float* p3 = p2 + stride;
    const float* x3 = x2 + stride;
    float w0 = 0.0f, w1 = 0.0f, w2 = 0.0f, w3 = 0.0f;
    for (int64_t j = 0; j < n; ++j) {
      w0 += p0[j] * x0[j];
      w1 += p1[j] * x1[j];
      w2 += p2[j] * x2[j];
      w3 += p3[j] * x3[j];
    }
    w1 += p1[n] * x1[n];
    w2 += p2[n] * x2[n];
    w3 += p3[n] * x3[n];
    w2 += p2[n + 1] * x2[n + 1];
    w3 += p3[n + 1] * x3[n + 1];
    w3 += p3[n + 2] * x3[n + 2];
    w[r] = w0;
    w[r + 1] = w1;
    w[r + 2] = w2;
    w[r + 3] = w3;
  }
  for (; r < nq; ++r) {
    float acc = 0.0f;
    for (int64_t j = 0; j <= t0 + r; ++j) acc += p[r * stride + j] * x[r * stride + j];
    w[r] = acc;
  }
}

// ds[j] = (p[j] · (ds[j] − w)) · scale for j < n: the softmax Jacobian applied to dP.
inline void softmax_backward_row(float* ds, const float* p, int64_t n, float w, float scale) {
  const DF d;
  const VF vw = hn::Set(d, w);
  const VF vs = hn::Set(d, scale);
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    const VF x = hn::Mul(hn::LoadU(d, p + j), hn::Sub(hn::LoadU(d, ds + j), vw));
    hn::StoreU(hn::Mul(x, vs), d, ds + j);
  }
  for (; j < n; ++j) ds[j] = p[j] * (ds[j] - w) * scale;
}

// --------------------------------------------------- weighted row sums
//
// The loads and stores of the accumulators are written out in both functions.
// Moved into shared load/store helpers (the same instructions on every SIMD
// target), GCC 12 -O3 compiled the SCALAR target's weighted_cols_block into a
// load past the end of its rows, and AttentionSimdTest segfaulted there.

// o_r[0, NV·kLanes) = (init ? 0 : o_r) + Σ c_r[j] · rows[j·stride + ·] over
// j in [j0, jend_r), ascending, multiply then add. jend1 >= jend0.
template <int NV, bool kTwo>
HWY_INLINE void accumulate_rows(float* HWY_RESTRICT o0, float* HWY_RESTRICT o1, bool init,
                                const float* c0, const float* c1, const float* rows, int64_t stride,
                                int64_t j0, int64_t jend0, int64_t jend1) {
  const DF d;
  VF a0 = hn::Zero(d), a1 = hn::Zero(d), a2 = hn::Zero(d), a3 = hn::Zero(d);
  VF b0 = hn::Zero(d), b1 = hn::Zero(d), b2 = hn::Zero(d), b3 = hn::Zero(d);
  if (!init) {
    a0 = hn::Load(d, o0);
    if constexpr (NV > 1) a1 = hn::Load(d, o0 + kLanes);
    if constexpr (NV > 2) a2 = hn::Load(d, o0 + 2 * kLanes);
    if constexpr (NV > 3) a3 = hn::Load(d, o0 + 3 * kLanes);
    if constexpr (kTwo) {
      b0 = hn::Load(d, o1);
      if constexpr (NV > 1) b1 = hn::Load(d, o1 + kLanes);
      if constexpr (NV > 2) b2 = hn::Load(d, o1 + 2 * kLanes);
      if constexpr (NV > 3) b3 = hn::Load(d, o1 + 3 * kLanes);
    }
  }
  int64_t j = j0;
  for (; j < jend0; ++j) {
    const float* row = rows + j * stride;
    const VF p = hn::Set(d, c0[j]);
    const VF x0 = hn::Load(d, row);
    a0 = hn::Add(a0, hn::Mul(p, x0));
    VF x1 = x0, x2 = x0, x3 = x0;
    if constexpr (NV > 1) {
      x1 = hn::Load(d, row + kLanes);
      a1 = hn::Add(a1, hn::Mul(p, x1));
    }
    if constexpr (NV > 2) {
      x2 = hn::Load(d, row + 2 * kLanes);
      a2 = hn::Add(a2, hn::Mul(p, x2));
    }
    if constexpr (NV > 3) {
      x3 = hn::Load(d, row + 3 * kLanes);
      a3 = hn::Add(a3, hn::Mul(p, x3));
    }
    if constexpr (kTwo) {
      const VF pp = hn::Set(d, c1[j]);
      b0 = hn::Add(b0, hn::Mul(pp, x0));
      if constexpr (NV > 1) b1 = hn::Add(b1, hn::Mul(pp, x1));
      if constexpr (NV > 2) b2 = hn::Add(b2, hn::Mul(pp, x2));
      if constexpr (NV > 3) b3 = hn::Add(b3, hn::Mul(pp, x3));
    }
  }
  if constexpr (kTwo) {
    for (; j < jend1; ++j) {
      const float* row = rows + j * stride;
      const VF pp = hn::Set(d, c1[j]);
      b0 = hn::Add(b0, hn::Mul(pp, hn::Load(d, row)));
      if constexpr (NV > 1) b1 = hn::Add(b1, hn::Mul(pp, hn::Load(d, row + kLanes)));
      if constexpr (NV > 2) b2 = hn::Add(b2, hn::Mul(pp, hn::Load(d, row + 2 * kLanes)));
      if constexpr (NV > 3) b3 = hn::Add(b3, hn::Mul(pp, hn::Load(d, row + 3 * kLanes)));
    }
  }
  hn::Store(a0, d, o0);
  if constexpr (NV > 1) hn::Store(a1, d, o0 + kLanes);
  if constexpr (NV > 2) hn::Store(a2, d, o0 + 2 * kLanes);
  if constexpr (NV > 3) hn::Store(a3, d, o0 + 3 * kLanes);
  if constexpr (kTwo) {
    hn::Store(b0, d, o1);
    if constexpr (NV > 1) hn::Store(b1, d, o1 + kLanes);
    if constexpr (NV > 2) hn::Store(b2, d, o1 + 2 * kLanes);
    if constexpr (NV > 3) hn::Store(b3, d, o1 + 3 * kLanes);
  }
}

// The transpose of accumulate_rows, for key gradients: o0 += Σ c[t·c_stride] ·
// rows[t·stride + ·] over t in [t0, tend) and o1 += Σ c[t·c_stride + 1] · rows[…]
// over t in [t1, tend), t ascending. t1 >= t0.
template <int NV, bool kTwo>
HWY_INLINE void accumulate_cols(float* HWY_RESTRICT o0, float* HWY_RESTRICT o1, const float* c,
                                int64_t c_stride, const float* rows, int64_t stride, int64_t t0,
                                int64_t t1, int64_t tend) {
  const DF d;
  VF a0 = hn::Load(d, o0), a1 = a0, a2 = a0, a3 = a0;
  if constexpr (NV > 1) a1 = hn::Load(d, o0 + kLanes);
  if constexpr (NV > 2) a2 = hn::Load(d, o0 + 2 * kLanes);
  if constexpr (NV > 3) a3 = hn::Load(d, o0 + 3 * kLanes);
  VF b0 = a0, b1 = a0, b2 = a0, b3 = a0;
  if constexpr (kTwo) {
    b0 = hn::Load(d, o1);
    if constexpr (NV > 1) b1 = hn::Load(d, o1 + kLanes);
    if constexpr (NV > 2) b2 = hn::Load(d, o1 + 2 * kLanes);
    if constexpr (NV > 3) b3 = hn::Load(d, o1 + 3 * kLanes);
  }
  int64_t t = t0;
  const int64_t first_end = kTwo ? t1 : tend;
  for (; t < first_end; ++t) {
    const float* row = rows + t * stride;
    const VF p = hn::Set(d, c[t * c_stride]);
    a0 = hn::Add(a0, hn::Mul(p, hn::Load(d, row)));
    if constexpr (NV > 1) a1 = hn::Add(a1, hn::Mul(p, hn::Load(d, row + kLanes)));
    if constexpr (NV > 2) a2 = hn::Add(a2, hn::Mul(p, hn::Load(d, row + 2 * kLanes)));
    if constexpr (NV > 3) a3 = hn::Add(a3, hn::Mul(p, hn::Load(d, row + 3 * kLanes)));
  }
  if constexpr (kTwo) {
    for (; t < tend; ++t) {
      const float* row = rows + t * stride;
      const VF p = hn::Set(d, c[t * c_stride]);
      const VF pp = hn::Set(d, c[t * c_stride + 1]);
      const VF x0 = hn::Load(d, row);
      a0 = hn::Add(a0, hn::Mul(p, x0));
      b0 = hn::Add(b0, hn::Mul(pp, x0));
      if constexpr (NV > 1) {
        const VF x1 = hn::Load(d, row + kLanes);
        a1 = hn::Add(a1, hn::Mul(p, x1));
        b1 = hn::Add(b1, hn::Mul(pp, x1));
      }
      if constexpr (NV > 2) {
        const VF x2 = hn::Load(d, row + 2 * kLanes);
        a2 = hn::Add(a2, hn::Mul(p, x2));
        b2 = hn::Add(b2, hn::Mul(pp, x2));
      }
      if constexpr (NV > 3) {
        const VF x3 = hn::Load(d, row + 3 * kLanes);
        a3 = hn::Add(a3, hn::Mul(p, x3));
        b3 = hn::Add(b3, hn::Mul(pp, x3));
      }
    }
  }
  hn::Store(a0, d, o0);
  if constexpr (NV > 1) hn::Store(a1, d, o0 + kLanes);
  if constexpr (NV > 2) hn::Store(a2, d, o0 + 2 * kLanes);
  if constexpr (NV > 3) hn::Store(a3, d, o0 + 3 * kLanes);
  if constexpr (kTwo) {
    hn::Store(b0, d, o1);
    if constexpr (NV > 1) hn::Store(b1, d, o1 + kLanes);
    if constexpr (NV > 2) hn::Store(b2, d, o1 + 2 * kLanes);
    if constexpr (NV > 3) hn::Store(b3, d, o1 + 3 * kLanes);
  }
}

// Calls f.template operator()<NV>(column) over [0, dpad) in chunks of up to
// 4 vectors (dpad is a multiple of 8, so of kLanes).
template <class F>
HWY_INLINE void for_column_chunks(int64_t dpad, const F& f) {
  constexpr int64_t kChunk = 4 * kLanes;
  int64_t c = 0;
  for (; c + kChunk <= dpad; c += kChunk) f.template operator()<4>(c);
  switch ((dpad - c) / kLanes) {
    case 1:
      f.template operator()<1>(c);
      break;
    case 2:
      f.template operator()<2>(c);
      break;
    case 3:
      f.template operator()<3>(c);
      break;
    default:
      break;
  }
}

// o[r·dpad + ·] = Σ_{j <= t_r} p[r·p_stride + j] · rows[j·row_stride + ·] for
// the nq query rows of a block at positions t_r = t0 + r·row_step, j
// ascending, in key blocks (rows stays in cache). Reads rows j <= the last
// position only.
inline void weighted_rows_block(float* o, const float* p, int64_t p_stride, const float* rows,
                                int64_t row_stride, int64_t dpad, int64_t t0, int64_t nq,
                                int64_t row_step) {
  for (int64_t jb = 0; jb <= last_position(t0, nq, row_step); jb += kKeyBlock) {
    for (int64_t r = 0; r < nq; r += 2) {
      const int64_t t = t0 + r * row_step;
      const bool two = r + 1 < nq;
      const int64_t jend0 = std::min(jb + kKeyBlock, t + 1);
      const int64_t jend1 = two ? std::min(jb + kKeyBlock, t + row_step + 1) : jend0;
      if (jend1 <= jb) continue;
      const float* p0 = p + r * p_stride;
      float* o0 = o + r * dpad;
      for_column_chunks(dpad, [&]<int NV>(int64_t c) {
        if (two) {
          accumulate_rows<NV, true>(o0 + c, o0 + dpad + c, jb == 0, p0, p0 + p_stride, rows + c,
                                    row_stride, jb, jend0, jend1);
        } else {
          accumulate_rows<NV, false>(o0 + c, nullptr, jb == 0, p0, nullptr, rows + c, row_stride,
                                     jb, jend0, jend1);
        }
      });
    }
  }
}

// acc[j·dpad + ·] += Σ_{t0 + r >= j} c[r·c_stride + j] · rows[r·dpad + ·] for
// every key j < t0 + nq, over the nq queries of a block, r ascending.
inline void weighted_cols_block(float* acc, const float* c, int64_t c_stride, const float* rows,
                                int64_t dpad, int64_t t0, int64_t nq) {
  const int64_t nk = t0 + nq;
  for (int64_t j = 0; j < nk; j += 2) {
    const bool two = j + 1 < nk;
    const int64_t r0 = std::max<int64_t>(j - t0, 0);
    const int64_t r1 = std::max<int64_t>(j + 1 - t0, 0);
    float* a0 = acc + j * dpad;
    for_column_chunks(dpad, [&]<int NV>(int64_t col) {
      if (two) {
        accumulate_cols<NV, true>(a0 + col, a0 + dpad + col, c + j, c_stride, rows + col, dpad, r0,
                                  r1, nq);
      } else {
        accumulate_cols<NV, false>(a0 + col, nullptr, c + j, c_stride, rows + col, dpad, r0, r0,
                                   nq);
      }
    });
  }
}

// dst[r·dpad + e] = src[r·src_stride + e] for e < d, r < rows, and zero for
// d <= e < dpad; further rows untouched.
inline void pack_rows(float* dst, int64_t dpad, const float* src, int64_t src_stride, int64_t rows,
                      int64_t d) {
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(dst + r * dpad, src + r * src_stride, static_cast<size_t>(d) * sizeof(float));
    std::fill(dst + r * dpad + d, dst + (r + 1) * dpad, 0.0f);
  }
}

inline void unpack_rows(float* dst, int64_t dst_stride, const float* src, int64_t dpad,
                        int64_t rows, int64_t d) {
  for (int64_t r = 0; r < rows; ++r) {
    std::memcpy(dst + r * dst_stride, src + r * dpad, static_cast<size_t>(d) * sizeof(float));
  }
}

// Scratch of the calling thread, kept from call to call and carved into
// vector-aligned buffers. Fresh buffers per call cost page faults, and glibc
// trims a worker thread's arena with madvise, a TLB shootdown across cores per
// call: together about a tenth of a decode step (BENCHMARKS.md). It grows to
// the largest call's need and stays until the thread ends.
class Scratch {
 public:
  // Room for buffers of the given float counts; contents undefined.
  explicit Scratch(std::initializer_list<int64_t> sizes) {
    size_t total = 0;
    for (int64_t n : sizes) total += padded(n);
    thread_local hwy::AlignedFreeUniquePtr<float[]> storage;
    thread_local size_t capacity = 0;
    if (total > capacity) {
      storage = hwy::AllocateAligned<float>(total);
      TERN_CHECK(storage != nullptr, "out of memory allocating ", total, " floats of scratch");
      capacity = total;
    }
    next_ = storage.get();
    end_ = next_ + total;
  }
  // The next buffer, in the constructor's order.
  float* take(int64_t n) {
    float* p = next_;
    next_ += padded(n);
    TERN_CHECK(next_ <= end_, "attention scratch: took more than the constructor reserved");
    return p;
  }
  float* take_zeroed(int64_t n) {
    float* p = take(n);
    std::fill(p, p + n, 0.0f);
    return p;
  }

 private:
  static size_t padded(int64_t n) {
    return static_cast<size_t>(round_up(std::max<int64_t>(n, 1), 16));
  }
  float* next_ = nullptr;
  float* end_ = nullptr;
};

// Whether rows at p, p + stride, … can be read in place as KeyRows: dpad = d
// and every row vector-aligned.
inline bool in_place_rows(const float* p, int64_t stride, int64_t d, int64_t dpad) {
  constexpr auto kAlign = static_cast<uintptr_t>(kLanes * sizeof(float));
  return d == dpad && stride % kLanes == 0 && reinterpret_cast<uintptr_t>(p) % kAlign == 0;
}

// Row stride of the [block, ·] score scratch: room for round_up(seq, 4) floats
// plus one cache line, so walking a column (key gradients) does not hit the
// same few L1 sets when seq is a power of two.
inline int64_t score_stride(int64_t seq) {
  return round_up(seq, 4) + 16;
}

inline float score_scale(int64_t head_dim) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

// --------------------------------------------------------------- entry points

// Forward over (batch, head) pairs for the queries at positions [first_query,
// seq): q and out hold those rows only, k and v every position. probs may be
// null (nocache), and must be when first_query > 0.
void AttentionForward(float* out, float* probs, const float* q, const float* k, const float* v,
                      const ref::AttentionShape& s, int64_t first_query) {
  ref::check_attention_shape(s);
  TERN_CHECK(first_query >= 0 && first_query < s.seq && (probs == nullptr || first_query == 0),
             "first_query=", first_query, " seq=", s.seq);
  const int64_t queries = s.seq - first_query;
  const int64_t group = s.heads / s.kv_heads;
  const int64_t d = s.head_dim;
  const int64_t dpad = round_up(d, 8);
  const int64_t seq_pad = round_up(s.seq, 4);
  const int64_t s_stride = score_stride(s.seq);
  const int64_t q_stride = s.heads * d;
  const int64_t kv_stride = s.kv_heads * d;
  const float scale = score_scale(d);
  // Keys and values are packed per kv head unless they can be read where they
  // are (head_dim a multiple of 8, aligned): a decoder step reads its cache in
  // place instead of copying all of it.
  const bool in_place =
      in_place_rows(k, kv_stride, d, dpad) && in_place_rows(v, kv_stride, d, dpad);
  // In place, k's scratch is only the tail tile and v needs none.
  const int64_t k_scratch = in_place ? 4 * dpad : seq_pad * dpad;
  const int64_t v_scratch = in_place ? 0 : seq_pad * dpad;
  // One query per head (a decoder step): the heads of a GQA group run as the
  // rows of one block against the group's keys and values, which are then read
  // once per group instead of once per head. Each row's arithmetic is the same
  // as alone, so the bits do not change.
  const bool heads_as_rows = queries == 1 && group > 1 && probs == nullptr;
  parallel_for(s.batch * (heads_as_rows ? s.kv_heads : s.heads), [&](int64_t begin, int64_t end) {
    Scratch scratch(
        {k_scratch, v_scratch, kQueryBlock * dpad, kQueryBlock * dpad, kQueryBlock * s_stride});
    float* kp = scratch.take(k_scratch);           // packed k of one kv head, or the key tail tile
    float* vp = scratch.take(v_scratch);           // packed v of one kv head
    float* qp = scratch.take(kQueryBlock * dpad);  // [block, dpad] packed queries
    float* op = scratch.take(kQueryBlock * dpad);  // [block, dpad] outputs
    float* sp = scratch.take(kQueryBlock * s_stride);  // [block, s_stride] probability rows
    KeyRows keys{kp, dpad, seq_pad, nullptr};
    const float* values = vp;
    int64_t values_stride = dpad;
    int64_t bound = -1;  // b · kv_heads + g in keys, values
    auto bind_kv = [&](int64_t b, int64_t g) {
      if (b * s.kv_heads + g == bound) return;
      bound = b * s.kv_heads + g;
      const int64_t off = b * s.seq * kv_stride + g * d;
      if (in_place) {
        keys = {k + off, kv_stride, s.seq, kp};
        values = v + off;
        values_stride = kv_stride;
      } else {
        // Rows past seq are read by the last key tile: zero, not stale.
        pack_rows(kp, dpad, k + off, kv_stride, s.seq, d);
        std::fill(kp + s.seq * dpad, kp + seq_pad * dpad, 0.0f);
        pack_rows(vp, dpad, v + off, kv_stride, s.seq, d);
      }
    };
    for (int64_t item = begin; item < end; ++item) {
      if (heads_as_rows) {
        const int64_t b = item / s.kv_heads;
        const int64_t g = item % s.kv_heads;
        bind_kv(b, g);
        for (int64_t h0 = g * group; h0 < (g + 1) * group; h0 += kQueryBlock) {
          const int64_t nh = std::min(kQueryBlock, (g + 1) * group - h0);
          const int64_t q_off = b * q_stride + h0 * d;  // the heads' rows are adjacent
          pack_rows(qp, dpad, q + q_off, d, nh, d);
          probability_block(sp, s_stride, qp, keys, dpad, first_query, nh, 0, scale);
          weighted_rows_block(op, sp, s_stride, values, values_stride, dpad, first_query, nh, 0);
          unpack_rows(out + q_off, d, op, dpad, nh, d);
        }
        continue;
      }
      const int64_t b = item / s.heads;
      const int64_t h = item % s.heads;
      bind_kv(b, h / group);
      for (int64_t t0 = first_query; t0 < s.seq; t0 += kQueryBlock) {
        const int64_t nq = std::min(kQueryBlock, s.seq - t0);
        const int64_t q_off = (b * queries + t0 - first_query) * q_stride + h * d;
        pack_rows(qp, dpad, q + q_off, q_stride, nq, d);
        probability_block(sp, s_stride, qp, keys, dpad, t0, nq, 1, scale);
        if (probs != nullptr) {
          for (int64_t r = 0; r < nq; ++r) {
            const int64_t t = t0 + r;
            float* dst = probs + (item * s.seq + t) * s.seq;
            std::memcpy(dst, sp + r * s_stride, static_cast<size_t>(t + 1) * sizeof(float));
            std::fill(dst + t + 1, dst + s.seq, 0.0f);
          }
        }
        weighted_rows_block(op, sp, s_stride, values, values_stride, dpad, t0, nq, 1);
        unpack_rows(out + q_off, q_stride, op, dpad, nq, d);
      }
    }
  });
}

// Backward over (batch, kv head) pairs; probability rows from probs, or
// recomputed with the forward's code when probs is null.
void AttentionBackward(float* dq, float* dk, float* dv, const float* dout, const float* probs,
                       const float* q, const float* k, const float* v,
                       const ref::AttentionShape& s) {
  ref::check_attention_shape(s);
  const int64_t group = s.heads / s.kv_heads;
  const int64_t d = s.head_dim;
  const int64_t dpad = round_up(d, 8);
  const int64_t seq_pad = round_up(s.seq, 4);
  const int64_t s_stride = score_stride(s.seq);
  const int64_t q_stride = s.heads * d;
  const int64_t kv_stride = s.kv_heads * d;
  const float scale = score_scale(d);
  parallel_for(s.batch * s.kv_heads, [&](int64_t begin, int64_t end) {
    const int64_t rows = seq_pad * dpad, block = kQueryBlock * dpad;
    const int64_t scores = kQueryBlock * s_stride;
    Scratch scratch({rows, rows, rows, rows, block, block, block, scores, scores});
    float* kp = scratch.take_zeroed(rows);     // [seq_pad, dpad] packed k
    float* vp = scratch.take_zeroed(rows);     // [seq_pad, dpad] packed v
    float* dkp = scratch.take(rows);           // [seq_pad, dpad] dk accumulators
    float* dvp = scratch.take(rows);           // [seq_pad, dpad] dv accumulators
    float* qp = scratch.take_zeroed(block);    // [block, dpad] packed queries
    float* dop = scratch.take_zeroed(block);   // [block, dpad] packed dout rows
    float* dqp = scratch.take_zeroed(block);   // [block, dpad] dq rows
    float* sp = scratch.take_zeroed(scores);   // [block, s_stride] P
    float* dsp = scratch.take_zeroed(scores);  // [block, s_stride] dP, then dS
    const KeyRows keys{kp, dpad, seq_pad, nullptr};
    const KeyRows values{vp, dpad, seq_pad, nullptr};
    float weighted[kQueryBlock];  // Σ_j P·dP per row of the block
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / s.kv_heads;
      const int64_t g = bg % s.kv_heads;
      const int64_t kv_off = b * s.seq * kv_stride + g * d;
      pack_rows(kp, dpad, k + kv_off, kv_stride, s.seq, d);
      pack_rows(vp, dpad, v + kv_off, kv_stride, s.seq, d);
      std::fill(dkp, dkp + rows, 0.0f);
      std::fill(dvp, dvp + rows, 0.0f);
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        for (int64_t t0 = 0; t0 < s.seq; t0 += kQueryBlock) {
          const int64_t nq = std::min(kQueryBlock, s.seq - t0);
          const int64_t q_off = (b * s.seq + t0) * q_stride + h * d;
          pack_rows(qp, dpad, q + q_off, q_stride, nq, d);
          pack_rows(dop, dpad, dout + q_off, q_stride, nq, d);
          // Probability rows of the block: copied from probs (into the padded
          // stride) or recomputed with the forward's code.
          if (probs != nullptr) {
            for (int64_t r = 0; r < nq; ++r) {
              const float* src = probs + ((b * s.heads + h) * s.seq + t0 + r) * s.seq;
              std::memcpy(sp + r * s_stride, src, static_cast<size_t>(t0 + r + 1) * sizeof(float));
            }
          } else {
            probability_block(sp, s_stride, qp, keys, dpad, t0, nq, 1, scale);
          }
          const float* p = sp;
          // dP = dout·vᵀ, then dS = P ⊙ (dP − Σ P·dP) · scale, row by row.
          score_block(dsp, s_stride, dop, values, dpad, t0, nq, 1, 1.0f);
          row_dots(weighted, p, dsp, s_stride, t0, nq);
          for (int64_t r = 0; r < nq; ++r) {
            softmax_backward_row(dsp + r * s_stride, p + r * s_stride, t0 + r + 1, weighted[r],
                                 scale);
          }
          weighted_rows_block(dqp, dsp, s_stride, kp, dpad, dpad, t0, nq, 1);
          unpack_rows(dq + q_off, q_stride, dqp, dpad, nq, d);
          weighted_cols_block(dkp, dsp, s_stride, qp, dpad, t0, nq);
          weighted_cols_block(dvp, p, s_stride, dop, dpad, t0, nq);
        }
      }
      unpack_rows(dk + kv_off, kv_stride, dkp, dpad, s.seq, d);
      unpack_rows(dv + kv_off, kv_stride, dvp, dpad, s.seq, d);
    }
  });
}

}  // namespace HWY_NAMESPACE
}  // namespace tern::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tern::cpu {

HWY_EXPORT(AttentionForward);
HWY_EXPORT(AttentionBackward);

void attention_forward(float* out, float* probs, const float* q, const float* k, const float* v,
                       const ref::AttentionShape& shape) {
  TERN_CHECK(probs != nullptr);
  HWY_DYNAMIC_DISPATCH(AttentionForward)(out, probs, q, k, v, shape, 0);
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* probs,
                        const float* q, const float* k, const float* v,
                        const ref::AttentionShape& shape) {
  TERN_CHECK(probs != nullptr);
  HWY_DYNAMIC_DISPATCH(AttentionBackward)(dq, dk, dv, dout, probs, q, k, v, shape);
}

void attention_forward_nocache(float* out, const float* q, const float* k, const float* v,
                               const ref::AttentionShape& shape) {
  HWY_DYNAMIC_DISPATCH(AttentionForward)(out, nullptr, q, k, v, shape, 0);
}

void attention_forward_last(float* out, const float* q, const float* k, const float* v,
                            const ref::AttentionShape& shape, int64_t first_query) {
  HWY_DYNAMIC_DISPATCH(AttentionForward)(out, nullptr, q, k, v, shape, first_query);
}

void attention_backward_recompute(float* dq, float* dk, float* dv, const float* dout,
                                  const float* q, const float* k, const float* v,
                                  const ref::AttentionShape& shape) {
  HWY_DYNAMIC_DISPATCH(AttentionBackward)(dq, dk, dv, dout, nullptr, q, k, v, shape);
}

}  // namespace tern::cpu
#endif  // HWY_ONCE
