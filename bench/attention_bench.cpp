// Causal attention forward + backward: scalar reference vs the SIMD kernels,
// printed as JSON (milliseconds per call, best of `reps`).
//
// For each shape, times ref::attention_forward + ref::attention_backward (the
// caching pair) and the same for tern::cpu, on the best SIMD target and, with
// --all-targets, on every attainable one; also the cpu recomputing pair. Usage:
//   tern_bench_attention [--threads N] [--reps N] [--quick] [--all-targets]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/ref/attention.h"

namespace {

using tern::ref::AttentionShape;

struct Case {
  const char* name;
  AttentionShape shape;
};

// Best wall time of `reps` calls, in milliseconds.
double best_ms(int reps, const std::function<void()>& fn) {
  double best = 1e300;
  for (int r = 0; r < reps; ++r) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    best = std::min(best, ms);
  }
  return best;
}

struct Buffers {
  std::vector<float> q, k, v, dout, out, probs, dq, dk, dv;
  explicit Buffers(const AttentionShape& s) {
    const auto nq = static_cast<size_t>(s.batch * s.seq * s.heads * s.head_dim);
    const auto nkv = static_cast<size_t>(s.batch * s.seq * s.kv_heads * s.head_dim);
    tern::Rng rng(1);
    auto fill = [&](std::vector<float>& x, size_t n) {
      x.resize(n);
      for (float& e : x) e = static_cast<float>(rng.normal());
    };
    fill(q, nq);
    fill(k, nkv);
    fill(v, nkv);
    fill(dout, nq);
    out.resize(nq);
    dq.resize(nq);
    dk.resize(nkv);
    dv.resize(nkv);
    probs.resize(static_cast<size_t>(s.batch * s.heads * s.seq * s.seq));
  }
};

}  // namespace

int main(int argc, char** argv) {
  int threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  int reps = 5;
  bool quick = false;
  bool all_targets = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else if (std::strcmp(argv[i], "--all-targets") == 0) {
      all_targets = true;
    } else {
      std::fprintf(stderr, "tern_bench_attention: unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (threads < 1 || reps < 1) {
    std::fprintf(stderr, "tern_bench_attention: --threads and --reps must be >= 1\n");
    return 2;
  }
  tern::set_num_threads(threads);

  std::vector<Case> cases = {{"bitnet-125m", {1, 256, 12, 12, 64}}};
  if (!quick) {
    cases.push_back({"bitnet-125m", {1, 512, 12, 12, 64}});
    cases.push_back({"bitnet-1b", {1, 512, 32, 8, 64}});
  }
  std::vector<int64_t> targets = tern::cpu::attainable_simd_targets();
  if (!all_targets) targets.resize(1);

  std::printf("{\"benchmark\":\"attention\",\"threads\":%d,\"reps\":%d,\"results\":[", threads,
              reps);
  bool first = true;
  for (const Case& c : cases) {
    const AttentionShape& s = c.shape;
    Buffers b(s);
    auto ref_fwd = [&] {
      tern::ref::attention_forward(b.out.data(), b.probs.data(), b.q.data(), b.k.data(), b.v.data(),
                                   s);
    };
    auto ref_bwd = [&] {
      tern::ref::attention_backward(b.dq.data(), b.dk.data(), b.dv.data(), b.dout.data(),
                                    b.probs.data(), b.q.data(), b.k.data(), b.v.data(), s);
    };
    const double rf = best_ms(reps, ref_fwd);
    const double rb = best_ms(reps, ref_bwd);
    for (const int64_t target : targets) {
      tern::cpu::ScopedSimdTarget pin(target);
      auto fwd = [&] {
        tern::cpu::attention_forward(b.out.data(), b.probs.data(), b.q.data(), b.k.data(),
                                     b.v.data(), s);
      };
      auto bwd = [&] {
        tern::cpu::attention_backward(b.dq.data(), b.dk.data(), b.dv.data(), b.dout.data(),
                                      b.probs.data(), b.q.data(), b.k.data(), b.v.data(), s);
      };
      auto fwd_nc = [&] {
        tern::cpu::attention_forward_nocache(b.out.data(), b.q.data(), b.k.data(), b.v.data(), s);
      };
      auto bwd_re = [&] {
        tern::cpu::attention_backward_recompute(b.dq.data(), b.dk.data(), b.dv.data(),
                                                b.dout.data(), b.q.data(), b.k.data(), b.v.data(),
                                                s);
      };
      const double f = best_ms(reps, fwd);
      const double bw = best_ms(reps, bwd);
      const double fnc = best_ms(reps, fwd_nc);
      const double bre = best_ms(reps, bwd_re);
      std::printf(
          "%s{\"preset\":\"%s\",\"batch\":%lld,\"seq\":%lld,\"heads\":%lld,\"kv_heads\":%lld,"
          "\"head_dim\":%lld,\"target\":\"%s\",\"ref_forward_ms\":%.3f,\"ref_backward_ms\":%.3f,"
          "\"simd_forward_ms\":%.3f,\"simd_backward_ms\":%.3f,\"simd_forward_nocache_ms\":%.3f,"
          "\"simd_backward_recompute_ms\":%.3f,\"speedup_forward_backward\":%.2f}",
          first ? "" : ",", c.name, static_cast<long long>(s.batch), static_cast<long long>(s.seq),
          static_cast<long long>(s.heads), static_cast<long long>(s.kv_heads),
          static_cast<long long>(s.head_dim), tern::cpu::simd_target_name(target).c_str(), rf, rb,
          f, bw, fnc, bre, (rf + rb) / (f + bw));
      first = false;
      std::fflush(stdout);
    }
  }
  std::printf("]}\n");
  return 0;
}
