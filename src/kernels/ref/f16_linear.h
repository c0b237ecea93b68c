// Frozen F16 weights used in fp32 arithmetic, scalar reference.
//
// A frozen base (LoRA, inference) may keep dense linears and the token
// embedding / output head as IEEE binary16 to halve their bytes. These kernels
// widen one weight row at a time to fp32 and then do exactly what the fp32
// kernels in linear.h / embedding.h do, so each result has the same bits as the
// fp32 kernel run on the widened weights. There are no weight gradients: F16
// storage is only for weights that are not trained.
// Threads: as the fp32 kernels (forward by output feature, input gradient by
// row, embedding by token); buffers must not alias.
#pragma once

#include <cstdint>

namespace tern::ref {

// Exact binary16 → binary32 (subnormals, infinities and NaN payloads kept).
float f16_to_f32(uint16_t h);

// y[n, out] = x[n, in] · widen(w[out, in])ᵀ  (overwrites y)
void linear_f16_forward(float* y, const float* x, const uint16_t* w, int64_t n, int64_t in,
                        int64_t out);

// dx[n, in] = dy[n, out] · widen(w[out, in])  (overwrites dx)
void linear_f16_backward_input(float* dx, const float* dy, const uint16_t* w, int64_t n, int64_t in,
                               int64_t out);

// out[n, dim] = widen(table[tokens[i], :]); tokens are validated (CHECK).
void embedding_f16_forward(float* out, const uint16_t* table, const int32_t* tokens, int64_t n,
                           int64_t vocab, int64_t dim);

}  // namespace tern::ref
