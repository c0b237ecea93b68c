// `tern bench`: benchmarks that print JSON.
//
//   tern bench memory [--json]    peak resident memory (VmHWM) of one LoRA fine-tuning
//                                 step of bitnet-1b with a packed ternary base against
//                                 the same architecture with an F16 dense base; each
//                                 variant runs in its own child process (this binary,
//                                 re-executed with the hidden --child flag).
//   tern bench finetune [--json]  tokens/s of LoRA training (forward + backward + AdamW)
//                                 of bitnet-125m: warm-up steps, then a timed window.
//   tern bench kernels [--json]   CPU kernel throughput on the presets' linear shapes,
//                                 DRAM matrix-vector and copy bandwidth (bench_kernels.cpp).
//   tern bench demo, net, swarm   bench_demo.cpp, bench_net.cpp, bench_swarm.cpp.
//
// Hidden flags for quick runs (tests): --preset and --seq override the workload.
// Both use random weights, batch 1, LoRA rank 8 on q, k, v, o, synthetic tokens.
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "cli/bench_demo.h"
#include "cli/bench_kernels.h"
#include "cli/bench_net.h"
#include "cli/bench_swarm.h"
#include "cli/commands.h"
#include "cli/train_flags.h"
#include "core/thread_pool.h"
#include "model/bitnet.h"
#include "optim/adamw.h"
#include "train/report.h"

namespace tern::cli {
namespace bench_cmd {
namespace {

struct Workload {
  std::string preset;
  int64_t seq = 256;
  // finetune: TernaryBackward and ActivationMemory, `tern finetune`'s defaults
  std::string ternary_backward = "int8";
  std::string activations = "auto";
};

Result<BitNetModel> lora_model(const ModelConfig& config, WeightSource& source) {
  LoraConfig lora;
  lora.rank = 8;
  return BitNetModel::create_lora(config, lora, source, /*seed=*/2);
}

void synthetic_batch(const ModelConfig& c, int64_t n, std::vector<int32_t>& tokens,
                     std::vector<int32_t>& labels) {
  tokens.resize(static_cast<size_t>(n));
  labels.resize(tokens.size());
  for (size_t i = 0; i < tokens.size(); ++i) {
    tokens[i] = static_cast<int32_t>((i * 2654435761u) % static_cast<uint64_t>(c.vocab));
    labels[i] = static_cast<int32_t>((i * 40503u + 7) % static_cast<uint64_t>(c.vocab));
  }
}

void apply_workload(const Workload& w, BitNetModel& model) {
  model.set_ternary_backward(w.ternary_backward == "int8" ? TernaryBackward::kInt8
                                                          : TernaryBackward::kExact);
  apply_activations_flag(w.activations, model);
}

// One process, one variant: build, one step, report what it held.
int memory_child(const Workload& w, const std::string& variant) {
  Result<ModelConfig> preset = preset_config(w.preset);
  if (!preset.ok()) {
    std::fprintf(stderr, "tern bench memory: %s\n", preset.status().message().c_str());
    return 1;
  }
  ModelConfig config = preset.value();
  if (variant == "f16") config.linear = LinearKind::kDense;
  // An "F16 checkpoint": the embedding (tied head) is F16 in both variants, and
  // so are the dense linears of the f16 variant; the ternary variant packs its
  // linears at 2 bits.
  RandomInitSource source(1, 0.02f, /*f16=*/true);
  const auto start = std::chrono::steady_clock::now();
  Result<BitNetModel> created = lora_model(config, source);
  if (!created.ok()) {
    std::fprintf(stderr, "tern bench memory: %s\n", created.status().message().c_str());
    return 1;
  }
  BitNetModel model = std::move(created).value();
  apply_workload(w, model);
  const int64_t build_peak = peak_rss_bytes();
  AdamW adamw(model.layout(), AdamWConfig{});
  std::vector<int32_t> tokens, labels;
  synthetic_batch(config, w.seq, tokens, labels);
  model.grads().zero();
  const float loss = model.forward(tokens, labels, 1, w.seq);
  model.backward(1.0f);
  adamw.step(model.params(), model.grads(), 1e-3);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const BitNetModel::MemoryUse use = model.memory_use();
  const bool ternary = config.linear == LinearKind::kTernary;
  const int64_t embedding_bytes = config.vocab * config.hidden * 2;  // F16, tied
  nlohmann::json out = {
      {"variant", variant},
      {"peak_bytes", peak_rss_bytes()},
      {"build_peak_bytes", build_peak},
      {"base_linear_bytes", ternary ? use.packed_linear_bytes : use.f16_bytes - embedding_bytes},
      {"embedding_bytes", embedding_bytes},
      {"frozen_fp32_bytes", use.frozen_f32_bytes},
      {"lora_params_grads_bytes", use.trainable_bytes},
      {"adamw_moments_bytes", use.trainable_bytes},  // m and v: one params-sized buffer each
      {"activation_workspace_bytes", use.workspace_bytes},
      {"activations_used", describe_activations(model)},
      {"loss", loss},
      {"seconds", seconds}};
  std::printf("%s\n", out.dump().c_str());
  return 0;
}

// Runs this binary as a memory child and parses the JSON line it prints.
Result<nlohmann::json> run_child(const Workload& w, const std::string& variant) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return Status::Error("bench memory: pipe() failed");
  const std::string threads = std::to_string(default_pool().num_threads());
  const std::string seq = std::to_string(w.seq);
  std::vector<std::string> args = {"tern",  "--threads", threads,  "bench", "memory", "--child",
                                   variant, "--preset",  w.preset, "--seq", seq};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return Status::Error("bench memory: fork() failed");
  if (pid == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    execv("/proc/self/exe", argv.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  std::string text;
  char buffer[4096];
  for (ssize_t got; (got = read(pipe_fds[0], buffer, sizeof(buffer))) > 0;) {
    text.append(buffer, static_cast<size_t>(got));
  }
  close(pipe_fds[0]);
  int wstatus = 0;
  waitpid(pid, &wstatus, 0);
  if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0) {
    return Status::Error("bench memory: the " + variant + " child failed (status " +
                         std::to_string(wstatus) + ")");
  }
  nlohmann::json parsed = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded() || !parsed.contains("peak_bytes")) {
    return Status::Error("bench memory: the " + variant + " child printed no report: " + text);
  }
  return parsed;
}

int memory_parent(const Workload& w, bool json) {
  Result<nlohmann::json> ternary = run_child(w, "ternary");
  if (!ternary.ok()) {
    std::fprintf(stderr, "tern %s\n", ternary.status().message().c_str());
    return 1;
  }
  Result<nlohmann::json> f16 = run_child(w, "f16");
  if (!f16.ok()) {
    std::fprintf(stderr, "tern %s\n", f16.status().message().c_str());
    return 1;
  }
  const auto t = ternary.value()["peak_bytes"].get<int64_t>();
  const auto f = f16.value()["peak_bytes"].get<int64_t>();
  const double reduction = 1.0 - static_cast<double>(t) / static_cast<double>(f);
  const nlohmann::json out = {{"benchmark", "lora_memory"},
                              {"preset", w.preset},
                              {"seq", w.seq},
                              {"batch", 1},
                              {"rank", 8},
                              {"ternary_backward", w.ternary_backward},
                              {"activations", w.activations},
                              {"threads", default_pool().num_threads()},
                              {"ternary_peak_bytes", t},
                              {"f16_peak_bytes", f},
                              {"reduction", reduction},
                              {"ternary", ternary.value()},
                              {"f16", f16.value()}};
  if (json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf(
        "%s, seq %lld, LoRA r=8 (q,k,v,o): peak resident %.1f MB ternary vs %.1f MB F16, "
        "%.1f%% less\n",
        w.preset.c_str(), static_cast<long long>(w.seq), t / 1e6, f / 1e6, 100.0 * reduction);
  }
  return 0;
}

int finetune(const Workload& w, int warmup, int steps, bool json) {
  Result<ModelConfig> config = preset_config(w.preset);
  if (!config.ok()) {
    std::fprintf(stderr, "tern bench finetune: %s\n", config.status().message().c_str());
    return 1;
  }
  RandomInitSource source(1);
  Result<BitNetModel> created = lora_model(config.value(), source);
  if (!created.ok()) {
    std::fprintf(stderr, "tern bench finetune: %s\n", created.status().message().c_str());
    return 1;
  }
  BitNetModel model = std::move(created).value();
  apply_workload(w, model);
  AdamW adamw(model.layout(), AdamWConfig{});
  std::vector<int32_t> tokens, labels;
  synthetic_batch(config.value(), w.seq, tokens, labels);
  float loss = 0.0f;
  auto step = [&] {
    model.grads().zero();
    loss = model.forward(tokens, labels, 1, w.seq);
    model.backward(1.0f);
    adamw.step(model.params(), model.grads(), 1e-3);
  };
  for (int i = 0; i < warmup; ++i) step();
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) step();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double tokens_per_s = static_cast<double>(steps * w.seq) / seconds;
  const nlohmann::json out = {{"benchmark", "finetune"},
                              {"preset", w.preset},
                              {"seq", w.seq},
                              {"batch", 1},
                              {"rank", 8},
                              {"ternary_backward", w.ternary_backward},
                              {"activations", w.activations},
                              {"activations_used", describe_activations(model)},
                              {"threads", default_pool().num_threads()},
                              {"warmup_steps", warmup},
                              {"steps", steps},
                              {"seconds", seconds},
                              {"tokens_per_s", tokens_per_s},
                              {"final_loss", loss},
                              {"peak_rss_bytes", peak_rss_bytes()}};
  if (json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("%s LoRA r=8, seq %lld: %.1f tokens/s over %d steps (%d threads)\n",
                w.preset.c_str(), static_cast<long long>(w.seq), tokens_per_s, steps,
                default_pool().num_threads());
  }
  return 0;
}

}  // namespace
}  // namespace bench_cmd

Command add_bench_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "bench", "Benchmarks that print JSON (memory, finetune, kernels, demo, net, swarm)");
  app->require_subcommand(1);

  CLI::App* memory = app->add_subcommand(
      "memory", "Peak memory of a bitnet-1b LoRA step: ternary base vs F16 base");
  // The memory-lean LoRA step: exact input gradient, recomputed activations.
  auto memory_workload = std::make_shared<bench_cmd::Workload>(
      bench_cmd::Workload{"bitnet-1b", 256, "exact", "recompute"});
  auto memory_json = std::make_shared<bool>(false);
  auto child = std::make_shared<std::string>();
  memory->add_flag("--json", *memory_json, "Print one JSON object");
  memory->add_option("--child", *child)->check(CLI::IsMember({"ternary", "f16"}))->group("");
  memory->add_option("--preset", memory_workload->preset)->group("");
  memory->add_option("--seq", memory_workload->seq)->check(CLI::Range(1, 1 << 20))->group("");

  CLI::App* tune =
      app->add_subcommand("finetune", "Tokens/s of LoRA training (forward + backward + AdamW)");
  auto tune_workload =
      std::make_shared<bench_cmd::Workload>(bench_cmd::Workload{"bitnet-125m", 256});
  auto tune_json = std::make_shared<bool>(false);
  auto steps = std::make_shared<int>(3);
  auto warmup = std::make_shared<int>(1);
  tune->add_flag("--json", *tune_json, "Print one JSON object");
  tune->add_option("--steps", *steps, "Timed steps (default 3)")->check(CLI::Range(1, 100000));
  tune->add_option("--warmup", *warmup, "Untimed steps first (default 1)")
      ->check(CLI::Range(0, 100000));
  tune->add_option("--ternary-backward", tune_workload->ternary_backward,
                   "Input gradient through ternary linears: exact (fp32) or int8 (default int8, "
                   "as tern finetune)")
      ->check(CLI::IsMember({"exact", "int8"}));
  add_activations_flag(tune, &tune_workload->activations);
  tune->add_option("--preset", tune_workload->preset)->group("");
  tune->add_option("--seq", tune_workload->seq)->check(CLI::Range(1, 1 << 20))->group("");

  const Command kernels = add_bench_kernels_command(*app);
  const Command demo = add_bench_demo_command(*app);
  const Command net = add_bench_net_command(*app);
  const Command swarm = add_bench_swarm_command(*app);

  return {app, [=]() -> int {
            if (kernels.app->parsed()) return kernels.run();
            if (demo.app->parsed()) return demo.run();
            if (net.app->parsed()) return net.run();
            if (swarm.app->parsed()) return swarm.run();
            if (memory->parsed()) {
              if (!child->empty()) return bench_cmd::memory_child(*memory_workload, *child);
              return bench_cmd::memory_parent(*memory_workload, *memory_json);
            }
            return bench_cmd::finetune(*tune_workload, *warmup, *steps, *tune_json);
          }};
}

}  // namespace tern::cli
