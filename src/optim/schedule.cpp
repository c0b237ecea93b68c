#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

#include "core/portable_math.h"

namespace tern {

Status LrSchedule::validate() const {
  if (!(peak_lr > 0.0) || !std::isfinite(peak_lr)) {
    return Status::Error("lr schedule: peak lr = " + std::to_string(peak_lr) + " (must be > 0)");
  }
  if (min_lr < 0.0 || min_lr > peak_lr) {
    return Status::Error("lr schedule: min lr = " + std::to_string(min_lr) +
                         " (must be in [0, peak lr])");
  }
  if (total_steps <= 0) {
    return Status::Error("lr schedule: total steps = " + std::to_string(total_steps));
  }
  if (warmup_steps < 0 || warmup_steps > total_steps) {
    return Status::Error("lr schedule: warmup steps = " + std::to_string(warmup_steps) +
                         " (must be in [0, total steps = " + std::to_string(total_steps) + "])");
  }
  if (!(decay_fraction > 0.0 && decay_fraction <= 1.0)) {
    return Status::Error("lr schedule: decay fraction = " + std::to_string(decay_fraction) +
                         " (must be in (0, 1])");
  }
  return Status::Ok();
}

double LrSchedule::lr_at(int64_t step) const {
  step = std::clamp<int64_t>(step, 0, total_steps - 1);
  if (kind == ScheduleKind::kConstant) return peak_lr;
  if (step < warmup_steps) {
    return peak_lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  }
  if (kind == ScheduleKind::kCosine) {
    const int64_t span = std::max<int64_t>(1, total_steps - warmup_steps - 1);
    const double progress = static_cast<double>(step - warmup_steps) / static_cast<double>(span);
    // portable_cos: the learning rate must have the same bits on every platform.
    const double cosine = 0.5 * (1.0 + portable_cos(std::numbers::pi * progress));
    return min_lr + (peak_lr - min_lr) * cosine;
  }
  // WSD: hold the peak, then decay linearly to min_lr over the last steps.
  const auto decay_steps = std::max<int64_t>(
      1, static_cast<int64_t>(std::llround(decay_fraction * static_cast<double>(total_steps))));
  const int64_t decay_start = std::max(warmup_steps, total_steps - decay_steps);
  if (step < decay_start) return peak_lr;
  const int64_t span = std::max<int64_t>(1, total_steps - 1 - decay_start);
  const double progress = static_cast<double>(step - decay_start) / static_cast<double>(span);
  return peak_lr + (min_lr - peak_lr) * progress;
}

Result<ScheduleKind> parse_schedule_kind(std::string_view name) {
  if (name == "constant") return ScheduleKind::kConstant;
  if (name == "cosine") return ScheduleKind::kCosine;
  if (name == "wsd") return ScheduleKind::kWsd;
  return Status::Error("unknown lr schedule '" + std::string(name) +
                       "' (expected constant, cosine or wsd)");
}

}  // namespace tern
