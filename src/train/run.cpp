#include "train/run.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/portable_math.h"
#include "train/checkpoint.h"

namespace tern {
namespace {

std::atomic<int> g_signal{0};

extern "C" void on_stop_signal(int sig) {
  g_signal.store(sig);
}

// Installs SIGINT/SIGTERM handlers for one run and restores the old ones after.
class StopSignals {
 public:
  StopSignals() {
    g_signal.store(0);
    old_int_ = std::signal(SIGINT, on_stop_signal);
    old_term_ = std::signal(SIGTERM, on_stop_signal);
  }
  ~StopSignals() {
    std::signal(SIGINT, old_int_);
    std::signal(SIGTERM, old_term_);
  }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  bool stop_requested() const { return g_signal.load() != 0; }

 private:
  void (*old_int_)(int) = SIG_DFL;
  void (*old_term_)(int) = SIG_DFL;
};

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<long long>(seconds + 0.5);
  char buf[32];
  if (s >= 3600) {
    std::snprintf(buf, sizeof buf, "%lldh%02lldm", s / 3600, s / 60 % 60);
  } else {
    std::snprintf(buf, sizeof buf, "%lldm%02llds", s / 60, s % 60);
  }
  return buf;
}

// Lines of an existing metrics log up to and including `step`; fills the
// result's history from them so the report covers the whole run.
Result<std::vector<std::string>> previous_metrics(const std::string& path, int64_t step,
                                                  RunResult& result) {
  std::vector<std::string> kept;
  std::ifstream in(path);
  if (!in) return kept;  // no log yet: nothing to keep
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object() || !j.contains("step") ||
        !j["step"].is_number_integer() || !j.contains("event") || !j["event"].is_string()) {
      return Status::Error("resume: metrics log '" + path + "' line " + std::to_string(line_no) +
                           " is not a tern metrics record");
    }
    const int64_t s = j["step"].get<int64_t>();
    if (s > step) continue;  // computed after the checkpoint: recomputed now
    const std::string event = j["event"].get<std::string>();
    if (event == "eval" && j.contains("val_loss") && j["val_loss"].is_number()) {
      result.curve.push_back({s, j["val_loss"].get<float>()});
    } else if (event == "step" && j.contains("loss") && j["loss"].is_number()) {
      StepStats st;
      st.step = s;
      st.loss = j["loss"].get<float>();
      st.lr = j.value("lr", 0.0);
      st.grad_norm = j.value("grad_norm", 0.0);
      st.tokens = j.value("tokens", int64_t{0});
      result.steps.push_back(st);
    }
    kept.push_back(line);
  }
  return kept;
}

}  // namespace

Result<RunResult> run_training(BitNetModel& model, Trainer& trainer, const RunOptions& options) {
  const TrainConfig& config = trainer.config();
  if (options.eval_every < 1 || options.log_every < 1 || options.checkpoint_every < 0) {
    return Status::Error("run: eval interval " + std::to_string(options.eval_every) +
                         ", log interval " + std::to_string(options.log_every) +
                         " and checkpoint interval " + std::to_string(options.checkpoint_every) +
                         " must be ≥ 1, ≥ 1 and ≥ 0");
  }
  if (options.resume && options.checkpoint_path.empty()) {
    return Status::Error("run: --resume needs a checkpoint path");
  }
  RunResult result;
  std::vector<std::string> kept_metrics;
  if (options.resume) {
    if (!std::filesystem::exists(options.checkpoint_path)) {
      return Status::Error("resume: checkpoint '" + options.checkpoint_path + "' does not exist");
    }
    TERN_RETURN_IF_ERROR(load_checkpoint(options.checkpoint_path, model, trainer));
    result.resumed_from = trainer.steps_done();
    if (!options.metrics_path.empty()) {
      TERN_ASSIGN_OR_RETURN(kept_metrics,
                            previous_metrics(options.metrics_path, result.resumed_from, result));
    }
  }
  std::optional<MetricsLog> metrics;
  if (!options.metrics_path.empty()) {
    TERN_ASSIGN_OR_RETURN(MetricsLog log,
                          MetricsLog::open(options.metrics_path, MetricsLog::Mode::kTruncate));
    for (const std::string& line : kept_metrics) {
      TERN_RETURN_IF_ERROR(log.write(nlohmann::json::parse(line)));
    }
    metrics.emplace(std::move(log));
  }

  auto emit = [&](const nlohmann::json& record) -> Status {
    if (options.json && !options.quiet) {
      std::printf("%s\n", record.dump().c_str());
      std::fflush(stdout);
    }
    return metrics ? metrics->write(record) : Status::Ok();
  };
  auto evaluate = [&](int64_t step) -> Status {
    const float val = trainer.evaluate();
    result.curve.push_back({step, val});
    if (!options.json && !options.quiet) {
      std::printf("step %6lld  validation loss %.4f  perplexity %.2f\n",
                  static_cast<long long>(step), val, portable_exp(static_cast<double>(val)));
      std::fflush(stdout);
    }
    return emit({{"event", "eval"}, {"step", step}, {"val_loss", val}});
  };
  auto checkpoint = [&]() -> Status {
    if (options.checkpoint_path.empty()) return Status::Ok();
    TERN_RETURN_IF_ERROR(save_checkpoint(options.checkpoint_path, model, trainer));
    return emit({{"event", "checkpoint"},
                 {"step", trainer.steps_done()},
                 {"path", options.checkpoint_path}});
  };

  StopSignals signals;
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  int64_t tokens = 0;
  if (!options.resume) TERN_RETURN_IF_ERROR(evaluate(0));
  while (trainer.steps_done() < config.steps) {
    if (signals.stop_requested() ||
        (options.stop_at_step > 0 && trainer.steps_done() >= options.stop_at_step)) {
      result.interrupted = true;
      break;
    }
    const StepStats stats = trainer.step();
    tokens += stats.tokens;
    result.steps.push_back(stats);
    const int64_t s = stats.step;
    const double secs = elapsed();
    const double tok_s = static_cast<double>(tokens) / std::max(secs, 1e-9);
    TERN_RETURN_IF_ERROR(emit({{"event", "step"},
                               {"step", s},
                               {"loss", stats.loss},
                               {"lr", stats.lr},
                               {"grad_norm", stats.grad_norm},
                               {"tokens", stats.tokens},
                               {"tokens_per_s", tok_s},
                               {"elapsed_s", secs}}));
    if (!options.json && !options.quiet && (s % options.log_every == 0 || s == config.steps)) {
      const double per_step = secs / static_cast<double>(s - result.resumed_from);
      std::printf("step %6lld/%lld  loss %.4f  lr %.2e  |g| %.3f  %.0f tok/s  ETA %s\n",
                  static_cast<long long>(s), static_cast<long long>(config.steps), stats.loss,
                  stats.lr, stats.grad_norm, tok_s,
                  format_duration(per_step * static_cast<double>(config.steps - s)).c_str());
      std::fflush(stdout);
    }
    if (s % options.eval_every == 0 || s == config.steps) TERN_RETURN_IF_ERROR(evaluate(s));
    if (options.checkpoint_every > 0 && s % options.checkpoint_every == 0 && s < config.steps) {
      TERN_RETURN_IF_ERROR(checkpoint());
    }
  }
  // The final state (or the interrupted one) is always checkpointed, so a
  // finished run can be extended and an interrupted one resumed.
  TERN_RETURN_IF_ERROR(checkpoint());
  result.steps_done = trainer.steps_done();
  result.seconds = elapsed();
  result.tokens_per_second = static_cast<double>(tokens) / std::max(result.seconds, 1e-9);
  result.peak_rss_bytes = peak_rss_bytes();
  if (!options.report_path.empty()) {
    TERN_RETURN_IF_ERROR(write_html_report(options.report_path, make_run_report(result, options)));
  }
  return result;
}

RunReport make_run_report(const RunResult& result, const RunOptions& options) {
  RunReport report;
  report.title = options.title;
  auto fmt = [](const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return std::string(buf);
  };
  report.summary.push_back({"steps", std::to_string(result.steps_done)});
  if (!result.curve.empty()) {
    report.summary.push_back(
        {"validation loss (first)", fmt("%.4f", result.curve.front().val_loss)});
    report.summary.push_back({"validation loss (last)", fmt("%.4f", result.curve.back().val_loss)});
    report.summary.push_back(
        {"validation perplexity (last)", fmt("%.2f", portable_exp(result.curve.back().val_loss))});
  }
  report.summary.push_back({"throughput", fmt("%.0f tokens/s", result.tokens_per_second)});
  report.summary.push_back({"wall time (this process)", fmt("%.1f s", result.seconds)});
  report.summary.push_back(
      {"peak resident memory",
       fmt("%.1f MiB", static_cast<double>(result.peak_rss_bytes) / 1048576.0)});
  if (result.resumed_from > 0) {
    report.summary.push_back({"resumed from step", std::to_string(result.resumed_from)});
  }
  if (result.interrupted) report.summary.push_back({"status", "interrupted"});

  Chart loss{"Loss", "step", "loss (nats/token)", {}, false};
  Series train{"training loss", {}};
  for (const StepStats& s : result.steps) {
    train.points.push_back({static_cast<double>(s.step), s.loss});
  }
  Series val{"validation loss", {}};
  for (const EvalPoint& p : result.curve)
    val.points.push_back({static_cast<double>(p.step), p.val_loss});
  loss.series = {std::move(train), std::move(val)};
  report.charts.push_back(std::move(loss));
  Chart lr{"Learning rate", "step", "learning rate", {}, false};
  Series lr_series{"lr", {}};
  for (const StepStats& s : result.steps)
    lr_series.points.push_back({static_cast<double>(s.step), s.lr});
  lr.series = {std::move(lr_series)};
  report.charts.push_back(std::move(lr));
  report.config = options.config_rows;
  return report;
}

}  // namespace tern
