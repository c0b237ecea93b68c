// Gated FFN activation m = act(gate) ⊙ up, scalar reference (fp32 and fp64).
//
// act is configuration, never hard-coded: ReLU² (BitNet b1.58 2B-4T) or SiLU
// (Llama, 1bitLLM). Elementwise over n values. Threads: split over the pool.
#pragma once

#include <cstdint>

namespace tern::ref {

enum class Activation { kReLU2, kSiLU };

// m[n] = act(gate[n]) * up[n]
template <typename T>
void gated_activation_forward(T* m, const T* gate, const T* up, int64_t n, Activation act);

// dgate[n], dup[n] (overwritten) from dm[n].
template <typename T>
void gated_activation_backward(T* dgate, T* dup, const T* dm, const T* gate, const T* up, int64_t n,
                               Activation act);

}  // namespace tern::ref
