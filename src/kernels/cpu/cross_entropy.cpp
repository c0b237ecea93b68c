// Compiled once per SIMD target; the row pieces are kernels/cpu/softmax-inl.h.
#include "kernels/cpu/cross_entropy.h"

#include <algorithm>
#include <vector>

#include "core/thread_pool.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/cross_entropy.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
// Must come after foreach_target.h.
#include <hwy/highway.h>

#include "kernels/cpu/softmax-inl.h"

HWY_BEFORE_NAMESPACE();
namespace tern::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// −log softmax(row)[label], in float as the reference, widened to double.
double RowLoss(const float* row, int64_t vocab, int32_t label) {
  const float m = RowMax(row, vocab);
  const float total = ExpRowSum<false>(nullptr, row, vocab, m);
  return ref::row_loss_from_exp_sum(total, m, row[label]);
}

// drow = scale · (softmax(row) − onehot(label)); drow may equal row.
void RowGradient(float* drow, const float* row, int64_t vocab, int32_t label, float scale) {
  const hn::ScalableTag<float> d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const float m = RowMax(row, vocab);
  const float inv_sum = scale / ExpRowSum<true>(drow, row, vocab, m);
  const auto vinv = hn::Set(d, inv_sum);
  int64_t j = 0;
  for (; j + lanes <= vocab; j += lanes) {
    hn::StoreU(hn::Mul(hn::LoadU(d, drow + j), vinv), d, drow + j);
  }
  for (; j < vocab; ++j) drow[j] *= inv_sum;
  drow[label] -= scale;
}

}  // namespace HWY_NAMESPACE
}  // namespace tern::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tern::cpu {

HWY_EXPORT(RowLoss);
HWY_EXPORT(RowGradient);

ref::CrossEntropyTotals cross_entropy_forward(const float* logits, const int32_t* labels, int64_t n,
                                              int64_t vocab) {
  std::vector<double> row_loss(static_cast<size_t>(n), 0.0);
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (labels[i] < 0) continue;
      ref::check_cross_entropy_label(labels[i], vocab);
      row_loss[static_cast<size_t>(i)] =
          HWY_DYNAMIC_DISPATCH(RowLoss)(logits + i * vocab, vocab, labels[i]);
    }
  });
  return ref::fold_row_losses(row_loss, labels, n);
}

void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* labels, int64_t n,
                            int64_t vocab, float scale) {
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* drow = dlogits + i * vocab;
      if (labels[i] < 0) {
        std::fill(drow, drow + vocab, 0.0f);
        continue;
      }
      ref::check_cross_entropy_label(labels[i], vocab);
      HWY_DYNAMIC_DISPATCH(RowGradient)(drow, logits + i * vocab, vocab, labels[i], scale);
    }
  });
}

}  // namespace tern::cpu
#endif  // HWY_ONCE
