// SIMD cross-entropy (kernels/cpu/cross_entropy.h) against the scalar reference
// on every attainable target: same loss and gradient bits, tails and ignored
// rows included, any thread count, in place.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <thread>
#include <vector>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/ref/cross_entropy.h"

namespace tern::cpu {
namespace {

struct Batch {
  std::vector<float> logits;
  std::vector<int32_t> labels;
};

// Rows of n × vocab logits (wide enough that exp underflows to the flush for
// some entries), every fourth row ignored.
Batch make_batch(int64_t n, int64_t vocab, uint64_t seed) {
  Rng rng(seed);
  Batch b;
  b.logits.resize(static_cast<size_t>(n * vocab));
  for (float& x : b.logits) x = static_cast<float>(rng.normal() * 8.0);
  for (int64_t i = 0; i < n; ++i) {
    b.labels.push_back(i % 4 == 3 ? -1 : static_cast<int32_t>(rng.below(vocab)));
  }
  return b;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(CrossEntropySimdTest, MatchesReferenceOnEveryTarget) {
  for (const int64_t vocab : {1, 3, 7, 8, 9, 17, 100, 4099}) {
    SCOPED_TRACE(vocab);
    const int64_t n = 9;
    const Batch b = make_batch(n, vocab, 40 + static_cast<uint64_t>(vocab));
    const ref::CrossEntropyTotals want =
        ref::cross_entropy_forward(b.logits.data(), b.labels.data(), n, vocab);
    std::vector<float> want_grad(b.logits.size(), std::numeric_limits<float>::quiet_NaN());
    ref::cross_entropy_backward(want_grad.data(), b.logits.data(), b.labels.data(), n, vocab,
                                0.25f);
    for (const int64_t target : attainable_simd_targets()) {
      SCOPED_TRACE(simd_target_name(target));
      ScopedSimdTarget pin(target);
      const ref::CrossEntropyTotals got =
          cross_entropy_forward(b.logits.data(), b.labels.data(), n, vocab);
      EXPECT_EQ(got.count, want.count);
      EXPECT_EQ(std::memcmp(&got.loss_sum, &want.loss_sum, sizeof(double)), 0)
          << got.loss_sum << " vs " << want.loss_sum;
      std::vector<float> grad(b.logits.size(), std::numeric_limits<float>::quiet_NaN());
      cross_entropy_backward(grad.data(), b.logits.data(), b.labels.data(), n, vocab, 0.25f);
      EXPECT_TRUE(same_bits(grad, want_grad));
      std::vector<float> in_place = b.logits;  // the model's call: dlogits = logits
      cross_entropy_backward(in_place.data(), in_place.data(), b.labels.data(), n, vocab, 0.25f);
      EXPECT_TRUE(same_bits(in_place, want_grad));
    }
  }
}

TEST(CrossEntropySimdTest, SameBitsOnAnyThreadCount) {
  const int64_t n = 37, vocab = 513;
  const Batch b = make_batch(n, vocab, 5);
  std::vector<float> one(b.logits.size()), many(b.logits.size());
  set_num_threads(1);
  const ref::CrossEntropyTotals loss_one =
      cross_entropy_forward(b.logits.data(), b.labels.data(), n, vocab);
  cross_entropy_backward(one.data(), b.logits.data(), b.labels.data(), n, vocab, 1.0f);
  set_num_threads(3);
  const ref::CrossEntropyTotals loss_many =
      cross_entropy_forward(b.logits.data(), b.labels.data(), n, vocab);
  cross_entropy_backward(many.data(), b.logits.data(), b.labels.data(), n, vocab, 1.0f);
  set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  EXPECT_EQ(std::memcmp(&loss_one.loss_sum, &loss_many.loss_sum, sizeof(double)), 0);
  EXPECT_TRUE(same_bits(one, many));
}

// The gradient of a row sums to zero (softmax sums to one, minus the one-hot),
// and its label entry is the only negative one: checks the kernel, not just
// agreement with the reference.
TEST(CrossEntropySimdTest, GradientIsSoftmaxMinusOneHot) {
  const int64_t n = 4, vocab = 1000;
  Batch b = make_batch(n, vocab, 9);
  b.labels = {0, 999, 500, 17};
  std::vector<float> grad(b.logits.size());
  cross_entropy_backward(grad.data(), b.logits.data(), b.labels.data(), n, vocab, 1.0f);
  for (int64_t i = 0; i < n; ++i) {
    double total = 0.0;
    for (int64_t j = 0; j < vocab; ++j) {
      const float g = grad[static_cast<size_t>(i * vocab + j)];
      total += g;
      if (j == b.labels[static_cast<size_t>(i)]) {
        EXPECT_LT(g, 0.0f);
      } else {
        EXPECT_GE(g, 0.0f);
      }
    }
    EXPECT_NEAR(total, 0.0, 1e-5) << "row " << i;
  }
}

}  // namespace
}  // namespace tern::cpu
