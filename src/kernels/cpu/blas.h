// fp32 dense products (LoRA, embeddings, the output head) with run-time SIMD
// dispatch, bit-identical to the scalar references.
//
// Same contracts as kernels/ref/linear.h (float) and kernels/ref/f16_linear.h,
// and the same bits: every element is summed in the order the reference names,
// with separate multiplies and adds (no FMA), on every SIMD target:
// - forward: ref::dot's 8 interleaved lanes folded pairwise, one 8-lane
//   accumulator per output element (one 256-bit vector, or two 128-bit ones);
// - input gradient: Σ_o dy·w in o order per element, from 0;
// - weight gradient: dw + dy·x row after row, so calls over consecutive row
//   chunks give the bits of one call over all rows.
// So the bits depend neither on the thread count nor on how many rows one call
// gets (the model runs the output head over 32-row chunks or all rows at once,
// and the KV-cache decoder runs one row at a time and is compared with the full
// forward).
//
// Why not OpenBLAS: its sgemm (0.3.21, Zen/Haswell kernels) gives an element
// different bits depending on where its row falls in the kernel's register
// blocks (12-column groups, 4/2/1 tails) and on the call's row count, so a row
// computed alone differs from the same row inside a 32- or 512-row call; fixed
// row blocks do not help (the position inside the block still matters), nor
// does putting rows on the other operand. Its sums also restart per call, which
// breaks the chunked weight gradient. OpenBLAS stays here for comparison
// (openblas_linear_forward, sgemm_openblas_threaded; `tern bench kernels`).
//
// Work is split over the default pool in tiles of output features (forward,
// weight gradient) or of input features and rows (input gradient); scratch is
// allocated once per call and thread. f16 weights are widened exactly into
// scratch one tile at a time (never per row in an inner loop), except for a
// single row of x (decoding), which uses each weight once and widens it where
// it is loaded. A single row of x also prefetches the weights ahead
// (kernels/cpu/prefetch.h). Buffers must not alias.
#pragma once

#include <cstdint>
#include <string>

namespace tern::cpu {

// y[n, out] = x[n, in] · w[out, in]ᵀ  (overwrites y), as ref::linear_forward<float>.
void linear_forward(float* y, const float* x, const float* w, int64_t n, int64_t in, int64_t out);

// dx[n, in] = dy[n, out] · w[out, in]  (overwrites dx), as ref::linear_backward_input<float>.
void linear_backward_input(float* dx, const float* dy, const float* w, int64_t n, int64_t in,
                           int64_t out);

// dw[out, in] += dy[n, out]ᵀ · x[n, in]  (accumulates, rows in order), as
// ref::linear_backward_weight<float>.
void linear_backward_weight(float* dw, const float* dy, const float* x, int64_t n, int64_t in,
                            int64_t out);

// y[n, out] = x[n, in] · widen(w[out, in])ᵀ, as ref::linear_f16_forward.
void linear_f16_forward(float* y, const float* x, const uint16_t* w, int64_t n, int64_t in,
                        int64_t out);

// dx[n, in] = dy[n, out] · widen(w[out, in]), as ref::linear_f16_backward_input.
void linear_f16_backward_input(float* dx, const float* dy, const uint16_t* w, int64_t n, int64_t in,
                               int64_t out);

// out[count] = exact binary32 values of the binary16 h[count]: the bits of
// ref::f16_to_f32, except that a signalling NaN may come back quieted.
void widen_f16(float* out, const uint16_t* h, int64_t count);

// --- OpenBLAS, for comparison (benchmarks) -----------------------------------

// OpenBLAS's name for the kernels it picked for this CPU ("Zen", "Haswell", ...).
std::string blas_core_name();

// y = x · wᵀ by cblas_sgemm, single-threaded OpenBLAS on fixed tiles of output
// features spread over the default pool: the same bits for any thread count,
// but NOT independent of the number of rows per call (see above), and not the
// reference's bits.
void openblas_linear_forward(float* y, const float* x, const float* w, int64_t n, int64_t in,
                             int64_t out);

// y = x · wᵀ as one cblas_sgemm call threaded by OpenBLAS itself over `threads`
// threads, as the library runs by default. Restores single-threaded OpenBLAS
// before returning; no other function here may run meanwhile.
void sgemm_openblas_threaded(float* y, const float* x, const float* w, int64_t n, int64_t in,
                             int64_t out, int threads);

}  // namespace tern::cpu
