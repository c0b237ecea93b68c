#include "kernels/ref/ternary.h"

#include <algorithm>
#include <cmath>

#include "core/check.h"
#include "core/thread_pool.h"

namespace tern::ref {

void TernaryMatrix::reset(int64_t new_rows, int64_t new_cols, float new_scale) {
  TERN_CHECK(new_rows >= 0 && new_cols >= 0);
  rows = new_rows;
  cols = new_cols;
  scale = new_scale;
  packed.assign(static_cast<size_t>(rows * row_bytes()), kZeroByte);
  transposed.clear();
}

int8_t TernaryMatrix::code(int64_t row, int64_t col) const {
  TERN_CHECK(row >= 0 && row < rows && col >= 0 && col < cols);
  const uint8_t byte = packed[static_cast<size_t>(row * row_bytes() + byte_of(col))];
  return static_cast<int8_t>(((byte >> shift_of(col)) & 3) - 1);
}

void TernaryMatrix::set_code(int64_t row, int64_t col, int q) {
  TERN_CHECK(row >= 0 && row < rows && col >= 0 && col < cols);
  TERN_CHECK(q >= -1 && q <= 1, "ternary code ", q, " at (", row, ",", col, ")");
  uint8_t& byte = packed[static_cast<size_t>(row * row_bytes() + byte_of(col))];
  const int shift = shift_of(col);
  byte = static_cast<uint8_t>((byte & ~(3 << shift)) | ((q + 1) << shift));
}

void TernaryMatrix::unpack_row(int64_t row, int8_t* out) const {
  const uint8_t* src = packed.data() + row * row_bytes();
  for (int64_t c = 0; c < cols; ++c) {
    out[c] = static_cast<int8_t>(((src[byte_of(c)] >> shift_of(c)) & 3) - 1);
  }
}

void TernaryMatrix::build_transposed() {
  const int64_t t_row_bytes = transposed_row_bytes();
  transposed.assign(static_cast<size_t>(cols * t_row_bytes), kZeroByte);
  // Row blocks keep the source rows being read in cache while columns scatter.
  parallel_for(
      cols,
      [&](int64_t c_begin, int64_t c_end) {
        for (int64_t r = 0; r < rows; ++r) {
          const uint8_t* src = packed.data() + r * row_bytes();
          const int64_t dst_byte = byte_of(r);
          const int dst_shift = shift_of(r);
          for (int64_t c = c_begin; c < c_end; ++c) {
            const int code = (src[byte_of(c)] >> shift_of(c)) & 3;
            uint8_t& byte = transposed[static_cast<size_t>(c * t_row_bytes + dst_byte)];
            byte = static_cast<uint8_t>((byte & ~(3 << dst_shift)) | (code << dst_shift));
          }
        }
      },
      16);
}

namespace {

void pack_codes(TernaryMatrix* m, const auto& code_at) {
  m->reset(m->rows, m->cols, m->scale);
  for (int64_t r = 0; r < m->rows; ++r) {
    for (int64_t c = 0; c < m->cols; ++c) m->set_code(r, c, code_at(r, c));
  }
}

}  // namespace

void quantize_weights_absmean(TernaryMatrix* out, const float* w, int64_t rows, int64_t cols) {
  TERN_CHECK(rows > 0 && cols > 0);
  double abs_sum = 0.0;
  const int64_t count = rows * cols;
  for (int64_t i = 0; i < count; ++i) abs_sum += std::fabs(static_cast<double>(w[i]));
  const float gamma =
      std::max(static_cast<float>(abs_sum / static_cast<double>(count)), kWeightScaleEps);
  out->rows = rows;
  out->cols = cols;
  out->scale = gamma;
  pack_codes(out, [&](int64_t r, int64_t c) {
    const float q = std::nearbyint(w[r * cols + c] / gamma);
    return static_cast<int>(std::clamp(q, -1.0f, 1.0f));
  });
}

TernaryMatrix pack_ternary(const int8_t* codes, int64_t rows, int64_t cols, float scale) {
  TernaryMatrix m;
  m.rows = rows;
  m.cols = cols;
  m.scale = scale;
  pack_codes(&m, [&](int64_t r, int64_t c) { return static_cast<int>(codes[r * cols + c]); });
  return m;
}

void dequantize_weights(float* w, const TernaryMatrix& m) {
  for (int64_t r = 0; r < m.rows; ++r) {
    for (int64_t c = 0; c < m.cols; ++c) w[r * m.cols + c] = m.code(r, c) * m.scale;
  }
}

void quantize_activations_absmax(int8_t* codes, float* scale, const float* x, int64_t n,
                                 int64_t d) {
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* row = x + i * d;
      float absmax = 0.0f;
      for (int64_t j = 0; j < d; ++j) absmax = std::max(absmax, std::fabs(row[j]));
      const float s = 127.0f / std::max(absmax, kActivationAbsmaxEps);
      scale[i] = s;
      for (int64_t j = 0; j < d; ++j) {
        const float q = std::clamp(std::nearbyint(row[j] * s), -128.0f, 127.0f);
        codes[i * d + j] = static_cast<int8_t>(q);
      }
    }
  });
}

void dequantize_activations(float* x, const int8_t* codes, const float* scale, int64_t n,
                            int64_t d) {
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      for (int64_t j = 0; j < d; ++j)
        x[i * d + j] = static_cast<float>(codes[i * d + j]) / scale[i];
    }
  });
}

void bitlinear_forward(float* y, const int8_t* x_codes, const float* x_scale,
                       const TernaryMatrix& w, int64_t n) {
  const int64_t in = w.cols;
  const int64_t out = w.rows;
  parallel_for(out, [&](int64_t o_begin, int64_t o_end) {
    std::vector<int8_t> w_row(static_cast<size_t>(in));
    for (int64_t o = o_begin; o < o_end; ++o) {
      w.unpack_row(o, w_row.data());
      for (int64_t i = 0; i < n; ++i) {
        const int8_t* x_row = x_codes + i * in;
        int32_t acc = 0;  // |acc| ≤ 128·in: exact for any in < 2^24
        for (int64_t k = 0; k < in; ++k) acc += static_cast<int32_t>(x_row[k]) * w_row[k];
        y[i * out + o] = static_cast<float>(acc) * (w.scale / x_scale[i]);
      }
    }
  });
}

void bitlinear_backward_input_int8(float* dx, const int8_t* dy_codes, const float* dy_scale,
                                   const TernaryMatrix& w, int64_t n) {
  const int64_t in = w.cols;
  const int64_t out = w.rows;
  parallel_for(n, [&](int64_t i_begin, int64_t i_end) {
    std::vector<int8_t> w_row(static_cast<size_t>(in));
    std::vector<int32_t> acc(static_cast<size_t>(in));
    for (int64_t i = i_begin; i < i_end; ++i) {
      std::fill(acc.begin(), acc.end(), 0);
      for (int64_t o = 0; o < out; ++o) {
        w.unpack_row(o, w_row.data());
        const int32_t g = dy_codes[i * out + o];
        for (int64_t k = 0; k < in; ++k) acc[static_cast<size_t>(k)] += g * w_row[k];
      }
      for (int64_t k = 0; k < in; ++k)
        dx[i * in + k] = static_cast<float>(acc[static_cast<size_t>(k)]) * (w.scale / dy_scale[i]);
    }
  });
}

void bitlinear_backward_input(float* dx, const float* dy, const TernaryMatrix& w, int64_t n) {
  const int64_t in = w.cols;
  const int64_t out = w.rows;
  parallel_for(n, [&](int64_t i_begin, int64_t i_end) {
    std::vector<int8_t> w_row(static_cast<size_t>(in));
    for (int64_t i = i_begin; i < i_end; ++i) {
      for (int64_t k = 0; k < in; ++k) dx[i * in + k] = 0.0f;
    }
    // Σ_o dy[i,o]·q[o,:] accumulated in o order, then one multiply by gamma.
    for (int64_t o = 0; o < out; ++o) {
      w.unpack_row(o, w_row.data());
      for (int64_t i = i_begin; i < i_end; ++i) {
        const float g = dy[i * out + o];
        float* dx_row = dx + i * in;
        for (int64_t k = 0; k < in; ++k) dx_row[k] += g * static_cast<float>(w_row[k]);
      }
    }
    for (int64_t i = i_begin; i < i_end; ++i) {
      for (int64_t k = 0; k < in; ++k) dx[i * in + k] *= w.scale;
    }
  });
}

}  // namespace tern::ref
