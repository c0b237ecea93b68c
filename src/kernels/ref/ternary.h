// BitNet b1.58 quantizers and the ternary linear layer (BitLinear), scalar reference.
//
// Weights: absmean, one scale per tensor. gamma = max(mean|W|, 1e-5) with the mean
// summed in double; codes q = clamp(round_half_even(W / gamma), −1, 1); W̃ = q·gamma.
// Activations: absmax per token (row). s = 127 / max(max|x|, 1e-5);
// codes = clamp(round_half_even(x·s), −128, 127); x̃ = codes / s.
// Training uses the straight-through estimator: gradients pass both quantizers
// unchanged, i.e. backward is that of y = x̃ · W̃ᵀ.
//
// TernaryMatrix keeps codes packed, 2 bits each, so a frozen base never exists as
// fp32. Threads: products split over the default pool; every output element is
// computed by one thread in a fixed order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tern::ref {

inline constexpr float kWeightScaleEps = 1e-5f;
inline constexpr float kActivationAbsmaxEps = 1e-5f;

// Packed ternary matrix [rows, cols]. Row r starts at byte r·row_bytes(); column c
// lives in byte c/4 at bits 2·(c%4) as the code q+1 ∈ {0, 1, 2} (3 never occurs).
struct TernaryMatrix {
  int64_t rows = 0;
  int64_t cols = 0;
  float scale = 0.0f;           // gamma: W̃ = q · scale
  std::vector<uint8_t> packed;  // rows · row_bytes()

  int64_t row_bytes() const { return (cols + 3) / 4; }
  int8_t code(int64_t row, int64_t col) const;
  // Writes the codes of one row as int8 into out[cols].
  void unpack_row(int64_t row, int8_t* out) const;
  size_t byte_size() const { return packed.size(); }
};

// Absmean quantization of w[rows, cols] into out (resized as needed).
void quantize_weights_absmean(TernaryMatrix* out, const float* w, int64_t rows, int64_t cols);

// Packs already-ternary codes[rows, cols] ∈ {−1, 0, 1} with the given scale (CHECKs codes).
TernaryMatrix pack_ternary(const int8_t* codes, int64_t rows, int64_t cols, float scale);

// w[rows, cols] = q · scale.
void dequantize_weights(float* w, const TernaryMatrix& m);

// codes[n, d], scale[n] from x[n, d].
void quantize_activations_absmax(int8_t* codes, float* scale, const float* x, int64_t n, int64_t d);

// x̃[n, d] = codes / scale.
void dequantize_activations(float* x, const int8_t* codes, const float* scale, int64_t n,
                            int64_t d);

// y[n, out] = x̃ · W̃ᵀ computed exactly in integers: (Σ codes·q) · (gamma / s).
void bitlinear_forward(float* y, const int8_t* x_codes, const float* x_scale,
                       const TernaryMatrix& w, int64_t n);

// dx[n, in] = dy[n, out] · W̃ (overwrites), decoding one packed row at a time.
void bitlinear_backward_input(float* dx, const float* dy, const TernaryMatrix& w, int64_t n);

}  // namespace tern::ref
