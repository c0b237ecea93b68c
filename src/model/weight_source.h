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

// How a source holds a tensor. F16 tensors are exactly representable in binary16,
// so a model with a frozen base may keep them at 2 bytes per value with no loss.
enum class StoredType { kF32, kF16 };

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

  // The type `name` is held in; F32 unless a source says otherwise.
  virtual StoredType stored_type(std::string_view name) const;

  // The binary16 bits of an F16 tensor (out has the product of shape elements).
  // The default reads the fp32 tensor into a temporary and converts it, and
  // fails if a value does not round-trip; sources override it to stream.
  virtual Status read_f16(std::string_view name, std::span<const int64_t> shape,
                          std::span<uint16_t> out);
};

// fp32 latent weights for full training that start at a ternary matrix: q·γ/f
// with f the fraction of non-zero codes, so absmean quantization of the result
// gives back the same codes and γ (the plain q·γ would come back as γ·f). γ is
// hit exactly when some float magnitude rounds to it, else to within one ulp
// (near a power of two there may be none). out has rows·cols elements.
void ternary_latents(const ref::TernaryMatrix& m, std::span<float> out);

// Seeded initialization in the GPT-2/Llama style: norm weights 1, every other
// tensor N(0, stddev²). Each tensor draws from its own stream derived from
// (seed, name), so values do not depend on creation order. With f16, every
// non-norm value is rounded to binary16 and reported as StoredType::kF16 (an
// "F16 checkpoint"); read, read_ternary and read_f16 then agree on the values.
// read_ternary and read_f16 generate in row blocks (two passes over the same
// stream for the absmean scale), so no fp32 copy of a whole tensor is made.
// Values come 64 Ki at a time: Rng::normals' log/sin/cos, and the scaling,
// rounding and quantizing of each block, run on the default thread pool, so
// call from one thread at a time, like a kernel.
class RandomInitSource final : public WeightSource {
 public:
  explicit RandomInitSource(uint64_t seed, float stddev = 0.02f, bool f16 = false)
      : seed_(seed), stddev_(stddev), f16_(f16) {}
  Status read(std::string_view name, std::span<const int64_t> shape, std::span<float> out) override;
  Result<ref::TernaryMatrix> read_ternary(std::string_view name, int64_t rows,
                                          int64_t cols) override;
  StoredType stored_type(std::string_view name) const override;
  Status read_f16(std::string_view name, std::span<const int64_t> shape,
                  std::span<uint16_t> out) override;

 private:
  // The stream of values of a non-norm tensor.
  class Stream;

  uint64_t seed_;
  float stddev_;
  bool f16_;
};

}  // namespace tern
