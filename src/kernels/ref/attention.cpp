#include "kernels/ref/attention.h"

#include <cmath>
#include <vector>

#include "core/check.h"
#include "core/thread_pool.h"
#include "kernels/ref/dot.h"
#include "kernels/ref/exp.h"

namespace tern::ref {

void check_attention_shape(const AttentionShape& s) {
  TERN_CHECK(s.batch > 0 && s.seq > 0 && s.heads > 0 && s.kv_heads > 0 && s.head_dim > 0);
  TERN_CHECK(s.heads % s.kv_heads == 0, "heads ", s.heads, " not a multiple of kv_heads ",
             s.kv_heads);
}

namespace {

template <typename T>
T score_scale(int64_t head_dim) {
  return static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

// p[0..t] = softmax of query (b, t)'s scaled scores against kv head g. The one
// place the probabilities are computed, so cached and recomputed rows agree.
template <typename T>
void probability_row(T* p, const T* q_row, const T* k, int64_t b, int64_t g, int64_t t,
                     const AttentionShape& s, T scale) {
  const int64_t d = s.head_dim;
  T max_score = -INFINITY;
  for (int64_t j = 0; j <= t; ++j) {
    p[j] = dot(q_row, k + ((b * s.seq + j) * s.kv_heads + g) * d, d) * scale;
    if (p[j] > max_score) max_score = p[j];
  }
  for (int64_t j = 0; j <= t; ++j) p[j] = kernel_exp(p[j] - max_score);
  const T inv_sum = T(1) / sum(p, t + 1);
  for (int64_t j = 0; j <= t; ++j) p[j] *= inv_sum;
}

// Forward over (batch, head) pairs. With `probs` the rows are stored there
// (upper triangle zeroed); without, one scratch row per thread is reused.
template <typename T>
void forward_impl(T* out, T* probs, const T* q, const T* k, const T* v, const AttentionShape& s) {
  check_attention_shape(s);
  const int64_t group = s.heads / s.kv_heads;
  const int64_t d = s.head_dim;
  const T scale = score_scale<T>(d);
  parallel_for(s.batch * s.heads, [&](int64_t begin, int64_t end) {
    std::vector<T> scratch(probs == nullptr ? static_cast<size_t>(s.seq) : 0);  // [seq]
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / s.heads;
      const int64_t h = bh % s.heads;
      const int64_t g = h / group;
      for (int64_t t = 0; t < s.seq; ++t) {
        T* p = probs != nullptr ? probs + (bh * s.seq + t) * s.seq : scratch.data();
        probability_row(p, q + ((b * s.seq + t) * s.heads + h) * d, k, b, g, t, s, scale);
        if (probs != nullptr) {
          for (int64_t j = t + 1; j < s.seq; ++j) p[j] = T(0);
        }
        T* o = out + ((b * s.seq + t) * s.heads + h) * d;
        for (int64_t e = 0; e < d; ++e) o[e] = T(0);
        for (int64_t j = 0; j <= t; ++j) {
          const T* v_row = v + ((b * s.seq + j) * s.kv_heads + g) * d;
          for (int64_t e = 0; e < d; ++e) o[e] += p[j] * v_row[e];
        }
      }
    }
  });
}

// Backward over (batch, kv head) pairs; probability rows come from `probs`
// when given, else are recomputed from q and k.
template <typename T>
void backward_impl(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k,
                   const T* v, const AttentionShape& s) {
  check_attention_shape(s);
  const int64_t group = s.heads / s.kv_heads;
  const int64_t d = s.head_dim;
  const T scale = score_scale<T>(d);
  parallel_for(s.batch * s.kv_heads, [&](int64_t begin, int64_t end) {
    std::vector<T> dscore(static_cast<size_t>(s.seq));  // [seq] gradient of one score row
    std::vector<T> scratch(probs == nullptr ? static_cast<size_t>(s.seq) : 0);  // [seq]
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t b = bg / s.kv_heads;
      const int64_t g = bg % s.kv_heads;
      for (int64_t j = 0; j < s.seq; ++j) {
        T* dk_row = dk + ((b * s.seq + j) * s.kv_heads + g) * d;
        T* dv_row = dv + ((b * s.seq + j) * s.kv_heads + g) * d;
        for (int64_t e = 0; e < d; ++e) dk_row[e] = dv_row[e] = T(0);
      }
      for (int64_t h = g * group; h < (g + 1) * group; ++h) {
        for (int64_t t = 0; t < s.seq; ++t) {
          const T* do_row = dout + ((b * s.seq + t) * s.heads + h) * d;
          const T* q_row = q + ((b * s.seq + t) * s.heads + h) * d;
          const T* p = probs + ((b * s.heads + h) * s.seq + t) * s.seq;
          if (probs == nullptr) {
            probability_row(scratch.data(), q_row, k, b, g, t, s, scale);
            p = scratch.data();
          }
          // dP = dout·vᵀ, then the softmax Jacobian: dS = P ⊙ (dP − Σ P·dP).
          T weighted = T(0);
          for (int64_t j = 0; j <= t; ++j) {
            const T* v_row = v + ((b * s.seq + j) * s.kv_heads + g) * d;
            dscore[static_cast<size_t>(j)] = dot(do_row, v_row, d);
            weighted += p[j] * dscore[static_cast<size_t>(j)];
          }
          T* dq_row = dq + ((b * s.seq + t) * s.heads + h) * d;
          for (int64_t e = 0; e < d; ++e) dq_row[e] = T(0);
          for (int64_t j = 0; j <= t; ++j) {
            const T ds = p[j] * (dscore[static_cast<size_t>(j)] - weighted) * scale;
            const T* k_row = k + ((b * s.seq + j) * s.kv_heads + g) * d;
            T* dk_row = dk + ((b * s.seq + j) * s.kv_heads + g) * d;
            T* dv_row = dv + ((b * s.seq + j) * s.kv_heads + g) * d;
            for (int64_t e = 0; e < d; ++e) {
              dq_row[e] += ds * k_row[e];
              dk_row[e] += ds * q_row[e];
              dv_row[e] += p[j] * do_row[e];
            }
          }
        }
      }
    }
  });
}

}  // namespace

template <typename T>
void attention_forward(T* out, T* probs, const T* q, const T* k, const T* v,
                       const AttentionShape& s) {
  TERN_CHECK(probs != nullptr);
  forward_impl(out, probs, q, k, v, s);
}

template <typename T>
void attention_backward(T* dq, T* dk, T* dv, const T* dout, const T* probs, const T* q, const T* k,
                        const T* v, const AttentionShape& s) {
  TERN_CHECK(probs != nullptr);
  backward_impl(dq, dk, dv, dout, probs, q, k, v, s);
}

template <typename T>
void attention_forward_nocache(T* out, const T* q, const T* k, const T* v,
                               const AttentionShape& s) {
  forward_impl<T>(out, nullptr, q, k, v, s);
}

template <typename T>
void attention_backward_recompute(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                  const T* v, const AttentionShape& s) {
  backward_impl<T>(dq, dk, dv, dout, nullptr, q, k, v, s);
}

#define TERN_INSTANTIATE(T)                                                                        \
  template void attention_forward<T>(T*, T*, const T*, const T*, const T*, const AttentionShape&); \
  template void attention_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,          \
                                      const T*, const AttentionShape&);                            \
  template void attention_forward_nocache<T>(T*, const T*, const T*, const T*,                     \
                                             const AttentionShape&);                               \
  template void attention_backward_recompute<T>(T*, T*, T*, const T*, const T*, const T*,          \
                                                const T*, const AttentionShape&);
TERN_INSTANTIATE(float)
TERN_INSTANTIATE(double)
#undef TERN_INSTANTIATE

}  // namespace tern::ref
