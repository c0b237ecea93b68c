#include "model/weight_source.h"

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
