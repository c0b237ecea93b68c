#include "model/lora_merge.h"

#include "kernels/ref/f16_linear.h"

#include <map>
#include <string>
#include <vector>

namespace tern {
namespace {

// Serves the base tensors of a LoRA model, with each target linear's delta added.
class MergedSource final : public WeightSource {
 public:
  explicit MergedSource(const BitNetModel& lora) : lora_(lora) {
    for (const BitNetModel::BaseTensor& t : lora.base_tensors()) base_.emplace(t.name, t);
  }

  Status read(std::string_view name, std::span<const int64_t> shape,
              std::span<float> out) override {
    const auto it = base_.find(std::string(name));
    TERN_CHECK(it != base_.end(), "merge: base has no tensor '", name, "'");
    const BitNetModel::BaseTensor& t = it->second;
    TERN_CHECK(std::vector<int64_t>(shape.begin(), shape.end()) == t.shape,
               "merge: shape mismatch for '", name, "'");
    if (t.packed != nullptr) {
      ref::dequantize_weights(out.data(), *t.packed);
    } else if (!t.f16.empty()) {
      for (size_t i = 0; i < t.f16.size(); ++i) out[i] = ref::f16_to_f32(t.f16[i]);
    } else {
      std::copy(t.values.begin(), t.values.end(), out.begin());
    }
    const TensorInfo* a_info = lora_.layout().find(std::string(name) + ".lora_a");
    if (a_info == nullptr) return Status::Ok();
    const TensorInfo& a = *a_info;
    const TensorInfo& b = lora_.layout().get(std::string(name) + ".lora_b");
    const std::span<const float> av = lora_.params().view(a), bv = lora_.params().view(b);
    const int64_t rank = a.shape[0], in = a.shape[1], rows = b.shape[0];
    const float s = lora_.lora_config().scale();
    // ΔW[o, i] = s · Σ_r B[o, r]·A[r, i], summed in double in a fixed order.
    for (int64_t o = 0; o < rows; ++o) {
      for (int64_t i = 0; i < in; ++i) {
        double acc = 0.0;
        for (int64_t r = 0; r < rank; ++r) {
          acc += static_cast<double>(bv[static_cast<size_t>(o * rank + r)]) *
                 static_cast<double>(av[static_cast<size_t>(r * in + i)]);
        }
        out[static_cast<size_t>(o * in + i)] += static_cast<float>(s * acc);
      }
    }
    return Status::Ok();
  }

 private:
  const BitNetModel& lora_;
  std::map<std::string, BitNetModel::BaseTensor> base_;
};

}  // namespace

Result<BitNetModel> merge_lora(const BitNetModel& lora) {
  TERN_CHECK(lora.is_lora(), "merge_lora() of a model without LoRA");
  MergedSource source(lora);
  return BitNetModel::create_full(lora.config(), source);
}

}  // namespace tern
