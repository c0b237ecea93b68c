#include "kernels/cpu/dispatch.h"

#include <hwy/targets.h>

#include <algorithm>

#include "core/check.h"

namespace tern::cpu {

std::string active_simd_target() {
  // The best supported target is the lowest bit Highway reports (targets are
  // numbered from best to worst), restricted by any test override.
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  TERN_CHECK(!targets.empty());
  return hwy::TargetName(targets.front());
}

std::vector<int64_t> attainable_simd_targets() {
  return hwy::SupportedAndGeneratedTargets();
}

std::string simd_target_name(int64_t target) {
  return hwy::TargetName(target);
}

ScopedSimdTarget::ScopedSimdTarget(int64_t target) {
  const std::vector<int64_t> targets = hwy::SupportedAndGeneratedTargets();
  TERN_CHECK(std::find(targets.begin(), targets.end(), target) != targets.end(), "SIMD target ",
             hwy::TargetName(target), " is not attainable here");
  hwy::SetSupportedTargetsForTest(target);
}

ScopedSimdTarget::~ScopedSimdTarget() {
  hwy::SetSupportedTargetsForTest(0);
}

}  // namespace tern::cpu
