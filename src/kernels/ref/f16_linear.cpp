#include "kernels/ref/f16_linear.h"

#include <bit>
#include <vector>

#include "core/check.h"
#include "core/thread_pool.h"
#include "kernels/ref/dot.h"

namespace tern::ref {

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  uint32_t mantissa = h & 0x3ffu;
  uint32_t bits = 0;
  if (exponent == 0x1fu) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf / NaN
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112u) << 23) | (mantissa << 13);  // rebias 15 → 127
  } else if (mantissa == 0) {
    bits = sign;  // ±0
  } else {
    // Subnormal m·2^-24: shift the leading one into the implicit bit.
    uint32_t e = 113;  // exponent of 2^-14 in binary32, minus the shifts below
    while ((mantissa & 0x400u) == 0) {
      mantissa <<= 1;
      --e;
    }
    bits = sign | (e << 23) | ((mantissa & 0x3ffu) << 13);
  }
  return std::bit_cast<float>(bits);
}

namespace {

void widen_row(float* dst, const uint16_t* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f16_to_f32(src[i]);
}

}  // namespace

void linear_f16_forward(float* y, const float* x, const uint16_t* w, int64_t n, int64_t in,
                        int64_t out) {
  parallel_for(out, [&](int64_t o_begin, int64_t o_end) {
    std::vector<float> w_row(static_cast<size_t>(in));  // [in] one widened weight row
    for (int64_t o = o_begin; o < o_end; ++o) {
      widen_row(w_row.data(), w + o * in, in);
      for (int64_t i = 0; i < n; ++i) y[i * out + o] = dot(x + i * in, w_row.data(), in);
    }
  });
}

void linear_f16_backward_input(float* dx, const float* dy, const uint16_t* w, int64_t n, int64_t in,
                               int64_t out) {
  // Same per-element order as linear_backward_input (o ascending), but each
  // weight row is widened once per chunk of rows rather than once per row.
  parallel_for(n, [&](int64_t i_begin, int64_t i_end) {
    std::vector<float> w_row(static_cast<size_t>(in));  // [in]
    for (int64_t i = i_begin; i < i_end; ++i) {
      for (int64_t k = 0; k < in; ++k) dx[i * in + k] = 0.0f;
    }
    for (int64_t o = 0; o < out; ++o) {
      widen_row(w_row.data(), w + o * in, in);
      for (int64_t i = i_begin; i < i_end; ++i) {
        const float g = dy[i * out + o];
        float* dx_row = dx + i * in;
        for (int64_t k = 0; k < in; ++k) dx_row[k] += g * w_row[static_cast<size_t>(k)];
      }
    }
  });
}

void embedding_f16_forward(float* out, const uint16_t* table, const int32_t* tokens, int64_t n,
                           int64_t vocab, int64_t dim) {
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int32_t token = tokens[i];
      TERN_CHECK(token >= 0 && token < vocab, "token ", token, " outside vocab ", vocab);
      widen_row(out + i * dim, table + static_cast<int64_t>(token) * dim, dim);
    }
  });
}

}  // namespace tern::ref
