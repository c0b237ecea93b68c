// Training-step throughput of the engine, printed as JSON.
//
// For each case: build the model (random init), run one warm-up step, then time
// `steps` optimizer steps (forward + backward + clip + AdamW) on synthetic
// tokens and report tokens per second. Usage:
//   tern_bench_train [--threads N] [--steps N] [--quick]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/thread_pool.h"
#include "model/bitnet.h"
#include "optim/adamw.h"

namespace {

struct Case {
  const char* preset;
  bool lora;
  int64_t batch;
  int64_t seq;
};

double run_case(const Case& c, int steps) {
  tern::ModelConfig config = tern::preset_config(c.preset).value();
  tern::RandomInitSource init(1);
  tern::LoraConfig lora;
  lora.rank = 8;
  tern::BitNetModel model = c.lora ? tern::BitNetModel::create_lora(config, lora, init, 2).value()
                                   : tern::BitNetModel::create_full(config, init).value();
  tern::AdamW adamw(model.layout(), tern::AdamWConfig{});
  std::vector<int32_t> tokens(static_cast<size_t>(c.batch * c.seq));
  std::vector<int32_t> labels(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<int32_t>((i * 2654435761u) % static_cast<uint64_t>(config.vocab));
    labels[i] = static_cast<int32_t>((i * 40503u + 7) % static_cast<uint64_t>(config.vocab));
  }
  auto step = [&] {
    model.grads().zero();
    model.forward(tokens, labels, c.batch, c.seq);
    model.backward(1.0f);
    tern::clip_grad_norm(model.grads(), model.layout(), 1.0);
    adamw.step(model.params(), model.grads(), 1e-3);
  };
  step();  // warm-up: allocates the activation workspace
  const auto start = std::chrono::steady_clock::now();
  for (int s = 0; s < steps; ++s) step();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(steps * c.batch * c.seq) / seconds;
}

}  // namespace

int main(int argc, char** argv) {
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  int steps = 5;
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--threads") == 0 && i + 1 < argc) {
      threads = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--steps") == 0 && i + 1 < argc) {
      steps = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--quick") == 0) {
      quick = true;
    } else {
      std::fprintf(stderr, "tern_bench_train: unknown argument '%s'\n", argv[i]);
      return 2;
    }
  }
  if (threads < 1 || steps < 1) {
    std::fprintf(stderr, "tern_bench_train: --threads and --steps must be >= 1\n");
    return 2;
  }
  tern::set_num_threads(threads);
  std::vector<Case> cases = {{"tiny", false, 8, 128}, {"tiny", true, 8, 128}};
  if (!quick) {
    cases.push_back({"bitnet-125m", true, 1, 128});
    cases.push_back({"bitnet-125m", false, 1, 128});
  }
  std::printf(
      "{\"benchmark\":\"train_step\",\"engine\":\"scalar-reference\",\"threads\":%d,"
      "\"steps\":%d,\"results\":[",
      threads, steps);
  for (size_t i = 0; i < cases.size(); ++i) {
    const Case& c = cases[i];
    const double tps = run_case(c, c.lora || std::string(c.preset) == "tiny" ? steps : 2);
    std::printf(
        "%s{\"preset\":\"%s\",\"mode\":\"%s\",\"batch\":%lld,\"seq\":%lld,"
        "\"tokens_per_s\":%.1f}",
        i == 0 ? "" : ",", c.preset, c.lora ? "lora" : "full", static_cast<long long>(c.batch),
        static_cast<long long>(c.seq), tps);
    std::fflush(stdout);
  }
  std::printf("]}\n");
  return 0;
}
