// Cross-entropy over sparse labels with an ignore mask, scalar reference.
//
// logits [n, vocab]; labels [n] hold a class id, or a negative value (−1) to
// ignore the row. No one-hot matrix is ever built. Labels must already be
// validated (< vocab): an out-of-range label is a bug and hits CHECK.
// Per row: the max, e^(logit − max) by kernel_exp (kernels/ref/exp.h), their sum
// in ref::sum's order (kernels/ref/dot.h); the loss takes portable_log of the
// sum (core/portable_math.h), so reported losses have the same bits everywhere.
// Threads: rows split over the pool; the loss sum is folded in row order.
#pragma once

#include <cstdint>
#include <vector>

#include "core/portable_math.h"

namespace tern::ref {

struct CrossEntropyTotals {
  double loss_sum = 0.0;  // Σ −log softmax(logits)[label] over counted rows
  int64_t count = 0;      // rows with a label ≥ 0
};

// Shared with kernels/cpu/cross_entropy.h: CHECKs label < vocab, and folds the
// per-row losses of the rows with a label ≥ 0 in row order.
void check_cross_entropy_label(int32_t label, int64_t vocab);
CrossEntropyTotals fold_row_losses(const std::vector<double>& row_loss, const int32_t* labels,
                                   int64_t n);
// −log softmax(row)[label] from the row's max m and exp_sum = Σ e^(logit − m):
// log(exp_sum) rounded to T, + m − label_logit in T, widened to double.
template <typename T>
double row_loss_from_exp_sum(T exp_sum, T m, T label_logit) {
  return static_cast<double>(static_cast<T>(portable_log(static_cast<double>(exp_sum))) + m -
                             label_logit);
}

template <typename T>
CrossEntropyTotals cross_entropy_forward(const T* logits, const int32_t* labels, int64_t n,
                                         int64_t vocab);

// dlogits[n, vocab] = scale · (softmax(logits) − onehot(label)); zero on ignored
// rows. dlogits may alias logits (the gradient then replaces the logits).
template <typename T>
void cross_entropy_backward(T* dlogits, const T* logits, const int32_t* labels, int64_t n,
                            int64_t vocab, T scale);

}  // namespace tern::ref
