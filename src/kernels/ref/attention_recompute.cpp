#include "kernels/ref/attention_recompute.h"

#include <cmath>
#include <vector>

#include "core/check.h"
#include "core/thread_pool.h"
#include "kernels/ref/dot.h"

namespace tern::ref {
namespace {

void check_shape(const AttentionShape& s) {
  TERN_CHECK(s.batch > 0 && s.seq > 0 && s.heads > 0 && s.kv_heads > 0 && s.head_dim > 0);
  TERN_CHECK(s.heads % s.kv_heads == 0, "heads ", s.heads, " not a multiple of kv_heads ",
             s.kv_heads);
}

// p[0..t] = softmax of query (b, t, h)'s scaled scores against kv head g,
// computed exactly as attention_forward does.
template <typename T>
void probability_row(T* p, const T* q_row, const T* k, int64_t b, int64_t g, int64_t t,
                     const AttentionShape& s, T scale) {
  const int64_t d = s.head_dim;
  T max_score = -INFINITY;
  for (int64_t j = 0; j <= t; ++j) {
    p[j] = dot(q_row, k + ((b * s.seq + j) * s.kv_heads + g) * d, d) * scale;
    if (p[j] > max_score) max_score = p[j];
  }
  T sum = T(0);
  for (int64_t j = 0; j <= t; ++j) {
    p[j] = std::exp(p[j] - max_score);
    sum += p[j];
  }
  const T inv_sum = T(1) / sum;
  for (int64_t j = 0; j <= t; ++j) p[j] *= inv_sum;
}

template <typename T>
T score_scale(int64_t head_dim) {
  return static_cast<T>(1.0 / std::sqrt(static_cast<double>(head_dim)));
}

}  // namespace

template <typename T>
void attention_forward_nocache(T* out, const T* q, const T* k, const T* v,
                               const AttentionShape& s) {
  check_shape(s);
  const int64_t group = s.heads / s.kv_heads;
  const int64_t d = s.head_dim;
  const T scale = score_scale<T>(d);
  parallel_for(s.batch * s.heads, [&](int64_t begin, int64_t end) {
    std::vector<T> p(static_cast<size_t>(s.seq));  // [seq] one query's probabilities
    for (int64_t bh = begin; bh < end; ++bh) {
      const int64_t b = bh / s.heads;
      const int64_t h = bh % s.heads;
      const int64_t g = h / group;
      for (int64_t t = 0; t < s.seq; ++t) {
        probability_row(p.data(), q + ((b * s.seq + t) * s.heads + h) * d, k, b, g, t, s, scale);
        T* o = out + ((b * s.seq + t) * s.heads + h) * d;
        for (int64_t e = 0; e < d; ++e) o[e] = T(0);
        for (int64_t j = 0; j <= t; ++j) {
          const T* v_row = v + ((b * s.seq + j) * s.kv_heads + g) * d;
          for (int64_t e = 0; e < d; ++e) o[e] += p[static_cast<size_t>(j)] * v_row[e];
        }
      }
    }
  });
}

template <typename T>
void attention_backward_recompute(T* dq, T* dk, T* dv, const T* dout, const T* q, const T* k,
                                  const T* v, const AttentionShape& s) {
  check_shape(s);
  const int64_t group = s.heads / s.kv_heads;
  const int64_t d = s.head_dim;
  const T scale = score_scale<T>(d);
  parallel_for(s.batch * s.kv_heads, [&](int64_t begin, int64_t end) {
    std::vector<T> p(static_cast<size_t>(s.seq));       // [seq] probabilities of one query
    std::vector<T> dscore(static_cast<size_t>(s.seq));  // [seq] gradient of one score row
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
          probability_row(p.data(), q_row, k, b, g, t, s, scale);
          // dP = dout·vᵀ, then the softmax Jacobian: dS = P ⊙ (dP − Σ P·dP).
          T weighted = T(0);
          for (int64_t j = 0; j <= t; ++j) {
            const T* v_row = v + ((b * s.seq + j) * s.kv_heads + g) * d;
            dscore[static_cast<size_t>(j)] = dot(do_row, v_row, d);
            weighted += p[static_cast<size_t>(j)] * dscore[static_cast<size_t>(j)];
          }
          T* dq_row = dq + ((b * s.seq + t) * s.heads + h) * d;
          for (int64_t e = 0; e < d; ++e) dq_row[e] = T(0);
          for (int64_t j = 0; j <= t; ++j) {
            const T pj = p[static_cast<size_t>(j)];
            const T ds = pj * (dscore[static_cast<size_t>(j)] - weighted) * scale;
            const T* k_row = k + ((b * s.seq + j) * s.kv_heads + g) * d;
            T* dk_row = dk + ((b * s.seq + j) * s.kv_heads + g) * d;
            T* dv_row = dv + ((b * s.seq + j) * s.kv_heads + g) * d;
            for (int64_t e = 0; e < d; ++e) {
              dq_row[e] += ds * k_row[e];
              dk_row[e] += ds * q_row[e];
              dv_row[e] += pj * do_row[e];
            }
          }
        }
      }
    }
  });
}

#define TERN_INSTANTIATE(T)                                                               \
  template void attention_forward_nocache<T>(T*, const T*, const T*, const T*,            \
                                             const AttentionShape&);                      \
  template void attention_backward_recompute<T>(T*, T*, T*, const T*, const T*, const T*, \
                                                const T*, const AttentionShape&);
TERN_INSTANTIATE(float)
TERN_INSTANTIATE(double)
#undef TERN_INSTANTIATE

}  // namespace tern::ref
