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

#include "core/streamed_memory.h"

namespace tern::ref {

inline constexpr float kWeightScaleEps = 1e-5f;
inline constexpr float kActivationAbsmaxEps = 1e-5f;

// Packed ternary matrix [rows, cols], 2 bits per weight in tern's SIMD layout.
//
// A row is cut into groups of 128 columns, each stored in 32 bytes: column c
// lives in byte 32·(c/128) + c%32 at bits 2·((c%128)/32), as the code q+1 ∈
// {0, 1, 2} (3 never occurs). One 32-byte load and four shift-and-mask steps
// give 4 × 32 consecutive columns, which is what the SIMD kernels want. Rows are
// padded to whole groups with code 1 (q = 0), so padding never contributes.
// This is byte for byte the `qs` field of ggml's TQ2_0 blocks (256 columns = two
// groups), so a row whose length is a multiple of 256 converts to TQ2_0 by
// copying bytes and adding the fp16 scale to each block.
//
// transposed, when built (build_transposed), holds Wᵀ [cols, rows] in the same
// layout; backward kernels use it to run dX = dY·W as a forward product.
struct TernaryMatrix {
  static constexpr int64_t kGroupCols = 128;
  static constexpr int64_t kGroupBytes = 32;
  static constexpr uint8_t kZeroByte = 0x55;  // four codes of q = 0

  int64_t rows = 0;
  int64_t cols = 0;
  float scale = 0.0f;  // gamma: W̃ = q · scale
  // Streamed memory (huge pages where available): decoding reads every byte
  // from DRAM once per token.
  StreamedBytes packed;      // rows · row_bytes()
  StreamedBytes transposed;  // empty, or cols · transposed_row_bytes()

  static int64_t bytes_per_row(int64_t cols) {
    return (cols + kGroupCols - 1) / kGroupCols * kGroupBytes;
  }
  int64_t row_bytes() const { return bytes_per_row(cols); }
  int64_t transposed_row_bytes() const { return bytes_per_row(rows); }
  // Position of column c inside its row: byte offset and bit shift.
  static int64_t byte_of(int64_t col) { return col / kGroupCols * kGroupBytes + col % 32; }
  static int shift_of(int64_t col) { return static_cast<int>(2 * ((col % kGroupCols) / 32)); }

  // Sets the shape and fills every code with q = 0 (drops any transpose).
  void reset(int64_t rows, int64_t cols, float scale);
  int8_t code(int64_t row, int64_t col) const;
  void set_code(int64_t row, int64_t col, int q);  // q ∈ {−1, 0, 1} (CHECKed)
  // Writes the codes of one row as int8 into out[cols].
  void unpack_row(int64_t row, int8_t* out) const;
  // Fills `transposed` from `packed`; call again after the codes change.
  void build_transposed();
  bool has_transposed() const { return !transposed.empty(); }
  // Bytes held, including capacity a shrunk vector has not returned.
  size_t byte_size() const { return packed.capacity() + transposed.capacity(); }
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

// dx[n, in] = dy[n, out] · W̃ (overwrites), decoding one packed row at a time: each
// element sums dy·q in o order, then one multiply by gamma.
void bitlinear_backward_input(float* dx, const float* dy, const TernaryMatrix& w, int64_t n);

// The input gradient with dY quantized like an activation (absmax per row, as in
// SwitchBack, Wortsman et al. 2023): dx[n, in] = (Σ_o dy_codes·q) · (gamma / dy_scale),
// exact in integers, so every SIMD target gives the same bits.
void bitlinear_backward_input_int8(float* dx, const int8_t* dy_codes, const float* dy_scale,
                                   const TernaryMatrix& w, int64_t n);

}  // namespace tern::ref
