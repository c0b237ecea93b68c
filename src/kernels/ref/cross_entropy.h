// Cross-entropy over sparse labels with an ignore mask, scalar reference.
//
// logits [n, vocab]; labels [n] hold a class id, or a negative value (−1) to
// ignore the row. No one-hot matrix is ever built. Labels must already be
// validated (< vocab): an out-of-range label is a bug and hits CHECK.
// Threads: rows split over the pool; the loss sum is folded in row order.
#pragma once

#include <cstdint>

namespace tern::ref {

struct CrossEntropyTotals {
  double loss_sum = 0.0;  // Σ −log softmax(logits)[label] over counted rows
  int64_t count = 0;      // rows with a label ≥ 0
};

template <typename T>
CrossEntropyTotals cross_entropy_forward(const T* logits, const int32_t* labels, int64_t n,
                                         int64_t vocab);

// dlogits[n, vocab] = scale · (softmax(logits) − onehot(label)); zero on ignored
// rows. dlogits may alias logits (the gradient then replaces the logits).
template <typename T>
void cross_entropy_backward(T* dlogits, const T* logits, const int32_t* labels, int64_t n,
                            int64_t vocab, T scale);

}  // namespace tern::ref
