#include "kernels/ref/cross_entropy.h"

#include <vector>

#include "core/check.h"
#include "core/thread_pool.h"
#include "kernels/ref/dot.h"
#include "kernels/ref/exp.h"

namespace tern::ref {
namespace {

template <typename T>
T row_max(const T* row, int64_t vocab) {
  T m = row[0];
  for (int64_t j = 1; j < vocab; ++j) m = row[j] > m ? row[j] : m;
  return m;
}

}  // namespace

void check_cross_entropy_label(int32_t label, int64_t vocab) {
  TERN_CHECK(label < vocab, "label ", label, " outside vocab ", vocab);
}

CrossEntropyTotals fold_row_losses(const std::vector<double>& row_loss, const int32_t* labels,
                                   int64_t n) {
  CrossEntropyTotals totals;
  for (int64_t i = 0; i < n; ++i) {
    if (labels[i] < 0) continue;
    totals.loss_sum += row_loss[static_cast<size_t>(i)];
    ++totals.count;
  }
  return totals;
}

template <typename T>
CrossEntropyTotals cross_entropy_forward(const T* logits, const int32_t* labels, int64_t n,
                                         int64_t vocab) {
  std::vector<double> row_loss(static_cast<size_t>(n), 0.0);
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      if (labels[i] < 0) continue;
      check_cross_entropy_label(labels[i], vocab);
      const T* row = logits + i * vocab;
      const T m = row_max(row, vocab);
      // ref::sum's order without storing the exponentials: element j to lane j mod 8.
      T lanes[8] = {};
      for (int64_t j = 0; j < vocab; ++j) lanes[j % 8] += kernel_exp(row[j] - m);
      const T total = fold_lanes(lanes);
      row_loss[static_cast<size_t>(i)] = row_loss_from_exp_sum(total, m, row[labels[i]]);
    }
  });
  return fold_row_losses(row_loss, labels, n);
}

template <typename T>
void cross_entropy_backward(T* dlogits, const T* logits, const int32_t* labels, int64_t n,
                            int64_t vocab, T scale) {
  parallel_for(n, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      T* drow = dlogits + i * vocab;
      if (labels[i] < 0) {
        for (int64_t j = 0; j < vocab; ++j) drow[j] = T(0);
        continue;
      }
      check_cross_entropy_label(labels[i], vocab);
      const T* row = logits + i * vocab;
      const T m = row_max(row, vocab);
      for (int64_t j = 0; j < vocab; ++j) drow[j] = kernel_exp(row[j] - m);
      const T inv_sum = scale / sum(drow, vocab);
      for (int64_t j = 0; j < vocab; ++j) drow[j] *= inv_sum;
      drow[labels[i]] -= scale;
    }
  });
}

#define TERN_INSTANTIATE(T)                                                               \
  template CrossEntropyTotals cross_entropy_forward<T>(const T*, const int32_t*, int64_t, \
                                                       int64_t);                          \
  template void cross_entropy_backward<T>(T*, const T*, const int32_t*, int64_t, int64_t, T);
TERN_INSTANTIATE(float)
TERN_INSTANTIATE(double)
#undef TERN_INSTANTIATE

}  // namespace tern::ref
