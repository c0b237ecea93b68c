#include "kernels/ref/embedding.h"

#include "core/check.h"
#include "core/thread_pool.h"

namespace tern::ref {

template <typename T>
void embedding_forward(T* out, const T* table, const int32_t* tokens, int64_t n, int64_t vocab,
                       int64_t dim) {
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int32_t token = tokens[i];
      TERN_CHECK(token >= 0 && token < vocab, "token ", token, " outside vocab ", vocab);
      const T* row = table + static_cast<int64_t>(token) * dim;
      for (int64_t j = 0; j < dim; ++j) out[i * dim + j] = row[j];
    }
  });
}

template <typename T>
void embedding_backward(T* dtable, const T* dout, const int32_t* tokens, int64_t n, int64_t vocab,
                        int64_t dim) {
  for (int64_t i = 0; i < n; ++i) {
    const int32_t token = tokens[i];
    TERN_CHECK(token >= 0 && token < vocab, "token ", token, " outside vocab ", vocab);
    T* row = dtable + static_cast<int64_t>(token) * dim;
    for (int64_t j = 0; j < dim; ++j) row[j] += dout[i * dim + j];
  }
}

#define TERN_INSTANTIATE(T)                                                                    \
  template void embedding_forward<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t); \
  template void embedding_backward<T>(T*, const T*, const int32_t*, int64_t, int64_t, int64_t);
TERN_INSTANTIATE(float)
TERN_INSTANTIATE(double)
#undef TERN_INSTANTIATE

}  // namespace tern::ref
