// WeightSource: where a model's initial tensors come from, one tensor at a time.
//
// The model pulls each tensor by name as it builds itself, so a frozen base can
// be packed tensor by tensor and never exists as fp32 as a whole. Sources are
// untrusted (files): missing tensors and shape mismatches return a Status.
// Implementations here: seeded random init; file formats add their own.
// Not synchronized.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "core/status.h"
#include "kernels/ref/ternary.h"

namespace tern {

class WeightSource {
 public:
  virtual ~WeightSource() = default;

  // Fills out (size = product of shape) with the fp32 values of tensor `name`.
  virtual Status read(std::string_view name, std::span<const int64_t> shape,
                      std::span<float> out) = 0;

  // The ternary (absmean-quantized) form of a [rows, cols] linear weight. The
  // default reads the fp32 tensor into a temporary and quantizes it; sources
  // that hold packed weights override it to skip fp32 entirely.
  virtual Result<ref::TernaryMatrix> read_ternary(std::string_view name, int64_t rows,
                                                  int64_t cols);
};

// fp32 latent weights for full training that start at a ternary matrix: q·γ/f
// with f the fraction of non-zero codes, so absmean quantization of the result
// gives back the same codes and γ (the plain q·γ would come back as γ·f). γ is
// hit exactly when some float magnitude rounds to it, else to within one ulp
// (near a power of two there may be none). out has rows·cols elements.
void ternary_latents(const ref::TernaryMatrix& m, std::span<float> out);

// Seeded initialization in the GPT-2/Llama style: norm weights 1, every other
// tensor N(0, stddev²). Each tensor draws from its own stream derived from
// (seed, name), so values do not depend on creation order.
class RandomInitSource final : public WeightSource {
 public:
  explicit RandomInitSource(uint64_t seed, float stddev = 0.02f) : seed_(seed), stddev_(stddev) {}
  Status read(std::string_view name, std::span<const int64_t> shape, std::span<float> out) override;

 private:
  uint64_t seed_;
  float stddev_;
};

}  // namespace tern
