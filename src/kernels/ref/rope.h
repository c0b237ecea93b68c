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

// Row r holds cos and sin of one position's angles: position r in a table from
// make_rope_table, first_position + r after fill_rope_rows.
template <typename T>
struct RopeTable {
  int64_t seq = 0;
  int64_t half_dim = 0;  // head_dim / 2
  std::vector<T> cos;    // [seq, half_dim]
  std::vector<T> sin;    // [seq, half_dim]
};

// The table of positions 0 … seq − 1.
template <typename T>
RopeTable<T> make_rope_table(int64_t seq, int64_t head_dim, double theta);

// Refills *table with the rows of positions first_position … first_position +
// rows − 1 (the same values as those rows of a table from position 0), reusing
// its storage when it is large enough. A decoder's window of the current chunk.
template <typename T>
void fill_rope_rows(RopeTable<T>* table, int64_t first_position, int64_t rows, int64_t head_dim,
                    double theta);

// x [batch, seq, heads, head_dim], rotated in place; position = index in seq.
template <typename T>
void rope_forward(T* x, const RopeTable<T>& table, RopeStyle style, int64_t batch, int64_t seq,
                  int64_t heads, int64_t head_dim);

// dx in place: applies the inverse (transposed) rotation to the gradient.
template <typename T>
void rope_backward(T* dx, const RopeTable<T>& table, RopeStyle style, int64_t batch, int64_t seq,
                   int64_t heads, int64_t head_dim);

}  // namespace tern::ref
