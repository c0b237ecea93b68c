// Quantizers and BitLinear: exact codes, packing, and the straight-through estimator.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "core/rng.h"
#include "kernels/ref/linear.h"
#include "kernels/ref/ternary.h"

namespace tern::ref {
namespace {

std::vector<float> random_floats(Rng& rng, size_t n, double scale = 1.0) {
  std::vector<float> v(n);
  for (float& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}

TEST(TernaryTest, AbsmeanCodesAndScale) {
  // mean|w| = 1.0 → codes are round-half-even(w) clamped to [−1, 1].
  const std::vector<float> w = {0.5f, -1.5f, 2.0f, -0.25f, 0.0f, 1.25f, -0.5f, 0.5f};
  TernaryMatrix m;
  quantize_weights_absmean(&m, w.data(), 2, 4);
  EXPECT_FLOAT_EQ(m.scale, 0.8125f);  // 6.5 / 8
  // w / 0.8125 = 0.615, −1.85, 2.46, −0.31, 0, 1.54, −0.615, 0.615
  const std::vector<int> expected = {1, -1, 1, 0, 0, 1, -1, 1};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(m.code(i / 4, i % 4), expected[i]) << i;
}

TEST(TernaryTest, RoundHalfToEvenLikeTorch) {
  // mean|w| = 2 → w/γ = ±0.5 exactly: ties go to the even neighbour 0.
  const std::vector<float> w = {1.0f, -1.0f, 3.0f, -3.0f};
  TernaryMatrix m;
  quantize_weights_absmean(&m, w.data(), 1, 4);
  EXPECT_EQ(m.code(0, 0), 0);
  EXPECT_EQ(m.code(0, 1), 0);
  EXPECT_EQ(m.code(0, 2), 1);  // 1.5 → 2 → clamped to 1
  EXPECT_EQ(m.code(0, 3), -1);
}

TEST(TernaryTest, ZeroWeightsUseEpsilonScale) {
  const std::vector<float> w(12, 0.0f);
  TernaryMatrix m;
  quantize_weights_absmean(&m, w.data(), 3, 4);
  EXPECT_EQ(m.scale, kWeightScaleEps);
  for (int r = 0; r < 3; ++r) {
    for (int c = 0; c < 4; ++c) EXPECT_EQ(m.code(r, c), 0);
  }
}

TEST(TernaryTest, LayoutIsTq2_0CodeBytes) {
  // ggml's TQ2_0: element e of a 256-block sits in byte 32·(e/128) + e%32 at bits
  // 2·((e%128)/32). Column 200 → byte 40, bits 4–5; column 300 (element 44 of the
  // second block) → byte 64 + 12, bits 2–3.
  const int64_t cols = 384;
  std::vector<int8_t> codes(static_cast<size_t>(cols), 0);
  codes[200] = 1;
  codes[300] = -1;
  const TernaryMatrix m = pack_ternary(codes.data(), 1, cols, 1.0f);
  ASSERT_EQ(m.row_bytes(), 96);
  for (int64_t b = 0; b < 96; ++b) {
    const uint8_t expected = b == 40 ? 0x65 : b == 64 + 12 ? 0x51 : 0x55;
    EXPECT_EQ(m.packed[static_cast<size_t>(b)], expected) << "byte " << b;
  }
}

TEST(TernaryTest, TransposedHoldsTheTranspose) {
  Rng rng(5);
  const int64_t rows = 37, cols = 150;
  std::vector<int8_t> codes(rows * cols);
  for (int8_t& c : codes) c = static_cast<int8_t>(static_cast<int>(rng.below(3)) - 1);
  TernaryMatrix m = pack_ternary(codes.data(), rows, cols, 0.25f);
  EXPECT_FALSE(m.has_transposed());
  m.build_transposed();
  ASSERT_EQ(m.transposed.size(), static_cast<size_t>(cols * 32));
  const TernaryMatrix t = [&] {
    TernaryMatrix view;
    view.reset(cols, rows, m.scale);
    view.packed = m.transposed;
    return view;
  }();
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(t.code(c, r), codes[r * cols + c]);
  }
}

TEST(TernaryTest, PackRoundTripOddColumns) {
  Rng rng(11);
  const int64_t rows = 5, cols = 13;  // one partial 128-column group per row
  std::vector<int8_t> codes(rows * cols);
  for (int8_t& c : codes) c = static_cast<int8_t>(static_cast<int>(rng.below(3)) - 1);
  const TernaryMatrix m = pack_ternary(codes.data(), rows, cols, 0.5f);
  EXPECT_EQ(m.byte_size(), static_cast<size_t>(rows * 32));
  // Padding columns hold q = 0, so SIMD kernels may read whole groups.
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = cols; c < 128; ++c) {
      const uint8_t byte = m.packed[static_cast<size_t>(r * 32 + TernaryMatrix::byte_of(c))];
      EXPECT_EQ((byte >> TernaryMatrix::shift_of(c)) & 3, 1) << r << "," << c;
    }
  }
  std::vector<int8_t> row(cols);
  for (int64_t r = 0; r < rows; ++r) {
    m.unpack_row(r, row.data());
    for (int64_t c = 0; c < cols; ++c) EXPECT_EQ(row[c], codes[r * cols + c]);
  }
  std::vector<float> w(rows * cols);
  dequantize_weights(w.data(), m);
  for (size_t i = 0; i < w.size(); ++i) EXPECT_EQ(w[i], 0.5f * codes[i]);
}

TEST(TernaryTest, AbsmaxActivationCodes) {
  const std::vector<float> x = {0.5f, -1.0f, 0.25f, 0.0f, 2.0f, 1.0f, -2.0f, 0.0f};
  std::vector<int8_t> codes(8);
  std::vector<float> scale(2);
  quantize_activations_absmax(codes.data(), scale.data(), x.data(), 2, 4);
  EXPECT_FLOAT_EQ(scale[0], 127.0f);
  EXPECT_FLOAT_EQ(scale[1], 63.5f);
  const std::vector<int> expected = {64, -127, 32, 0, 127, 64, -127, 0};  // 63.5→64 (even)
  for (int i = 0; i < 8; ++i) EXPECT_EQ(codes[i], expected[i]) << i;
}

// The STE gradient of BitLinear is the (double-gradchecked) dense gradient taken at
// the dequantized operands; this ties the two together.
TEST(TernaryTest, gradcheck_bitlinear_ste_equals_dense_on_dequantized_operands) {
  Rng rng(12);
  const int64_t n = 6, in = 37, out = 11;
  const std::vector<float> x = random_floats(rng, n * in), w = random_floats(rng, out * in, 0.1);
  TernaryMatrix wq;
  quantize_weights_absmean(&wq, w.data(), out, in);
  std::vector<int8_t> codes(n * in);
  std::vector<float> scale(n), x_tilde(n * in), w_tilde(out * in);
  quantize_activations_absmax(codes.data(), scale.data(), x.data(), n, in);
  dequantize_activations(x_tilde.data(), codes.data(), scale.data(), n, in);
  dequantize_weights(w_tilde.data(), wq);

  std::vector<float> y(n * out), y_dense(n * out);
  bitlinear_forward(y.data(), codes.data(), scale.data(), wq, n);
  linear_forward(y_dense.data(), x_tilde.data(), w_tilde.data(), n, in, out);
  for (size_t i = 0; i < y.size(); ++i)
    EXPECT_NEAR(y[i], y_dense[i], 1e-5f * (1 + std::fabs(y[i])));

  // STE: backward is the dense backward of y = x̃·W̃ᵀ.
  const std::vector<float> dy = random_floats(rng, n * out);
  std::vector<float> dx(n * in), dx_dense(n * in);
  bitlinear_backward_input(dx.data(), dy.data(), wq, n);
  linear_backward_input(dx_dense.data(), dy.data(), w_tilde.data(), n, in, out);
  for (size_t i = 0; i < dx.size(); ++i) {
    EXPECT_NEAR(dx[i], dx_dense[i], 1e-5f * (1 + std::fabs(dx[i])));
  }
}

TEST(TernaryTest, QuantizedDotProductIsExactInIntegers) {
  // A row whose float dot product would round: integer accumulation is exact.
  const int64_t in = 4096;
  std::vector<float> x(in), w(in);
  for (int64_t k = 0; k < in; ++k) {
    x[k] = (k % 2 == 0) ? 1.0f : -1.0f;
    w[k] = (k % 3 == 0) ? 1.0f : -1.0f;
  }
  TernaryMatrix wq;
  quantize_weights_absmean(&wq, w.data(), 1, in);
  std::vector<int8_t> codes(in);
  float scale = 0.0f;
  quantize_activations_absmax(codes.data(), &scale, x.data(), 1, in);
  float y = 0.0f;
  bitlinear_forward(&y, codes.data(), &scale, wq, 1);
  int64_t expected = 0;
  for (int64_t k = 0; k < in; ++k)
    expected += ((k % 2 == 0) ? 127 : -127) * ((k % 3 == 0) ? 1 : -1);
  EXPECT_FLOAT_EQ(y, static_cast<float>(expected) * (1.0f / 127.0f));
}

}  // namespace
}  // namespace tern::ref
