// SIMD attention (kernels/cpu/attention.h) against the scalar reference on every
// attainable target: same bits as ref::attention_*, cached and recomputing pairs
// identical, and identical on any thread count.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <thread>
#include <vector>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/ref/attention.h"

namespace tern::cpu {
namespace {

using ref::AttentionShape;

std::vector<float> random_floats(Rng& rng, int64_t n, double scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(rng.normal() * scale);
  return v;
}

// Outputs start as NaN so an element a kernel forgets to write shows up.
std::vector<float> nan_buffer(int64_t n) {
  return std::vector<float>(static_cast<size_t>(n), std::numeric_limits<float>::quiet_NaN());
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

// max |a − b| / max |ref|: the norm-based relative error of one output tensor.
double relative_error(const std::vector<float>& a, const std::vector<float>& ref) {
  double diff = 0.0;
  double norm = 0.0;
  for (size_t i = 0; i < ref.size(); ++i) {
    diff = std::max(diff, std::fabs(static_cast<double>(a[i]) - ref[i]));
    norm = std::max(norm, std::fabs(static_cast<double>(ref[i])));
  }
  return norm > 0.0 ? diff / norm : diff;
}

struct Inputs {
  std::vector<float> q, k, v, dout;
};

Inputs make_inputs(const AttentionShape& s, uint64_t seed) {
  Rng rng(seed);
  const int64_t nq = s.batch * s.seq * s.heads * s.head_dim;
  const int64_t nkv = s.batch * s.seq * s.kv_heads * s.head_dim;
  Inputs in;
  in.q = random_floats(rng, nq, 1.5);
  in.k = random_floats(rng, nkv, 1.5);
  in.v = random_floats(rng, nkv, 1.0);
  in.dout = random_floats(rng, nq, 1.0);
  return in;
}

// Everything the four entry points produce for one set of inputs.
struct Results {
  std::vector<float> out, probs, dq, dk, dv;            // cached pair
  std::vector<float> out_nocache, dq_re, dk_re, dv_re;  // recomputing pair
};

Results run_simd(const AttentionShape& s, const Inputs& in) {
  const int64_t nq = s.batch * s.seq * s.heads * s.head_dim;
  const int64_t nkv = s.batch * s.seq * s.kv_heads * s.head_dim;
  Results r;
  r.out = nan_buffer(nq);
  r.probs = nan_buffer(s.batch * s.heads * s.seq * s.seq);
  r.dq = nan_buffer(nq);
  r.dk = nan_buffer(nkv);
  r.dv = nan_buffer(nkv);
  r.out_nocache = nan_buffer(nq);
  r.dq_re = nan_buffer(nq);
  r.dk_re = nan_buffer(nkv);
  r.dv_re = nan_buffer(nkv);
  attention_forward(r.out.data(), r.probs.data(), in.q.data(), in.k.data(), in.v.data(), s);
  attention_backward(r.dq.data(), r.dk.data(), r.dv.data(), in.dout.data(), r.probs.data(),
                     in.q.data(), in.k.data(), in.v.data(), s);
  attention_forward_nocache(r.out_nocache.data(), in.q.data(), in.k.data(), in.v.data(), s);
  attention_backward_recompute(r.dq_re.data(), r.dk_re.data(), r.dv_re.data(), in.dout.data(),
                               in.q.data(), in.k.data(), in.v.data(), s);
  return r;
}

Results run_reference(const AttentionShape& s, const Inputs& in) {
  const int64_t nq = s.batch * s.seq * s.heads * s.head_dim;
  const int64_t nkv = s.batch * s.seq * s.kv_heads * s.head_dim;
  Results r;
  r.out = nan_buffer(nq);
  r.probs = nan_buffer(s.batch * s.heads * s.seq * s.seq);
  r.dq = nan_buffer(nq);
  r.dk = nan_buffer(nkv);
  r.dv = nan_buffer(nkv);
  ref::attention_forward(r.out.data(), r.probs.data(), in.q.data(), in.k.data(), in.v.data(), s);
  ref::attention_backward(r.dq.data(), r.dk.data(), r.dv.data(), in.dout.data(), r.probs.data(),
                          in.q.data(), in.k.data(), in.v.data(), s);
  return r;
}

// Odd sizes on purpose: seq 1 and non-multiples of the 32-query / 64-key
// blocks, head_dim not a multiple of 8, GQA ratios 1, 2 and 4, batch 1 and 2.
const AttentionShape kShapes[] = {
    {.batch = 1, .seq = 1, .heads = 1, .kv_heads = 1, .head_dim = 16},
    {.batch = 2, .seq = 7, .heads = 4, .kv_heads = 2, .head_dim = 16},
    {.batch = 1, .seq = 33, .heads = 4, .kv_heads = 1, .head_dim = 64},
    {.batch = 2, .seq = 130, .heads = 2, .kv_heads = 2, .head_dim = 80},
    {.batch = 1, .seq = 130, .heads = 4, .kv_heads = 1, .head_dim = 64},
    {.batch = 2, .seq = 37, .heads = 3, .kv_heads = 3, .head_dim = 5},
    {.batch = 1, .seq = 66, .heads = 4, .kv_heads = 4, .head_dim = 12},
};

TEST(AttentionSimdTest, MatchesReferenceOnEveryTarget) {
  uint64_t seed = 1;
  for (const AttentionShape& s : kShapes) {
    const Inputs in = make_inputs(s, seed++);
    const Results want = run_reference(s, in);
    for (const int64_t target : attainable_simd_targets()) {
      ScopedSimdTarget pin(target);
      SCOPED_TRACE(testing::Message()
                   << simd_target_name(target) << " batch " << s.batch << " seq " << s.seq
                   << " heads " << s.heads << "/" << s.kv_heads << " head_dim " << s.head_dim);
      const Results got = run_simd(s, in);
      // The contract: within 1e-5 of the reference (norm-based, per tensor)...
      EXPECT_LE(relative_error(got.out, want.out), 1e-5);
      EXPECT_LE(relative_error(got.probs, want.probs), 1e-5);
      EXPECT_LE(relative_error(got.dq, want.dq), 1e-5);
      EXPECT_LE(relative_error(got.dk, want.dk), 1e-5);
      EXPECT_LE(relative_error(got.dv, want.dv), 1e-5);
      // ...and in fact the same bits, since every sum runs in the reference's order.
      EXPECT_TRUE(same_bits(got.out, want.out));
      EXPECT_TRUE(same_bits(got.probs, want.probs));
      EXPECT_TRUE(same_bits(got.dq, want.dq));
      EXPECT_TRUE(same_bits(got.dk, want.dk));
      EXPECT_TRUE(same_bits(got.dv, want.dv));
      // The memory-lean pair reproduces the caching pair bit for bit.
      EXPECT_TRUE(same_bits(got.out_nocache, got.out));
      EXPECT_TRUE(same_bits(got.dq_re, got.dq));
      EXPECT_TRUE(same_bits(got.dk_re, got.dk));
      EXPECT_TRUE(same_bits(got.dv_re, got.dv));
    }
  }
}

TEST(AttentionSimdTest, SameBitsOnAnyThreadCount) {
  const AttentionShape s{.batch = 2, .seq = 70, .heads = 6, .kv_heads = 2, .head_dim = 24};
  const Inputs in = make_inputs(s, 99);
  for (const int64_t target : attainable_simd_targets()) {
    ScopedSimdTarget pin(target);
    SCOPED_TRACE(simd_target_name(target));
    set_num_threads(1);
    const Results one = run_simd(s, in);
    for (const int threads : {2, 3}) {
      set_num_threads(threads);
      const Results many = run_simd(s, in);
      EXPECT_TRUE(same_bits(many.out, one.out)) << threads;
      EXPECT_TRUE(same_bits(many.probs, one.probs)) << threads;
      EXPECT_TRUE(same_bits(many.dq, one.dq)) << threads;
      EXPECT_TRUE(same_bits(many.dk, one.dk)) << threads;
      EXPECT_TRUE(same_bits(many.dv, one.dv)) << threads;
      EXPECT_TRUE(same_bits(many.out_nocache, one.out_nocache)) << threads;
      EXPECT_TRUE(same_bits(many.dq_re, one.dq_re)) << threads;
      EXPECT_TRUE(same_bits(many.dk_re, one.dk_re)) << threads;
      EXPECT_TRUE(same_bits(many.dv_re, one.dv_re)) << threads;
    }
  }
  set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
}

TEST(AttentionSimdTest, BatchRowsAreIndependent) {
  // Batch element 1 computed alone gives the same bits as inside a batch of 2.
  const AttentionShape s2{.batch = 2, .seq = 45, .heads = 4, .kv_heads = 2, .head_dim = 16};
  AttentionShape s1 = s2;
  s1.batch = 1;
  const Inputs in2 = make_inputs(s2, 7);
  auto second_half = [](const std::vector<float>& x) {
    return std::vector<float>(x.begin() + static_cast<int64_t>(x.size() / 2), x.end());
  };
  const Inputs in1{second_half(in2.q), second_half(in2.k), second_half(in2.v),
                   second_half(in2.dout)};
  const Results both = run_simd(s2, in2);
  const Results one = run_simd(s1, in1);
  EXPECT_TRUE(same_bits(second_half(both.out), one.out));
  EXPECT_TRUE(same_bits(second_half(both.dq), one.dq));
  EXPECT_TRUE(same_bits(second_half(both.dk), one.dk));
  EXPECT_TRUE(same_bits(second_half(both.dv), one.dv));
}

TEST(AttentionSimdTest, LastQueriesEqualTheFullRows) {
  // A decoder's step: the queries at positions [first, seq) against every key
  // give the rows of the full call, for one query, a few, and more than one
  // 32-query block starting mid-block; with a batch, GQA and padded head_dim.
  // One query (first = seq − 1) runs a group's 3 heads as the rows of a block.
  const AttentionShape s{.batch = 2, .seq = 77, .heads = 6, .kv_heads = 2, .head_dim = 20};
  const Inputs in = make_inputs(s, 31);
  const int64_t row = s.heads * s.head_dim;  // floats per position
  for (const int64_t target : attainable_simd_targets()) {
    ScopedSimdTarget pin(target);
    std::vector<float> full = nan_buffer(s.batch * s.seq * row);
    attention_forward_nocache(full.data(), in.q.data(), in.k.data(), in.v.data(), s);
    for (const int64_t first : {int64_t{0}, int64_t{5}, int64_t{40}, s.seq - 1}) {
      SCOPED_TRACE(testing::Message() << simd_target_name(target) << " first " << first);
      const int64_t queries = s.seq - first;
      std::vector<float> q_last, want;
      for (int64_t b = 0; b < s.batch; ++b) {
        const int64_t from = (b * s.seq + first) * row, to = (b + 1) * s.seq * row;
        q_last.insert(q_last.end(), in.q.begin() + from, in.q.begin() + to);
        want.insert(want.end(), full.begin() + from, full.begin() + to);
      }
      std::vector<float> got = nan_buffer(s.batch * queries * row);
      attention_forward_last(got.data(), q_last.data(), in.k.data(), in.v.data(), s, first);
      EXPECT_TRUE(same_bits(got, want));
    }
  }
}

TEST(AttentionSimdTest, KeysReadInPlaceOrPackedGiveTheSameBits) {
  // With head_dim a multiple of 8 and vector-aligned rows the forward reads
  // keys and values where they are (a decoder's cache); otherwise it packs
  // them. Both give the reference's bits, for the full call and for the last
  // query. seq = 45 leaves a last key tile of one row past which the in-place
  // path must not read (ASan checks that in CI).
  const AttentionShape s{.batch = 2, .seq = 45, .heads = 4, .kv_heads = 2, .head_dim = 16};
  const Inputs in = make_inputs(s, 47);
  const int64_t nkv = static_cast<int64_t>(in.k.size());
  std::vector<float> want = nan_buffer(static_cast<int64_t>(in.q.size()));
  std::vector<float> probs = nan_buffer(s.batch * s.heads * s.seq * s.seq);
  ref::attention_forward(want.data(), probs.data(), in.q.data(), in.k.data(), in.v.data(), s);
  const int64_t row = s.heads * s.head_dim;
  std::vector<float> q_last, want_last;
  for (int64_t b = 0; b < s.batch; ++b) {
    const int64_t from = (b * s.seq + s.seq - 1) * row, to = (b + 1) * s.seq * row;
    q_last.insert(q_last.end(), in.q.begin() + from, in.q.begin() + to);
    want_last.insert(want_last.end(), want.begin() + from, want.begin() + to);
  }
  // Keys and values from a 64-byte boundary (read in place), or one float past
  // it (packed). At shift 0 the allocation ends right after the last row, so
  // ASan sees any read past it.
  for (const int64_t shift : {int64_t{0}, int64_t{1}}) {
    const auto bytes = static_cast<size_t>((nkv + shift) * 4 + 63) / 64 * 64;
    std::unique_ptr<float, decltype(&std::free)> k_block(
        static_cast<float*>(std::aligned_alloc(64, bytes)), &std::free);
    std::unique_ptr<float, decltype(&std::free)> v_block(
        static_cast<float*>(std::aligned_alloc(64, bytes)), &std::free);
    ASSERT_TRUE(k_block != nullptr && v_block != nullptr);
    float* k = k_block.get() + shift;
    float* v = v_block.get() + shift;
    std::copy(in.k.begin(), in.k.end(), k);
    std::copy(in.v.begin(), in.v.end(), v);
    for (const int64_t target : attainable_simd_targets()) {
      ScopedSimdTarget pin(target);
      SCOPED_TRACE(testing::Message() << simd_target_name(target) << " shift " << shift);
      std::vector<float> got = nan_buffer(static_cast<int64_t>(in.q.size()));
      attention_forward_nocache(got.data(), in.q.data(), k, v, s);
      EXPECT_TRUE(same_bits(got, want));
      std::vector<float> got_last = nan_buffer(s.batch * row);
      attention_forward_last(got_last.data(), q_last.data(), k, v, s, s.seq - 1);
      EXPECT_TRUE(same_bits(got_last, want_last));
    }
  }
}

TEST(AttentionSimdDeathTest, LastQueriesOutsideTheSequenceAbort) {
  const AttentionShape s{.batch = 1, .seq = 4, .heads = 1, .kv_heads = 1, .head_dim = 8};
  std::vector<float> x(static_cast<size_t>(s.seq * s.head_dim), 1.0f), out(x.size());
  EXPECT_DEATH(attention_forward_last(out.data(), x.data(), x.data(), x.data(), s, s.seq),
               "first_query=4 seq=4");
}

}  // namespace
}  // namespace tern::cpu
