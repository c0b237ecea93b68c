#include "train/pretrain_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "core/rng.h"

namespace tern {

Result<PretrainSummary> run_pretraining(const PretrainOptions& options, const TokenDataset& data,
                                        std::optional<BitNetModel>* model_out) {
  if (options.eval_every < 1) {
    return Status::Error("pretrain: eval interval " + std::to_string(options.eval_every) +
                         " must be ≥ 1");
  }
  RandomInitSource init(options.init_seed);
  TERN_ASSIGN_OR_RETURN(BitNetModel model, BitNetModel::create_full(options.model, init));
  TERN_ASSIGN_OR_RETURN(Trainer trainer, Trainer::create(model, data, options.train));

  PretrainSummary summary;
  auto report_eval = [&](int64_t step) {
    const float val = trainer.evaluate();
    summary.curve.push_back({step, val});
    if (options.quiet) return;
    if (options.json) {
      std::printf("{\"event\":\"eval\",\"step\":%lld,\"val_loss\":%.6f}\n",
                  static_cast<long long>(step), val);
    } else {
      std::printf("step %5lld  validation loss %.4f  (%.3f bits/byte)\n",
                  static_cast<long long>(step), val, val / std::log(2.0));
    }
    std::fflush(stdout);
  };

  const auto start = std::chrono::steady_clock::now();
  int64_t tokens = 0;
  report_eval(0);
  for (int64_t s = 1; s <= options.train.steps; ++s) {
    const StepStats stats = trainer.step();
    tokens += stats.tokens;
    const double elapsed =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!options.quiet && (s % 10 == 0 || s == options.train.steps)) {
      if (options.json) {
        std::printf(
            "{\"event\":\"step\",\"step\":%lld,\"loss\":%.6f,\"lr\":%.6g,"
            "\"grad_norm\":%.4f,\"tokens_per_s\":%.1f}\n",
            static_cast<long long>(s), stats.loss, stats.lr, stats.grad_norm,
            tokens / std::max(elapsed, 1e-9));
      } else {
        std::printf("step %5lld  loss %.4f  lr %.2e  |g| %.3f  %.0f tok/s\n",
                    static_cast<long long>(s), stats.loss, stats.lr, stats.grad_norm,
                    tokens / std::max(elapsed, 1e-9));
      }
      std::fflush(stdout);
    }
    if (s % options.eval_every == 0 || s == options.train.steps) report_eval(s);
  }
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  summary.tokens_per_second = tokens / std::max(summary.seconds, 1e-9);
  if (model_out != nullptr) model_out->emplace(std::move(model));
  return summary;
}

std::string sample_bytes(BitNetModel& model, const std::string& prompt, int64_t count,
                         float temperature, uint64_t seed) {
  Rng rng(seed);
  std::vector<int32_t> context(prompt.begin(), prompt.end());
  for (int32_t& t : context) t &= 0xff;
  std::string out;
  const int64_t vocab = model.config().vocab;
  for (int64_t i = 0; i < count; ++i) {
    const int64_t window =
        std::min<int64_t>(static_cast<int64_t>(context.size()), model.config().max_seq);
    const std::span<const int32_t> tokens(context.data() + context.size() - window,
                                          static_cast<size_t>(window));
    model.forward(tokens, {}, 1, window);
    const float* last = model.logits().data() + (window - 1) * vocab;
    int32_t next = 0;
    if (temperature <= 0.0f) {
      next = static_cast<int32_t>(std::max_element(last, last + vocab) - last);
    } else {
      const float top = *std::max_element(last, last + vocab);
      std::vector<double> weights(static_cast<size_t>(vocab));
      double total = 0.0;
      for (int64_t v = 0; v < vocab; ++v) {
        weights[static_cast<size_t>(v)] = std::exp((last[v] - top) / temperature);
        total += weights[static_cast<size_t>(v)];
      }
      double pick = rng.uniform() * total;
      for (int64_t v = 0; v < vocab; ++v) {
        pick -= weights[static_cast<size_t>(v)];
        if (pick <= 0.0 || v == vocab - 1) {
          next = static_cast<int32_t>(v);
          break;
        }
      }
    }
    context.push_back(next);
    out.push_back(static_cast<char>(next));
  }
  return out;
}

}  // namespace tern
