// SIMD gated activation (kernels/cpu/gated_activation.h) against the scalar
// reference on every attainable target, both activations: same bits forward and
// backward, tails and special values included.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/gated_activation.h"
#include "kernels/ref/gated_activation.h"

namespace tern::cpu {
namespace {

using ref::Activation;

std::vector<float> values(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = static_cast<float>(rng.normal() * 4.0);
  // Special values where the two branches of ReLU² meet and where SiLU's
  // exponential overflows or flushes.
  const float specials[] = {0.0f,
                            -0.0f,
                            1e-30f,
                            -1e-30f,
                            90.0f,
                            -90.0f,
                            200.0f,
                            -200.0f,
                            std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity()};
  for (size_t i = 0; i < std::size(specials) && i < v.size(); ++i)
    v[i * 3 % v.size()] = specials[i];
  return v;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(GatedActivationSimdTest, MatchesReferenceOnEveryTarget) {
  for (const Activation act : {Activation::kReLU2, Activation::kSiLU}) {
    // 9000 spans two pool chunks, each with a tail; 13 is all tail on wide targets.
    for (const int64_t n : {13, 64, 9000}) {
      SCOPED_TRACE(n);
      const std::vector<float> gate = values(n, 1), up = values(n, 2), dm = values(n, 3);
      std::vector<float> m_ref(gate.size()), dgate_ref(gate.size()), dup_ref(gate.size());
      ref::gated_activation_forward(m_ref.data(), gate.data(), up.data(), n, act);
      ref::gated_activation_backward(dgate_ref.data(), dup_ref.data(), dm.data(), gate.data(),
                                     up.data(), n, act);
      for (const int64_t target : attainable_simd_targets()) {
        SCOPED_TRACE(simd_target_name(target));
        ScopedSimdTarget pin(target);
        const float nan = std::numeric_limits<float>::quiet_NaN();
        std::vector<float> m(gate.size(), nan), dgate(gate.size(), nan), dup(gate.size(), nan);
        gated_activation_forward(m.data(), gate.data(), up.data(), n, act);
        gated_activation_backward(dgate.data(), dup.data(), dm.data(), gate.data(), up.data(), n,
                                  act);
        EXPECT_TRUE(same_bits(m, m_ref));
        EXPECT_TRUE(same_bits(dgate, dgate_ref));
        EXPECT_TRUE(same_bits(dup, dup_ref));
      }
    }
  }
}

}  // namespace
}  // namespace tern::cpu
