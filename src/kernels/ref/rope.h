// Rotary position embedding (RoPE), scalar reference (fp32 and fp64).
//
// Rotates pairs of each head vector by angle pos · theta^(−2i/head_dim).
// Two pairings exist in the wild: `neox` pairs (i, i + head_dim/2) (HF BitNet,
// llama.cpp's bitnet), `interleaved` pairs (2i, 2i + 1) (llama.cpp's llama).
// Angles, cos and sin are computed in double, then rounded to T, so every
// implementation that follows this recipe gets the same tables.
// Threads: rows split over the default pool.
#pragma once

#include <cstdint>
#include <vector>

namespace tern::ref {

enum class RopeStyle { kNeox, kInterleaved };

template <typename T>
struct RopeTable {
  int64_t seq = 0;
  int64_t half_dim = 0;  // head_dim / 2
  std::vector<T> cos;    // [seq, half_dim]
  std::vector<T> sin;    // [seq, half_dim]
};

template <typename T>
RopeTable<T> make_rope_table(int64_t seq, int64_t head_dim, double theta);

// x [batch, seq, heads, head_dim], rotated in place; position = index in seq.
template <typename T>
void rope_forward(T* x, const RopeTable<T>& table, RopeStyle style, int64_t batch, int64_t seq,
                  int64_t heads, int64_t head_dim);

// dx in place: applies the inverse (transposed) rotation to the gradient.
template <typename T>
void rope_backward(T* dx, const RopeTable<T>& table, RopeStyle style, int64_t batch, int64_t seq,
                   int64_t heads, int64_t head_dim);

}  // namespace tern::ref
