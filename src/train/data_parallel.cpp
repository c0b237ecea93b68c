#include "train/data_parallel.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <optional>

#include "core/hash.h"
#include "core/rng.h"
#include "model/bitnet.h"
#include "model/weight_source.h"
#include "optim/demo_codec.h"

namespace tern {
namespace {

struct Worker {
  BitNetModel model;
  Rng rng;
  std::optional<AdamW> adamw;
  std::optional<DemoOptimizer> demo;
  FlatBuffer canonical;               // overlap mode: θ without the look-ahead
  std::vector<DemoUpdate> in_flight;  // overlap mode: last step's decoded updates
  double in_flight_lr = 0.0;
};

float validation_loss(BitNetModel& model, const TokenDataset& data, const DataParallelConfig& c,
                      std::vector<int32_t>& tokens, std::vector<int32_t>& labels) {
  double sum = 0.0;
  for (int64_t i = 0; i < c.eval_batches; ++i) {
    data.val_batch(i, c.eval_batches, c.batch, c.seq, tokens, labels);
    sum += model.forward(tokens, labels, c.batch, c.seq);
  }
  return static_cast<float>(sum / static_cast<double>(c.eval_batches));
}

std::string params_hash(const FlatBuffer& params) {
  return blake2b_256_hex(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(params.data()),
                                                  static_cast<size_t>(params.size()) * 4));
}

void apply_updates(const DemoPlan& plan, const std::vector<DemoUpdate>& updates, double lr,
                   FlatBuffer& params) {
  std::vector<const DemoUpdate*> ordered;
  for (const DemoUpdate& u : updates) ordered.push_back(&u);
  demo_apply(plan, ordered, lr, params);
}

}  // namespace

Status DataParallelConfig::validate() const {
  auto bad = [](const std::string& what) { return Status::Error("data-parallel config: " + what); };
  if (steps < 1) return bad("steps = " + std::to_string(steps) + " (must be ≥ 1)");
  if (batch < 1) return bad("batch = " + std::to_string(batch) + " (must be ≥ 1)");
  if (seq < 1) return bad("seq = " + std::to_string(seq) + " (must be ≥ 1)");
  if (eval_every < 0) return bad("eval_every = " + std::to_string(eval_every) + " (must be ≥ 0)");
  if (eval_batches < 1) {
    return bad("eval_batches = " + std::to_string(eval_batches) + " (must be ≥ 1)");
  }
  if (overlap && optimizer != ParallelOptimizer::kDemo) return bad("overlap needs DeMo");
  LrSchedule s = schedule;
  s.total_steps = steps;
  TERN_RETURN_IF_ERROR(s.validate());
  return demo.validate();
}

Result<DataParallelResult> train_data_parallel(
    const ModelConfig& config, std::span<const TokenDataset> shards,
    const DataParallelConfig& parallel,
    const std::function<void(const DataParallelProgress&)>& progress) {
  TERN_RETURN_IF_ERROR(parallel.validate());
  if (shards.empty()) return Status::Error("data-parallel: no worker shards");
  for (size_t w = 0; w < shards.size(); ++w) {
    TERN_RETURN_IF_ERROR(shards[w]
                             .check_window(parallel.seq)
                             .with_context("data-parallel: shard " + std::to_string(w)));
    if (shards[w].vocab() > config.vocab) {
      return Status::Error("data-parallel: shard " + std::to_string(w) + " has vocab " +
                           std::to_string(shards[w].vocab()) + " > the model's " +
                           std::to_string(config.vocab));
    }
  }
  if (parallel.seq > config.max_seq) {
    return Status::Error("data-parallel: seq " + std::to_string(parallel.seq) +
                         " exceeds the model's max_seq " + std::to_string(config.max_seq));
  }
  const auto start = std::chrono::steady_clock::now();
  const auto n_workers = static_cast<int64_t>(shards.size());
  LrSchedule schedule = parallel.schedule;
  schedule.total_steps = parallel.steps;
  const bool demo = parallel.optimizer == ParallelOptimizer::kDemo;

  DataParallelResult result;
  std::vector<std::unique_ptr<Worker>> workers;
  for (int64_t w = 0; w < n_workers; ++w) {
    RandomInitSource init(parallel.seed);
    TERN_ASSIGN_OR_RETURN(BitNetModel model, BitNetModel::create_full(config, init));
    workers.push_back(std::make_unique<Worker>(
        Worker{std::move(model),
               Rng(derive_seed(parallel.seed, "worker " + std::to_string(w))),
               {},
               {},
               {},
               {},
               0.0}));
  }
  const TensorLayout& layout = workers[0]->model.layout();
  std::optional<DemoPlan> plan;
  if (demo) {
    TERN_ASSIGN_OR_RETURN(DemoPlan p, DemoPlan::create(layout, parallel.demo));
    plan.emplace(std::move(p));
  }
  if (demo) result.demo_plan = plan->describe();
  for (auto& w : workers) {
    if (demo) {
      w->demo.emplace(*plan);
      if (parallel.overlap) {
        w->canonical = FlatBuffer(layout.buffer_size());
        std::memcpy(w->canonical.data(), w->model.params().data(),
                    static_cast<size_t>(layout.buffer_size()) * 4);
      }
    } else {
      w->adamw.emplace(w->model.layout(), parallel.adamw);
    }
  }

  result.workers = n_workers;
  result.params = layout.num_elements();
  std::vector<int32_t> tokens(static_cast<size_t>(parallel.batch * parallel.seq));
  std::vector<int32_t> labels(tokens.size());
  auto evaluate = [&](int64_t step) {
    // Replica 0 stands for all (they are compared at the end). In overlap mode
    // its model holds the look-ahead, so evaluate the canonical parameters.
    BitNetModel& model = workers[0]->model;
    if (parallel.overlap) {
      std::memcpy(model.params().data(), workers[0]->canonical.data(),
                  static_cast<size_t>(layout.buffer_size()) * 4);
    }
    result.eval_steps.push_back(step);
    result.val_loss.push_back(validation_loss(model, shards[0], parallel, tokens, labels));
  };
  evaluate(0);

  FlatBuffer mean_grads(demo ? 0 : layout.buffer_size());
  Rng arrival_rng(derive_seed(parallel.seed, "arrival order"));
  double payload_total = 0.0;
  for (int64_t step = 0; step < parallel.steps; ++step) {
    const double lr = schedule.lr_at(step);
    double loss_sum = 0.0;
    std::vector<std::vector<uint8_t>> payloads(static_cast<size_t>(n_workers));
    for (int64_t w = 0; w < n_workers; ++w) {
      Worker& worker = *workers[static_cast<size_t>(w)];
      if (parallel.overlap) {
        // The aggregate of the previous step is still in flight: compute on the
        // look-ahead, never on the canonical parameters.
        demo_lookahead(*plan, worker.canonical, worker.demo->momentum(), worker.in_flight_lr,
                       worker.model.params());
      }
      worker.model.grads().zero();
      shards[static_cast<size_t>(w)].sample_train(worker.rng, parallel.batch, parallel.seq, tokens,
                                                  labels);
      loss_sum += worker.model.forward(tokens, labels, parallel.batch, parallel.seq);
      worker.model.backward(1.0f);
      if (demo) {
        if (parallel.clip > 0.0) clip_grad_norm(worker.model.grads(), layout, parallel.clip);
        const DemoUpdate update = worker.demo->encode(worker.model.grads(), lr, step + 1);
        payloads[static_cast<size_t>(w)] = encode_demo_update(*plan, update);
      } else {
        // Fixed-order fp32 all-reduce: worker 0 + worker 1 + …, then the mean.
        float* sum = mean_grads.data();
        const float* g = worker.model.grads().data();
        for (int64_t i = 0; i < mean_grads.size(); ++i) sum[i] = w == 0 ? g[i] : sum[i] + g[i];
      }
    }
    double step_bytes = 0.0;
    if (demo) {
      for (const auto& p : payloads) step_bytes += static_cast<double>(p.size());
      step_bytes /= static_cast<double>(n_workers);
      for (auto& worker : workers) {
        // Payloads arrive in any order; decode them as they come, then sort into
        // the canonical order (sender = batch range) before applying.
        std::vector<int64_t> arrival(static_cast<size_t>(n_workers));
        for (int64_t i = 0; i < n_workers; ++i) arrival[static_cast<size_t>(i)] = i;
        for (int64_t i = n_workers - 1; i > 0; --i) {
          std::swap(arrival[static_cast<size_t>(i)],
                    arrival[arrival_rng.below(static_cast<uint64_t>(i + 1))]);
        }
        std::vector<std::pair<int64_t, DemoUpdate>> received;
        for (int64_t sender : arrival) {
          Result<DemoUpdate> decoded =
              decode_demo_update(*plan, payloads[static_cast<size_t>(sender)]);
          TERN_RETURN_IF_ERROR(decoded.status());
          received.emplace_back(sender * parallel.batch, std::move(decoded).value());
        }
        std::sort(received.begin(), received.end(),
                  [](const auto& a, const auto& b) { return a.first < b.first; });
        std::vector<DemoUpdate> ordered;
        for (auto& r : received) ordered.push_back(std::move(r.second));
        if (parallel.overlap) {
          if (step > 0)
            apply_updates(*plan, worker->in_flight, worker->in_flight_lr, worker->canonical);
          worker->in_flight = std::move(ordered);
          worker->in_flight_lr = lr;
        } else {
          apply_updates(*plan, ordered, lr, worker->model.params());
        }
      }
    } else {
      step_bytes = 4.0 * static_cast<double>(result.params);
      const float inv = 1.0f / static_cast<float>(n_workers);
      for (int64_t i = 0; i < mean_grads.size(); ++i) mean_grads.data()[i] *= inv;
      if (parallel.clip > 0.0) clip_grad_norm(mean_grads, layout, parallel.clip);
      for (auto& worker : workers) worker->adamw->step(worker->model.params(), mean_grads, lr);
    }
    payload_total += step_bytes;
    result.final_train_loss = static_cast<float>(loss_sum / static_cast<double>(n_workers));
    if (progress) progress({step + 1, result.final_train_loss, step_bytes});
    const bool last = step + 1 == parallel.steps;
    if (last && parallel.overlap) {
      for (auto& worker : workers) {
        apply_updates(*plan, worker->in_flight, worker->in_flight_lr, worker->canonical);
        worker->in_flight.clear();
      }
    }
    if (last || (parallel.eval_every > 0 && (step + 1) % parallel.eval_every == 0)) {
      evaluate(step + 1);
    }
  }

  result.initial_val_loss = result.val_loss.front();
  result.final_val_loss = result.val_loss.back();
  result.payload_bytes_per_step = payload_total / static_cast<double>(parallel.steps);
  auto final_params = [&](const Worker& w) -> const FlatBuffer& {
    return parallel.overlap ? w.canonical : w.model.params();
  };
  result.weight_hash = params_hash(final_params(*workers[0]));
  result.replicas_identical = true;
  for (const auto& w : workers) {
    result.replicas_identical &= params_hash(final_params(*w)) == result.weight_hash;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace tern
