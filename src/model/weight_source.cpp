#include "model/weight_source.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/rng.h"

namespace tern {

Result<ref::TernaryMatrix> WeightSource::read_ternary(std::string_view name, int64_t rows,
                                                      int64_t cols) {
  const int64_t shape[2] = {rows, cols};
  std::vector<float> weights(static_cast<size_t>(rows * cols));
  TERN_RETURN_IF_ERROR(read(name, shape, weights));
  ref::TernaryMatrix packed;
  ref::quantize_weights_absmean(&packed, weights.data(), rows, cols);
  return packed;
}

void ternary_latents(const ref::TernaryMatrix& m, std::span<float> out) {
  TERN_CHECK(static_cast<int64_t>(out.size()) == m.rows * m.cols);
  std::vector<int8_t> row(static_cast<size_t>(m.cols));
  int64_t nonzero = 0;
  for (int64_t r = 0; r < m.rows; ++r) {
    m.unpack_row(r, row.data());
    for (int64_t c = 0; c < m.cols; ++c) {
      out[static_cast<size_t>(r * m.cols + c)] = static_cast<float>(row[static_cast<size_t>(c)]);
      nonzero += row[static_cast<size_t>(c)] != 0;
    }
  }
  if (nonzero == 0) {
    std::fill(out.begin(), out.end(), 0.0f);
    return;
  }
  // absmean sees nonzero·m / n (the sum is exact in double); pick the float m,
  // among the neighbours of γ·n/nonzero, for which that rounds back to γ exactly.
  const auto n = static_cast<double>(out.size());
  const auto k = static_cast<double>(nonzero);
  auto gamma_of = [&](float m) { return static_cast<float>(k * static_cast<double>(m) / n); };
  float magnitude = static_cast<float>(static_cast<double>(m.scale) * n / k);
  for (int step = 0; step < 8 && gamma_of(magnitude) != m.scale; ++step) {
    magnitude = std::nextafter(magnitude, gamma_of(magnitude) < m.scale ? INFINITY : 0.0f);
  }
  for (float& v : out) v *= magnitude;
}

Status RandomInitSource::read(std::string_view name, std::span<const int64_t> shape,
                              std::span<float> out) {
  int64_t size = 1;
  for (int64_t d : shape) size *= d;
  TERN_CHECK(static_cast<int64_t>(out.size()) == size, "buffer for '", name, "' has wrong size");
  const bool is_norm = name.ends_with("norm.weight");
  if (is_norm) {
    for (float& v : out) v = 1.0f;
    return Status::Ok();
  }
  Rng rng(derive_seed(seed_, name));
  for (float& v : out) v = static_cast<float>(rng.normal() * stddev_);
  return Status::Ok();
}

}  // namespace tern
