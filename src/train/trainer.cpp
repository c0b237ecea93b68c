#include "train/trainer.h"

#include <string>

namespace tern {

Status TrainConfig::validate() const {
  auto bad = [](const char* what, int64_t v) {
    return Status::Error(std::string("train config: ") + what + " = " + std::to_string(v) +
                         " (must be ≥ 1)");
  };
  if (steps < 1) return bad("steps", steps);
  if (batch < 1) return bad("batch", batch);
  if (seq < 1) return bad("seq", seq);
  if (grad_accum < 1) return bad("grad_accum", grad_accum);
  if (eval_batches < 1) return bad("eval_batches", eval_batches);
  LrSchedule s = schedule;
  s.total_steps = steps;
  return s.validate();
}

Result<Trainer> Trainer::create(BitNetModel& model, const TokenDataset& data,
                                const TrainConfig& config) {
  TERN_RETURN_IF_ERROR(config.validate());
  TERN_RETURN_IF_ERROR(data.check_window(config.seq));
  if (config.seq > model.config().max_seq) {
    return Status::Error(
        "train config: seq = " + std::to_string(config.seq) +
        " exceeds the model's max_seq = " + std::to_string(model.config().max_seq));
  }
  if (data.vocab() > model.config().vocab) {
    return Status::Error("dataset vocab " + std::to_string(data.vocab()) +
                         " exceeds the model's vocab " + std::to_string(model.config().vocab));
  }
  return Trainer(model, data, config);
}

Trainer::Trainer(BitNetModel& model, const TokenDataset& data, const TrainConfig& config)
    : model_(&model),
      data_(&data),
      config_(config),
      adamw_(model.layout(), config.adamw),
      rng_(config.seed),
      tokens_(static_cast<size_t>(config.batch * config.seq)),
      labels_(tokens_.size()) {
  config_.schedule.total_steps = config.steps;
}

StepStats Trainer::step() {
  StepStats stats;
  model_->grads().zero();
  const float weight = 1.0f / static_cast<float>(config_.grad_accum);
  double loss_sum = 0.0;
  for (int64_t micro = 0; micro < config_.grad_accum; ++micro) {
    data_->sample_train(rng_, config_.batch, config_.seq, tokens_, labels_);
    loss_sum += model_->forward(tokens_, labels_, config_.batch, config_.seq);
    model_->backward(weight);
  }
  stats.grad_norm =
      config_.clip > 0.0 ? clip_grad_norm(model_->grads(), model_->layout(), config_.clip) : 0.0;
  stats.lr = config_.schedule.lr_at(steps_done_);
  adamw_.step(model_->params(), model_->grads(), stats.lr);
  ++steps_done_;
  stats.step = steps_done_;
  stats.loss = static_cast<float>(loss_sum / static_cast<double>(config_.grad_accum));
  stats.tokens = config_.grad_accum * config_.batch * config_.seq;
  return stats;
}

void Trainer::restore(int64_t steps_done, const Rng::State& rng_state) {
  TERN_CHECK(steps_done >= 0);
  steps_done_ = steps_done;
  rng_.restore(rng_state);
}

float Trainer::evaluate() {
  double sum = 0.0;
  for (int64_t i = 0; i < config_.eval_batches; ++i) {
    data_->val_batch(i, config_.eval_batches, config_.batch, config_.seq, tokens_, labels_);
    sum += model_->forward(tokens_, labels_, config_.batch, config_.seq);
  }
  return static_cast<float>(sum / static_cast<double>(config_.eval_batches));
}

}  // namespace tern
