#include "kernels/ref/rope.h"

#include "core/check.h"
#include "core/portable_math.h"
#include "core/thread_pool.h"

namespace tern::ref {

template <typename T>
void fill_rope_rows(RopeTable<T>* table, int64_t first_position, int64_t rows, int64_t head_dim,
                    double theta) {
  TERN_CHECK(head_dim % 2 == 0, "RoPE needs an even head_dim, got ", head_dim);
  TERN_CHECK(first_position >= 0 && rows >= 0, "rows ", rows, " from position ", first_position);
  table->seq = rows;
  table->half_dim = head_dim / 2;
  table->cos.resize(static_cast<size_t>(rows * table->half_dim));
  table->sin.resize(table->cos.size());
  for (int64_t i = 0; i < table->half_dim; ++i) {
    // portable_math, not libm: the tables must have the same bits on every
    // platform. theta > 1, so inv_freq ≤ 1 and |angle| < max_seq ≤ 2^24 (the
    // model config's cap), inside portable_sincos's range.
    const double inv_freq =
        portable_pow(theta, -2.0 * static_cast<double>(i) / static_cast<double>(head_dim));
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t pos = first_position + r;
      const SinCos angle = portable_sincos(static_cast<double>(pos) * inv_freq);
      table->cos[static_cast<size_t>(r * table->half_dim + i)] = static_cast<T>(angle.cos);
      table->sin[static_cast<size_t>(r * table->half_dim + i)] = static_cast<T>(angle.sin);
    }
  }
}

template <typename T>
RopeTable<T> make_rope_table(int64_t seq, int64_t head_dim, double theta) {
  RopeTable<T> table;
  fill_rope_rows(&table, 0, seq, head_dim, theta);
  return table;
}

namespace {

// sign = +1 rotates forward, −1 applies the transpose (backward).
template <typename T>
void rotate(T* x, const RopeTable<T>& table, RopeStyle style, int64_t batch, int64_t seq,
            int64_t heads, int64_t head_dim, T sign) {
  TERN_CHECK(seq <= table.seq && head_dim / 2 == table.half_dim, "RoPE table too small");
  const int64_t half = head_dim / 2;
  parallel_for(batch * seq, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t pos = row % seq;
      const T* cos_row = table.cos.data() + pos * half;
      const T* sin_row = table.sin.data() + pos * half;
      for (int64_t h = 0; h < heads; ++h) {
        T* v = x + (row * heads + h) * head_dim;
        for (int64_t i = 0; i < half; ++i) {
          const int64_t ia = style == RopeStyle::kNeox ? i : 2 * i;
          const int64_t ib = style == RopeStyle::kNeox ? i + half : 2 * i + 1;
          const T c = cos_row[i];
          const T s = sign * sin_row[i];
          const T a = v[ia];
          const T b = v[ib];
          v[ia] = a * c - b * s;
          v[ib] = a * s + b * c;
        }
      }
    }
  });
}

}  // namespace

template <typename T>
void rope_forward(T* x, const RopeTable<T>& table, RopeStyle style, int64_t batch, int64_t seq,
                  int64_t heads, int64_t head_dim) {
  rotate(x, table, style, batch, seq, heads, head_dim, T(1));
}

template <typename T>
void rope_backward(T* dx, const RopeTable<T>& table, RopeStyle style, int64_t batch, int64_t seq,
                   int64_t heads, int64_t head_dim) {
  rotate(dx, table, style, batch, seq, heads, head_dim, T(-1));
}

#define TERN_INSTANTIATE(T)                                                                     \
  template RopeTable<T> make_rope_table<T>(int64_t, int64_t, double);                           \
  template void fill_rope_rows<T>(RopeTable<T>*, int64_t, int64_t, int64_t, double);            \
  template void rope_forward<T>(T*, const RopeTable<T>&, RopeStyle, int64_t, int64_t, int64_t,  \
                                int64_t);                                                       \
  template void rope_backward<T>(T*, const RopeTable<T>&, RopeStyle, int64_t, int64_t, int64_t, \
                                 int64_t);
TERN_INSTANTIATE(float)
TERN_INSTANTIATE(double)
#undef TERN_INSTANTIATE

}  // namespace tern::ref
