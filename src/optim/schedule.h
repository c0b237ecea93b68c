// Learning-rate schedules: constant, linear warmup + cosine decay, and
// warmup-stable-decay (WSD). Pure functions of the step; thread-safe.
#pragma once

#include <cstdint>
#include <string_view>

#include "core/status.h"

namespace tern {

enum class ScheduleKind { kConstant, kCosine, kWsd };

struct LrSchedule {
  ScheduleKind kind = ScheduleKind::kCosine;
  double peak_lr = 1e-3;
  double min_lr = 1e-4;         // floor reached at the end of decay
  int64_t warmup_steps = 0;     // linear ramp from peak/warmup to peak
  int64_t total_steps = 1;      // steps in the whole run
  double decay_fraction = 0.2;  // WSD: last fraction of the run spent decaying

  Status validate() const;
  // Learning rate for 0-based step t (clamped to the schedule's end).
  double lr_at(int64_t step) const;
};

// "constant", "cosine" or "wsd"; the error names the bad value.
Result<ScheduleKind> parse_schedule_kind(std::string_view name);

}  // namespace tern
