// Finite-difference gradient checks (double precision) for every reference op.
//
// Each test builds L = Σ dy ⊙ f(inputs) with a random dy, runs the op's analytic
// backward, and compares every input gradient with central differences of L.
// Ops with quantizers are checked through the straight-through estimator in
// ternary_test.cpp (their true derivative is zero almost everywhere).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "kernels/ref/attention.h"
#include "kernels/ref/cross_entropy.h"
#include "kernels/ref/embedding.h"
#include "kernels/ref/gated_activation.h"
#include "kernels/ref/linear.h"
#include "kernels/ref/rmsnorm.h"
#include "kernels/ref/rope.h"

namespace tern::ref {
namespace {

using Vec = std::vector<double>;

Vec random_vec(Rng& rng, size_t n, double scale = 1.0) {
  Vec v(n);
  for (double& x : v) x = rng.normal() * scale;
  return v;
}

double weighted_sum(const Vec& y, const Vec& dy) {
  double s = 0.0;
  for (size_t i = 0; i < y.size(); ++i) s += y[i] * dy[i];
  return s;
}

// Compares analytic[i] with (loss(x+h) − loss(x−h)) / 2h for every element of x.
void expect_gradient(const char* what, Vec& x, const std::function<double()>& loss,
                     const Vec& analytic, double tol = 1e-6) {
  ASSERT_EQ(x.size(), analytic.size()) << what;
  const double h = 1e-6;
  double max_err = 0.0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double saved = x[i];
    x[i] = saved + h;
    const double up = loss();
    x[i] = saved - h;
    const double down = loss();
    x[i] = saved;
    const double numeric = (up - down) / (2 * h);
    const double err = std::fabs(numeric - analytic[i]) / std::max(1.0, std::fabs(numeric));
    max_err = std::max(max_err, err);
    EXPECT_LT(err, tol) << what << "[" << i << "]: numeric " << numeric << " analytic "
                        << analytic[i];
  }
  ::testing::Test::RecordProperty(what, std::to_string(max_err));
}

TEST(GradcheckTest, gradcheck_linear) {
  Rng rng(1);
  const int64_t n = 3, in = 5, out = 4;
  Vec x = random_vec(rng, n * in), w = random_vec(rng, out * in), dy = random_vec(rng, n * out);
  Vec y(n * out), dx(n * in), dw(out * in, 0.0);
  auto loss = [&] {
    linear_forward(y.data(), x.data(), w.data(), n, in, out);
    return weighted_sum(y, dy);
  };
  linear_backward_input(dx.data(), dy.data(), w.data(), n, in, out);
  linear_backward_weight(dw.data(), dy.data(), x.data(), n, in, out);
  expect_gradient("dx", x, loss, dx);
  expect_gradient("dw", w, loss, dw);
}

TEST(GradcheckTest, gradcheck_rmsnorm) {
  Rng rng(2);
  const int64_t n = 3, d = 7;
  Vec x = random_vec(rng, n * d), w = random_vec(rng, d), dy = random_vec(rng, n * d);
  Vec y(n * d), inv(n), dx(n * d), dw(d, 0.0);
  auto loss = [&] {
    rmsnorm_forward(y.data(), inv.data(), x.data(), w.data(), n, d, 1e-5);
    return weighted_sum(y, dy);
  };
  loss();
  rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), inv.data(), n, d);
  expect_gradient("dx", x, loss, dx);
  expect_gradient("dw", w, loss, dw);
}

class RopeGradcheck : public ::testing::TestWithParam<RopeStyle> {};

TEST_P(RopeGradcheck, gradcheck_rope) {
  Rng rng(3);
  const int64_t b = 2, t = 4, h = 3, d = 6;
  const RopeTable<double> table = make_rope_table<double>(t, d, 10000.0);
  Vec x = random_vec(rng, b * t * h * d), dy = random_vec(rng, x.size());
  auto loss = [&] {
    Vec y = x;
    rope_forward(y.data(), table, GetParam(), b, t, h, d);
    return weighted_sum(y, dy);
  };
  Vec dx = dy;
  rope_backward(dx.data(), table, GetParam(), b, t, h, d);
  expect_gradient("dx", x, loss, dx);
}

// A decoder fills only its chunk's rows; they must be the full table's rows.
TEST(RopeTableTest, RowsFromAPositionEqualThoseRowsOfTheFullTable) {
  const int64_t head_dim = 16, seq = 300;
  const RopeTable<float> full = make_rope_table<float>(seq, head_dim, 500000.0);
  EXPECT_EQ(full.cos[0], 1.0f);  // position 0: no rotation
  EXPECT_EQ(full.sin[0], 0.0f);
  EXPECT_NEAR(full.cos[8], std::cos(1.0), 1e-7);  // position 1, frequency 1
  EXPECT_NEAR(full.sin[8], std::sin(1.0), 1e-7);
  RopeTable<float> window;
  for (const int64_t first : {int64_t{0}, int64_t{1}, int64_t{255}, int64_t{299}}) {
    const int64_t rows = std::min<int64_t>(32, seq - first);
    fill_rope_rows(&window, first, rows, head_dim, 500000.0);
    ASSERT_EQ(window.seq, rows);
    ASSERT_EQ(window.half_dim, head_dim / 2);
    for (int64_t k = 0; k < rows * head_dim / 2; ++k) {
      const auto at = static_cast<size_t>(first * head_dim / 2 + k);
      ASSERT_EQ(window.cos[static_cast<size_t>(k)], full.cos[at]) << first << " " << k;
      ASSERT_EQ(window.sin[static_cast<size_t>(k)], full.sin[at]) << first << " " << k;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Styles, RopeGradcheck,
                         ::testing::Values(RopeStyle::kNeox, RopeStyle::kInterleaved),
                         [](const auto& info) {
                           return info.param == RopeStyle::kNeox ? "neox" : "interleaved";
                         });

TEST(GradcheckTest, gradcheck_attention_gqa) {
  Rng rng(4);
  const AttentionShape s{2, 5, 4, 2, 6};  // 4 query heads share 2 kv heads; head_dim 6
  const size_t q_size = s.batch * s.seq * s.heads * s.head_dim;
  const size_t kv_size = s.batch * s.seq * s.kv_heads * s.head_dim;
  Vec q = random_vec(rng, q_size), k = random_vec(rng, kv_size), v = random_vec(rng, kv_size);
  Vec dy = random_vec(rng, q_size);
  Vec out(q_size), probs(s.batch * s.heads * s.seq * s.seq);
  auto loss = [&] {
    attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), s);
    return weighted_sum(out, dy);
  };
  loss();
  Vec dq(q_size), dk(kv_size), dv(kv_size);
  attention_backward(dq.data(), dk.data(), dv.data(), dy.data(), probs.data(), q.data(), k.data(),
                     v.data(), s);
  expect_gradient("dq", q, loss, dq);
  expect_gradient("dk", k, loss, dk);
  expect_gradient("dv", v, loss, dv);
}

TEST(GradcheckTest, attention_is_causal) {
  Rng rng(5);
  const AttentionShape s{1, 6, 2, 1, 4};
  Vec q = random_vec(rng, 6 * 2 * 4), k = random_vec(rng, 6 * 4), v = random_vec(rng, 6 * 4);
  Vec out(q.size()), probs(2 * 6 * 6);
  attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), s);
  const Vec before = out;
  // Changing the last key/value must not change any earlier query's output.
  for (int e = 0; e < 4; ++e) {
    k[5 * 4 + e] += 1.0;
    v[5 * 4 + e] -= 2.0;
  }
  attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), s);
  for (size_t i = 0; i < 5 * 2 * 4; ++i) EXPECT_EQ(out[i], before[i]) << i;
  EXPECT_NE(out[5 * 8], before[5 * 8]);
}

class ActivationGradcheck : public ::testing::TestWithParam<Activation> {};

TEST_P(ActivationGradcheck, gradcheck_gated_activation) {
  Rng rng(6);
  const int64_t n = 40;
  Vec gate = random_vec(rng, n, 2.0), up = random_vec(rng, n), dy = random_vec(rng, n);
  for (double& g : gate) {
    if (std::fabs(g) < 1e-3) g = 0.5;  // keep away from ReLU²'s kink at 0
  }
  Vec m(n);
  auto loss = [&] {
    gated_activation_forward(m.data(), gate.data(), up.data(), n, GetParam());
    return weighted_sum(m, dy);
  };
  Vec dgate(n), dup(n);
  gated_activation_backward(dgate.data(), dup.data(), dy.data(), gate.data(), up.data(), n,
                            GetParam());
  expect_gradient("dgate", gate, loss, dgate);
  expect_gradient("dup", up, loss, dup);
}

INSTANTIATE_TEST_SUITE_P(Kinds, ActivationGradcheck,
                         ::testing::Values(Activation::kReLU2, Activation::kSiLU),
                         [](const auto& info) {
                           return info.param == Activation::kReLU2 ? "relu2" : "silu";
                         });

TEST(GradcheckTest, gradcheck_embedding) {
  Rng rng(7);
  const int64_t vocab = 5, dim = 3, n = 6;
  const std::vector<int32_t> tokens = {1, 4, 1, 0, 3, 1};  // repeats accumulate
  Vec table = random_vec(rng, vocab * dim), dy = random_vec(rng, n * dim), out(n * dim);
  auto loss = [&] {
    embedding_forward(out.data(), table.data(), tokens.data(), n, vocab, dim);
    return weighted_sum(out, dy);
  };
  Vec dtable(vocab * dim, 0.0);
  embedding_backward(dtable.data(), dy.data(), tokens.data(), n, vocab, dim);
  expect_gradient("dtable", table, loss, dtable);
}

TEST(GradcheckTest, gradcheck_cross_entropy_with_ignore) {
  Rng rng(8);
  const int64_t n = 4, vocab = 67;
  const std::vector<int32_t> labels = {3, -1, 66, 0};
  Vec logits = random_vec(rng, n * vocab, 3.0);
  auto loss = [&] {
    const CrossEntropyTotals t = cross_entropy_forward(logits.data(), labels.data(), n, vocab);
    return t.loss_sum / static_cast<double>(t.count);
  };
  const CrossEntropyTotals totals = cross_entropy_forward(logits.data(), labels.data(), n, vocab);
  EXPECT_EQ(totals.count, 3);
  Vec dlogits(n * vocab);
  cross_entropy_backward(dlogits.data(), logits.data(), labels.data(), n, vocab, 1.0 / 3.0);
  expect_gradient("dlogits", logits, loss, dlogits);
  for (int64_t j = 0; j < vocab; ++j) EXPECT_EQ(dlogits[vocab + j], 0.0);  // ignored row
}

TEST(GradcheckTest, cross_entropy_matches_log_softmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f};
  const std::vector<int32_t> labels = {2};
  const CrossEntropyTotals t = cross_entropy_forward(logits.data(), labels.data(), 1, 3);
  const double expected =
      -std::log(std::exp(3.0) / (std::exp(1.0) + std::exp(2.0) + std::exp(3.0)));
  EXPECT_NEAR(t.loss_sum, expected, 1e-6);
}

}  // namespace
}  // namespace tern::ref
