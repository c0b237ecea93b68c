// Orthonormal DCT-II on the blocks of a tensor, as DeMo compresses momentum.
//
// A tensor is cut into a grid of blocks: vectors into 1-D blocks, matrices (and
// higher ranks, folded to [outer, last]) into 2-D separable blocks. Each block is
// transformed with the orthonormal DCT-II, C = D_r · X · D_cᵀ, where row k of D_n
// is the basis function s_k·cos(π(2i+1)k / 2n), s_0 = √(1/n), s_k = √(2/n).
//
// Block size policy, per dimension of length d with chunk c:
//   d ≤ c: one block of length d.
//   otherwise b = the largest divisor of d that is ≤ c, unless padding d with
//   zeros to a multiple of c gives fewer blocks (d/b > ⌈d/c⌉); then b = c and
//   the dimension is padded. 768 → 12 blocks of 64; 100 → 2 of 50; 176 → 3 of 64
//   over 192 (its divisor 44 would give 4); 97 (prime) → 2 of 64 over 128.
//   Padding is decode-then-crop: the forward transform sees zeros past d, the
//   inverse is computed on the whole block and only the first d entries are used.
//   Fewer blocks means fewer kept coefficients, so the policy minimizes traffic.
// So every block is b_r × b_c with b ≤ c, and nothing is silently truncated.
//
// Coefficients of block (gr, gc) are stored row-major (index k·b_c + l), blocks
// after one another in grid row-major order. All sums are fixed-order fp32
// (ref::dot's lane order for the forward transform, ascending coefficient index
// for the sparse inverse), so results are bit-identical on every machine.
// Basis matrices are computed in double and rounded once to fp32 (entries that
// are mathematically zero are exactly zero); dct_basis() is
// thread-safe. Everything else is a pure function.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace tern {

// How one tensor is cut into DCT blocks.
struct BlockGrid {
  int64_t rows = 1;        // logical rows (1 for vectors)
  int64_t cols = 0;        // logical columns (the vector length for vectors)
  int64_t block_rows = 1;  // 1 for vectors
  int64_t block_cols = 0;
  int64_t padded_rows = 1;  // multiples of the block dims, ≥ rows / cols
  int64_t padded_cols = 0;

  bool two_d() const { return block_rows > 1 || rows > 1; }
  int64_t grid_rows() const { return padded_rows / block_rows; }
  int64_t grid_cols() const { return padded_cols / block_cols; }
  int64_t num_blocks() const { return grid_rows() * grid_cols(); }
  int64_t block_size() const { return block_rows * block_cols; }
  int64_t num_elements() const { return rows * cols; }
  bool operator==(const BlockGrid&) const = default;
};

// Block length for a dimension of length dim (≥ 1) under the policy above;
// *padded receives the padded length.
int64_t dct_block_length(int64_t dim, int64_t chunk, int64_t* padded);

// Grid for a tensor shape (rank ≥ 1, every dim ≥ 1; rank > 2 folds to
// [product of leading dims, last dim]); chunk ≥ 1.
BlockGrid make_block_grid(std::span<const int64_t> shape, int64_t chunk);

// Human-readable grid, e.g. "64x44 blocks, 1x4 grid (176 cols padded to 176)".
std::string describe(const BlockGrid& grid);

// The n×n orthonormal DCT-II matrix (row k = basis function k), n ≥ 1. Cached.
std::span<const float> dct_basis(int64_t n);

// out[block_size] = block `block` of tensor[rows · cols] (row-major), zero
// where the block reaches into the padding.
void gather_block(const BlockGrid& grid, const float* tensor, int64_t block, float* out);

// coeffs[block_size] = DCT of one gathered block; scratch holds block_size floats.
void dct_forward_block(const BlockGrid& grid, const float* block, float* coeffs, float* scratch);

// Sparse inverse of one block: out[block_size] = Σ over the given coefficients
// (indices strictly ascending, values) of value · basis_k ⊗ basis_l, summed in
// index order, from zero. With more than block_rows + block_cols coefficients
// it runs the separable dense inverse instead (fixed order too: over l, then k).
void idct_sparse_block(const BlockGrid& grid, std::span<const uint32_t> indices,
                       std::span<const float> values, float* out);

// Visits the logical (unpadded) elements of block `block`: fn(tensor_index,
// block_element_index) for every element of the block that lies inside the tensor.
template <typename Fn>
void for_each_block_element(const BlockGrid& grid, int64_t block, Fn&& fn) {
  const int64_t gr = block / grid.grid_cols();
  const int64_t gc = block % grid.grid_cols();
  for (int64_t i = 0; i < grid.block_rows; ++i) {
    const int64_t r = gr * grid.block_rows + i;
    if (r >= grid.rows) break;
    for (int64_t j = 0; j < grid.block_cols; ++j) {
      const int64_t c = gc * grid.block_cols + j;
      if (c >= grid.cols) break;
      fn(r * grid.cols + c, i * grid.block_cols + j);
    }
  }
}

}  // namespace tern
