#include "optim/dct.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <mutex>
#include <numbers>

#include "core/portable_math.h"

#include "core/check.h"
#include "kernels/ref/dot.h"

namespace tern {

int64_t dct_block_length(int64_t dim, int64_t chunk, int64_t* padded) {
  TERN_CHECK(dim >= 1 && chunk >= 1, "dim ", dim, " chunk ", chunk);
  int64_t block = dim;
  if (dim > chunk) {
    block = chunk;
    while (dim % block != 0) --block;
    const int64_t padded_blocks = (dim + chunk - 1) / chunk;
    if (dim / block > padded_blocks) block = chunk;
  }
  *padded = (dim + block - 1) / block * block;
  return block;
}

BlockGrid make_block_grid(std::span<const int64_t> shape, int64_t chunk) {
  TERN_CHECK(!shape.empty());
  BlockGrid g;
  int64_t outer = 1;
  for (size_t i = 0; i + 1 < shape.size(); ++i) {
    TERN_CHECK(shape[i] >= 1, "dim ", shape[i]);
    outer *= shape[i];
  }
  g.rows = outer;
  g.cols = shape.back();
  g.block_cols = dct_block_length(g.cols, chunk, &g.padded_cols);
  if (shape.size() >= 2) {
    g.block_rows = dct_block_length(g.rows, chunk, &g.padded_rows);
  } else {
    g.block_rows = 1;
    g.padded_rows = 1;
  }
  return g;
}

std::string describe(const BlockGrid& g) {
  std::string s = std::to_string(g.block_rows) + "x" + std::to_string(g.block_cols) + " blocks, " +
                  std::to_string(g.grid_rows()) + "x" + std::to_string(g.grid_cols()) + " grid";
  if (g.padded_rows != g.rows || g.padded_cols != g.cols) {
    s += " (padded " + std::to_string(g.rows) + "x" + std::to_string(g.cols) + " to " +
         std::to_string(g.padded_rows) + "x" + std::to_string(g.padded_cols) + ")";
  }
  return s;
}

std::span<const float> dct_basis(int64_t n) {
  TERN_CHECK(n >= 1, "n ", n);
  static std::mutex mutex;
  static std::map<int64_t, std::unique_ptr<std::vector<float>>> cache;
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<std::vector<float>>& entry = cache[n];
  if (!entry) {
    entry = std::make_unique<std::vector<float>>(static_cast<size_t>(n * n));
    const double dn = static_cast<double>(n);
    for (int64_t k = 0; k < n; ++k) {
      const double scale = std::sqrt((k == 0 ? 1.0 : 2.0) / dn);
      for (int64_t i = 0; i < n; ++i) {
        // cos(π·m/2n) is exactly 0 when m ≡ n (mod 2n); a computed cosine is
        // ~6e-17 there, whose sign would leak into sign(Δ) of elements built
        // only from such entries, so those are set to 0 exactly. portable_cos,
        // not libm's: every swarm member must have the same basis bits.
        const int64_t m = (2 * i + 1) * k;
        const double angle = std::numbers::pi * static_cast<double>(m) / (2.0 * dn);
        (*entry)[static_cast<size_t>(k * n + i)] =
            m % (2 * n) == n ? 0.0f : static_cast<float>(scale * portable_cos(angle));
      }
    }
  }
  return *entry;
}

void gather_block(const BlockGrid& g, const float* tensor, int64_t block, float* out) {
  std::fill(out, out + g.block_size(), 0.0f);
  for_each_block_element(g, block, [&](int64_t t, int64_t e) { out[e] = tensor[t]; });
}

void dct_forward_block(const BlockGrid& g, const float* block, float* coeffs, float* scratch) {
  const int64_t br = g.block_rows;
  const int64_t bc = g.block_cols;
  const float* d_r = dct_basis(br).data();
  const float* d_c = dct_basis(bc).data();
  // Rows: T[i][l] = Σ_j X[i][j]·D_c[l][j], stored transposed ([bc, br]) so the
  // column pass below reads contiguous memory too.
  float* t_cols = scratch;
  for (int64_t i = 0; i < br; ++i) {
    for (int64_t l = 0; l < bc; ++l)
      t_cols[l * br + i] = ref::dot(block + i * bc, d_c + l * bc, bc);
  }
  // Columns: C[k][l] = Σ_i D_r[k][i]·T[i][l].
  for (int64_t k = 0; k < br; ++k) {
    for (int64_t l = 0; l < bc; ++l)
      coeffs[k * bc + l] = ref::dot(d_r + k * br, t_cols + l * br, br);
  }
}

void idct_sparse_block(const BlockGrid& g, std::span<const uint32_t> indices,
                       std::span<const float> values, float* out) {
  TERN_CHECK(indices.size() == values.size());
  const int64_t br = g.block_rows;
  const int64_t bc = g.block_cols;
  const float* d_r = dct_basis(br).data();
  const float* d_c = dct_basis(bc).data();
  std::fill(out, out + br * bc, 0.0f);
  if (static_cast<int64_t>(indices.size()) > br + bc) {
    // Many coefficients: the separable dense inverse X = D_rᵀ·A·D_c costs
    // br·bc·(br + bc) instead of nnz·br·bc. Which path runs depends only on the
    // coefficient count, so every node takes the same one.
    std::vector<float> a(static_cast<size_t>(br * bc), 0.0f);
    for (size_t n = 0; n < indices.size(); ++n) a[indices[n]] = values[n];
    std::vector<float> rows(static_cast<size_t>(br * bc), 0.0f);  // A·D_c
    for (int64_t k = 0; k < br; ++k) {
      for (int64_t l = 0; l < bc; ++l) {
        const float v = a[k * bc + l];
        if (v == 0.0f) continue;
        for (int64_t j = 0; j < bc; ++j) rows[k * bc + j] += v * d_c[l * bc + j];
      }
    }
    for (int64_t k = 0; k < br; ++k) {
      for (int64_t i = 0; i < br; ++i) {
        const float w = d_r[k * br + i];
        for (int64_t j = 0; j < bc; ++j) out[i * bc + j] += w * rows[k * bc + j];
      }
    }
    return;
  }
  for (size_t n = 0; n < indices.size(); ++n) {
    const int64_t k = indices[n] / bc;
    const int64_t l = indices[n] % bc;
    TERN_CHECK(k < br, "coefficient ", indices[n], " outside a ", br, "x", bc, " block");
    for (int64_t i = 0; i < br; ++i) {
      const float a = values[n] * d_r[k * br + i];
      for (int64_t j = 0; j < bc; ++j) out[i * bc + j] += a * d_c[l * bc + j];
    }
  }
}

}  // namespace tern
