// `tern bench kernels [--json] [--threads N] [--quick] [--min-time S]`
//
// For bitnet-125m and bitnet-1b, every distinct (out, in) shape of the q, k/v, o,
// gate/up and down linears (derived from the preset), and T ∈ {1, 64, 512} rows:
//  - the ternary product cpu::bitlinear_forward, GOPS = 2·T·in·out / time, on
//    activations quantized beforehand by cpu::quantize_activations_absmax (timed
//    on its own);
//  - fp32 products on the same shapes, GFLOP/s: cpu::linear_forward (tern's SIMD
//    kernel, the reference's bits), OpenBLAS sgemm single-threaded on fixed tiles
//    over tern's pool (cpu::openblas_linear_forward), and one cblas_sgemm call
//    threaded by OpenBLAS itself over the same number of threads;
//  - the transposed product cpu::bitlinear_backward_input_int8 on w.transposed
//    (built before timing) with dY quantized like an activation, and the exact
//    fp32 input gradient cpu::bitlinear_backward_input;
//  - at T = 1, weight bytes per second (w.packed.size() / time), the matrix in cache.
// Then the T = 1 product over every linear of enough bitnet-1b layers for ≥ 256 MB
// of packed weights (each call reads its weights from DRAM), a STREAM-like copy
// of 2 × 256 MB over the pool (bytes read + written per second, as STREAM counts
// them) and a read of 256 MB, alternating over 4 rounds.
//  - copy: memcpy. GCC 12 at -O2 compiles STREAM's Copy loop into a memcpy
//    call (with or without OpenMP; checked in the disassembly), and glibc
//    copies with non-temporal stores above its threshold (3/4 of the L3), which
//    STREAM's rule of arrays ≥ 4× the caches always exceeds. The key's denominator.
//  - stream_scale: STREAM's Scale kernel, b = q·a, with q = 1 read at run time so
//    the loop stays vector loads and ordinary stores. Those stores read each
//    destination line first (write-allocate) without it being counted.
//  - read: cpu::sum_words, full-width vector loads, the fastest a kernel that
//    only reads can go; a kernel that only reads tops out at read / copy.
// Every time is the best single call of repeated runs lasting at least
// --min-time seconds.
//
// Summary keys, top level of the JSON (bitnet-1b shapes, sums over its distinct shapes):
//   ternary_vs_sgemm_t512  ternary GOPS / OpenBLAS threaded sgemm GFLOP/s at T = 512
//                          (= Σ sgemm time / Σ ternary time)
//   gemv_bw_fraction       DRAM matrix-vector weight GB/s / copy GB/s (memcpy)
//   gemv_vs_stream_scale   the same over the Scale kernel's GB/s
//   gemv_vs_read           the same over the read's GB/s
//   transposed_vs_forward  Σ transposed time / Σ forward time at T = 512
// OpenBLAS picks its kernels by CPU model; where it picked a core less capable than
// what the CPU runs (0.3.21 falls back to Prescott on CPUs it does not know), the
// command re-runs itself with OPENBLAS_CORETYPE=SkylakeX or Haswell, and the JSON
// names the core used (openblas_core, openblas_coretype_env).
// --quick: bitnet-1b's two smallest shapes, one repetition, small arrays (a smoke
// test: the weights are then not DRAM-resident).
#include "cli/bench_kernels.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "core/streamed_memory.h"
#include "core/thread_pool.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/ternary.h"
#include "kernels/cpu/word_sum.h"
#include "model/config.h"

namespace tern::cli {
namespace bench_kernels_cmd {
namespace {

struct Options {
  bool json = false;
  bool quick = false;
  int threads = 0;
  double min_time = 0.3;
};

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Best time of one call of fn: one warm-up call, then samples of enough calls
// to last ≥ 1 ms each, until min_time has passed (at least `min_samples`).
// --quick: the warm-up and one timed call.
double best_time(const std::function<void()>& fn, const Options& o, int min_samples = 3) {
  fn();
  auto start = Clock::now();
  fn();
  const double first = seconds_since(start);
  if (o.quick) return first;
  const int64_t calls = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(1e-3 / first)));
  double best = first, total = 0.0;
  for (int samples = 0; samples < min_samples || total < o.min_time; ++samples) {
    start = Clock::now();
    for (int64_t i = 0; i < calls; ++i) fn();
    const double elapsed = seconds_since(start);
    total += elapsed;
    best = std::min(best, elapsed / static_cast<double>(calls));
  }
  return best;
}

// Fast deterministic fill: floats uniform in [−1, 1).
void fill_uniform(std::vector<float>& v, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
  for (float& x : v) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    x = static_cast<float>(static_cast<double>(s >> 40) / 8388608.0 - 1.0);
  }
}

// A random ternary matrix (scale 0.02), built directly in the packed layout.
ref::TernaryMatrix random_ternary(int64_t rows, int64_t cols, uint64_t seed) {
  ref::TernaryMatrix m;
  m.reset(rows, cols, 0.02f);
  uint64_t s = seed * 0x9E3779B97F4A7C15ull + 7;
  auto next = [&s] {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    return s >> 33;
  };
  if (cols % ref::TernaryMatrix::kGroupCols == 0) {
    // Every byte is four codes q+1 ∈ {0, 1, 2}; no padding to keep at q = 0.
    for (uint8_t& byte : m.packed) {
      const uint64_t r = next();
      byte =
          static_cast<uint8_t>((r % 3) | (r / 3 % 3) << 2 | (r / 9 % 3) << 4 | (r / 27 % 3) << 6);
    }
  } else {
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) m.set_code(r, c, static_cast<int>(next() % 3) - 1);
    }
  }
  return m;
}

struct Shape {
  int64_t out, in;
  std::string linears;  // e.g. "q,o"
};

// The distinct (out, in) shapes of one block's linears, in execution order.
std::vector<Shape> linear_shapes(const ModelConfig& c) {
  const int64_t q = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim;
  const std::pair<const char*, std::pair<int64_t, int64_t>> all[] = {
      {"q", {q, c.hidden}},       {"k", {kv, c.hidden}},       {"v", {kv, c.hidden}},
      {"o", {c.hidden, q}},       {"gate", {c.ffn, c.hidden}}, {"up", {c.ffn, c.hidden}},
      {"down", {c.hidden, c.ffn}}};
  std::vector<Shape> shapes;
  for (const auto& [name, dims] : all) {
    auto it = std::find_if(shapes.begin(), shapes.end(), [&](const Shape& s) {
      return s.out == dims.first && s.in == dims.second;
    });
    if (it == shapes.end()) {
      shapes.push_back({dims.first, dims.second, name});
    } else {
      it->linears += std::string(",") + name;
    }
  }
  return shapes;
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    size_t start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "" : line.substr(start);
  }
  return "unknown";
}

// All measurements of one shape at one T.
nlohmann::json measure_shape(const std::string& preset, const Shape& s, const ref::TernaryMatrix& w,
                             const std::vector<float>& w_dense, int64_t t, const Options& o) {
  const int64_t in = s.in, out = s.out;
  std::vector<float> x(static_cast<size_t>(t * in)), dy(static_cast<size_t>(t * out));
  fill_uniform(x, 11 + t);
  fill_uniform(dy, 13 + t);
  std::vector<int8_t> x_codes(x.size()), dy_codes(dy.size());
  std::vector<float> x_scale(static_cast<size_t>(t)), dy_scale(static_cast<size_t>(t));
  std::vector<float> y(static_cast<size_t>(t * out)), dx(static_cast<size_t>(t * in));
  const double ops = 2.0 * static_cast<double>(t) * static_cast<double>(in * out);
  const int threads = default_pool().num_threads();

  const double quantize_s = best_time(
      [&] { cpu::quantize_activations_absmax(x_codes.data(), x_scale.data(), x.data(), t, in); },
      o);
  cpu::quantize_activations_absmax(dy_codes.data(), dy_scale.data(), dy.data(), t, out);
  const double ternary_s =
      best_time([&] { cpu::bitlinear_forward(y.data(), x_codes.data(), x_scale.data(), w, t); }, o);
  const double dense_s =
      best_time([&] { cpu::linear_forward(y.data(), x.data(), w_dense.data(), t, in, out); }, o);
  const double openblas_tiled_s = best_time(
      [&] { cpu::openblas_linear_forward(y.data(), x.data(), w_dense.data(), t, in, out); }, o);
  const double openblas_threaded_s = best_time(
      [&] {
        cpu::sgemm_openblas_threaded(y.data(), x.data(), w_dense.data(), t, in, out, threads);
      },
      o);
  const double transposed_s = best_time(
      [&] {
        cpu::bitlinear_backward_input_int8(dx.data(), dy_codes.data(), dy_scale.data(), w, t);
      },
      o);
  const double backward_f32_s =
      best_time([&] { cpu::bitlinear_backward_input(dx.data(), dy.data(), w, t); }, o);

  nlohmann::json r = {{"preset", preset},
                      {"linears", s.linears},
                      {"out", out},
                      {"in", in},
                      {"t", t},
                      {"quantize_s", quantize_s},
                      {"ternary_s", ternary_s},
                      {"ternary_gops", ops / ternary_s / 1e9},
                      {"dense_s", dense_s},
                      {"dense_gflops", ops / dense_s / 1e9},
                      {"openblas_tiled_s", openblas_tiled_s},
                      {"openblas_tiled_gflops", ops / openblas_tiled_s / 1e9},
                      {"openblas_threaded_s", openblas_threaded_s},
                      {"openblas_threaded_gflops", ops / openblas_threaded_s / 1e9},
                      {"transposed_int8_s", transposed_s},
                      {"transposed_int8_gops", ops / transposed_s / 1e9},
                      {"backward_f32_s", backward_f32_s},
                      {"backward_f32_gflops", ops / backward_f32_s / 1e9},
                      {"weight_bytes", w.packed.size()}};
  if (t == 1) {
    r["weight_gbps_cached"] = static_cast<double>(w.packed.size()) / ternary_s / 1e9;
  }
  return r;
}

// T = 1 over every linear of enough bitnet-1b layers that the weights cannot
// stay in any cache, in execution order, as a decoder reads them.
struct GemvSweep {
  std::vector<ref::TernaryMatrix> weights;
  // One quantized activation per input width.
  std::map<int64_t, std::pair<std::vector<int8_t>, float>> inputs;
  std::vector<float> y;
  int64_t layers = 0;
  int64_t bytes = 0;

  GemvSweep(const ModelConfig& c, const Options& o) {
    const int64_t q = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim;
    const std::pair<int64_t, int64_t> block[] = {
        {q, c.hidden},     {kv, c.hidden},    {kv, c.hidden},   {c.hidden, q},
        {c.ffn, c.hidden}, {c.ffn, c.hidden}, {c.hidden, c.ffn}};
    int64_t layer_bytes = 0;
    for (const auto& [out, in] : block) layer_bytes += out * ref::TernaryMatrix::bytes_per_row(in);
    const int64_t target_bytes = o.quick ? layer_bytes : int64_t{256} << 20;
    layers = (target_bytes + layer_bytes - 1) / layer_bytes;
    for (int64_t l = 0; l < layers; ++l) {
      for (const auto& [out, in] : block) {
        weights.push_back(random_ternary(out, in, static_cast<uint64_t>(weights.size() + 100)));
      }
    }
    int64_t widest = 0;
    for (const auto& [out, in] : block) {
      widest = std::max(widest, out);
      if (inputs.count(in) != 0) continue;
      std::vector<float> x(static_cast<size_t>(in));
      fill_uniform(x, static_cast<uint64_t>(in));
      std::vector<int8_t> codes(x.size());
      float scale = 0.0f;
      cpu::quantize_activations_absmax(codes.data(), &scale, x.data(), 1, in);
      inputs[in] = {std::move(codes), scale};
    }
    y.resize(static_cast<size_t>(widest));
    for (const ref::TernaryMatrix& w : weights) bytes += static_cast<int64_t>(w.packed.size());
  }

  void run() {
    for (const ref::TernaryMatrix& w : weights) {
      const auto& [codes, scale] = inputs.at(w.cols);
      cpu::bitlinear_forward(y.data(), codes.data(), &scale, w, 1);
    }
  }
};

// STREAM Copy: b = a over the pool in contiguous chunks; 2·size bytes per copy.
// The arrays live in streamed memory, as the packed weights do, so the gemv
// sweep and the copy run on the same kind of pages.
struct CopyArrays {
  std::vector<float, StreamedAllocator<float>> a, b;
  int64_t bytes = 0;

  explicit CopyArrays(const Options& o) {
    bytes = o.quick ? int64_t{32} << 20 : int64_t{256} << 20;
    const int64_t n = bytes / static_cast<int64_t>(sizeof(float));
    a.resize(static_cast<size_t>(n));
    b.resize(static_cast<size_t>(n));
    parallel_for(n, [&](int64_t begin, int64_t end) {  // first touch by the copying threads
      std::fill(a.data() + begin, a.data() + end, 1.0f);
      std::fill(b.data() + begin, b.data() + end, 0.0f);
    });
  }

  void run() {
    parallel_for(static_cast<int64_t>(a.size()), [&](int64_t begin, int64_t end) {
      std::memcpy(b.data() + begin, a.data() + begin,
                  static_cast<size_t>(end - begin) * sizeof(float));
    });
  }

  // STREAM's Scale, b = one·a, with one = 1 known only at run time: the compiler
  // cannot turn the loop into a memcpy call, so it stays vector loads and
  // ordinary stores (the multiply is exact).
  void scale() {
    const float one = unit.load(std::memory_order_relaxed);
    parallel_for(static_cast<int64_t>(a.size()), [&](int64_t begin, int64_t end) {
      const float* src = a.data();
      float* dst = b.data();
      for (int64_t i = begin; i < end; ++i) dst[i] = one * src[i];
    });
  }
  std::atomic<float> unit{1.0f};

  // Reads `a` once, summing it so the loads stay.
  void read() {
    const auto* data = reinterpret_cast<const uint8_t*>(a.data());
    parallel_for(bytes, [&](int64_t begin, int64_t end) {
      read_sink.fetch_add(cpu::sum_words(data + begin, end - begin), std::memory_order_relaxed);
    });
  }
  std::atomic<uint64_t> read_sink{0};
};

struct MemoryResults {
  nlohmann::json copy, stream_scale, read, gemv;
};

// The process's anonymous memory in transparent huge pages (Linux's
// /proc/self/smaps_rollup), or -1 where that is not reported. Shows whether the
// streamed memory of the weights and arrays got the huge pages it asked for.
int64_t anon_huge_page_bytes() {
  std::ifstream in("/proc/self/smaps_rollup");
  std::string key;
  int64_t kib = 0;
  while (in >> key) {
    if (key == "AnonHugePages:" && in >> kib) return kib * 1024;
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return -1;
}

// One memory measurement over the rounds: its best time and GB/s per round.
struct BestOfRounds {
  double bytes_per_run;  // bytes counted per run (a copy counts read + written)
  double best_s = std::numeric_limits<double>::infinity();
  nlohmann::json gbps_per_round = nlohmann::json::array();

  void add(double seconds) {
    best_s = std::min(best_s, seconds);
    gbps_per_round.push_back(bytes_per_run / seconds / 1e9);
  }
  double gbps() const { return bytes_per_run / best_s / 1e9; }
  // {"array_bytes", time_key: best_s, "gbps", "gbps_per_round"}
  nlohmann::json summary(int64_t array_bytes, const char* time_key) const {
    return {{"array_bytes", array_bytes},
            {time_key, best_s},
            {"gbps", gbps()},
            {"gbps_per_round", gbps_per_round}};
  }
};

// The copy, a plain read and the DRAM sweep alternate over a few rounds and
// each keeps its best: memory bandwidth on a shared (virtual) machine drifts by
// tens of percent within a minute, and measuring them far apart in time would
// turn that drift into the ratios. The read is context for gemv_bw_fraction:
// the copy counts bytes written too, so a kernel that only reads tops out at
// read / copy.
MemoryResults measure_memory(const ModelConfig& one_b, const Options& o) {
  CopyArrays copy(o);
  GemvSweep gemv(one_b, o);
  const int rounds = o.quick ? 1 : 4;
  const auto array_bytes = static_cast<double>(copy.bytes);
  BestOfRounds memcpy_copy{2.0 * array_bytes}, stream_scale{2.0 * array_bytes}, read{array_bytes},
      sweep{static_cast<double>(gemv.bytes)};
  for (int round = 0; round < rounds; ++round) {
    memcpy_copy.add(best_time([&] { copy.run(); }, o, 5));
    stream_scale.add(best_time([&] { copy.scale(); }, o, 5));
    read.add(best_time([&] { copy.read(); }, o, 5));
    sweep.add(best_time([&] { gemv.run(); }, o));
  }
  nlohmann::json gemv_json = {{"preset", "bitnet-1b"},
                              {"layers", gemv.layers},
                              {"matrices", gemv.weights.size()},
                              {"weight_bytes", gemv.bytes},
                              {"sweep_s", sweep.best_s},
                              {"gbps", sweep.gbps()},
                              {"gbps_per_round", sweep.gbps_per_round},
                              {"anon_huge_page_bytes", anon_huge_page_bytes()}};
  return {memcpy_copy.summary(copy.bytes, "copy_s"), stream_scale.summary(copy.bytes, "scale_s"),
          read.summary(copy.bytes, "read_s"), gemv_json};
}

// OpenBLAS 0.3.21 chooses its kernels by CPU model and falls back to Prescott
// (SSE3) on models it does not know, such as Emerald Rapids: a baseline 4-5x
// below what the CPU runs. How capable a core's kernels are (3: AVX-512, 2: AVX2
// with FMA, 1: AVX, 0: older or unknown), to compare with what the CPU can run.
int openblas_core_level(const std::string& core) {
  static const std::map<std::string, int> levels = {
      {"SkylakeX", 3}, {"Cooperlake", 3}, {"SapphireRapids", 3},
      {"Haswell", 2},  {"Zen", 2},        {"Sandybridge", 1}};
  const auto it = levels.find(core);
  return it == levels.end() ? 0 : it->second;
}

std::string fitting_openblas_core() {
#if defined(__x86_64__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512cd")) {
    return "SkylakeX";
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
  return "";
}

// Runs this command again with OPENBLAS_CORETYPE set (read when the library
// loads, so it cannot change in-process) when OpenBLAS picked a core less capable
// than the CPU can run. Returns only when nothing needs to change or exec failed.
void reexec_with_fitting_openblas_core() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return;  // the user's choice, or done
  const std::string fitting = fitting_openblas_core();
  if (fitting.empty() ||
      openblas_core_level(cpu::blas_core_name()) >= openblas_core_level(fitting)) {
    return;
  }
  std::ifstream cmdline("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string arg; std::getline(cmdline, arg, '\0');) args.push_back(arg);
  if (args.empty()) return;
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  setenv("OPENBLAS_CORETYPE", fitting.c_str(), 1);
  execv("/proc/self/exe", argv.data());
  std::fprintf(stderr, "tern bench kernels: could not re-run with OPENBLAS_CORETYPE=%s\n",
               fitting.c_str());
  unsetenv("OPENBLAS_CORETYPE");
}

int run_kernels(const Options& o) {
  reexec_with_fitting_openblas_core();
  if (o.threads > 0) set_num_threads(o.threads);
  const std::vector<std::string> presets =
      o.quick ? std::vector<std::string>{"bitnet-1b"}
              : std::vector<std::string>{"bitnet-125m", "bitnet-1b"};
  const std::vector<int64_t> rows = {1, 64, 512};

  nlohmann::json shapes = nlohmann::json::array();
  double sgemm_512 = 0.0, ternary_512 = 0.0, transposed_512 = 0.0;
  ModelConfig one_b;
  for (const std::string& preset : presets) {
    Result<ModelConfig> config = preset_config(preset);
    if (!config.ok()) {
      std::fprintf(stderr, "tern bench kernels: %s\n", config.status().message().c_str());
      return 1;
    }
    if (preset == "bitnet-1b") one_b = config.value();
    std::vector<Shape> list = linear_shapes(config.value());
    if (o.quick) {  // the two smallest
      std::sort(list.begin(), list.end(),
                [](const Shape& a, const Shape& b) { return a.out * a.in < b.out * b.in; });
      list.resize(std::min<size_t>(2, list.size()));
    }
    for (const Shape& s : list) {
      ref::TernaryMatrix w = random_ternary(s.out, s.in, static_cast<uint64_t>(s.out * 31 + s.in));
      w.build_transposed();
      std::vector<float> w_dense(static_cast<size_t>(s.out * s.in));
      fill_uniform(w_dense, static_cast<uint64_t>(s.out + s.in));
      for (int64_t t : rows) {
        nlohmann::json r = measure_shape(preset, s, w, w_dense, t, o);
        if (preset == "bitnet-1b" && t == 512) {
          sgemm_512 += r["openblas_threaded_s"].get<double>();
          ternary_512 += r["ternary_s"].get<double>();
          transposed_512 += r["transposed_int8_s"].get<double>();
        }
        shapes.push_back(std::move(r));
      }
    }
  }
  const auto [copy, stream_scale, read, gemv] = measure_memory(one_b, o);

  const nlohmann::json out = {
      {"benchmark", "kernels"},
      {"threads", default_pool().num_threads()},
      {"nproc", static_cast<int64_t>(std::thread::hardware_concurrency())},
      {"cpu", cpu_model_name()},
      {"simd_target", cpu::active_simd_target()},
      {"openblas_core", cpu::blas_core_name()},
      {"openblas_coretype_env",
       std::getenv("OPENBLAS_CORETYPE") != nullptr ? std::getenv("OPENBLAS_CORETYPE") : ""},
      {"quick", o.quick},
      {"min_time_s", o.min_time},
      {"ternary_vs_sgemm_t512", sgemm_512 / ternary_512},
      {"gemv_bw_fraction", gemv["gbps"].get<double>() / copy["gbps"].get<double>()},
      {"gemv_vs_stream_scale", gemv["gbps"].get<double>() / stream_scale["gbps"].get<double>()},
      {"gemv_vs_read", gemv["gbps"].get<double>() / read["gbps"].get<double>()},
      {"transposed_vs_forward", transposed_512 / ternary_512},
      {"copy", copy},
      {"stream_scale", stream_scale},
      {"read", read},
      {"gemv_dram", gemv},
      {"shapes", shapes}};
  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("tern bench kernels: %s, %d threads, SIMD %s, OpenBLAS core %s%s\n",
              out["cpu"].get<std::string>().c_str(), default_pool().num_threads(),
              cpu::active_simd_target().c_str(), cpu::blas_core_name().c_str(),
              o.quick ? " (quick)" : "");
  std::printf("%-12s %-12s %11s %4s %9s %9s %9s %9s %9s %9s %9s %9s\n", "preset", "linears",
              "out x in", "T", "quant us", "tern GOPS", "dense GF", "oblas GF", "oblas-mt",
              "transp GO", "bwd32 GF", "w GB/s");
  for (const nlohmann::json& r : shapes) {
    const std::string dims =
        std::to_string(r["out"].get<int64_t>()) + "x" + std::to_string(r["in"].get<int64_t>());
    std::string gbps = "-";
    if (r.contains("weight_gbps_cached")) {
      char buf[32];
      std::snprintf(buf, sizeof(buf), "%.1f", r["weight_gbps_cached"].get<double>());
      gbps = buf;
    }
    std::printf("%-12s %-12s %11s %4lld %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9.1f %9s\n",
                r["preset"].get<std::string>().c_str(), r["linears"].get<std::string>().c_str(),
                dims.c_str(), static_cast<long long>(r["t"].get<int64_t>()),
                r["quantize_s"].get<double>() * 1e6, r["ternary_gops"].get<double>(),
                r["dense_gflops"].get<double>(), r["openblas_tiled_gflops"].get<double>(),
                r["openblas_threaded_gflops"].get<double>(),
                r["transposed_int8_gops"].get<double>(), r["backward_f32_gflops"].get<double>(),
                gbps.c_str());
  }
  std::printf("STREAM-like, %.0f MB arrays: copy (memcpy) %.1f GB/s, scale %.1f GB/s\n",
              copy["array_bytes"].get<double>() / 1e6, copy["gbps"].get<double>(),
              stream_scale["gbps"].get<double>());
  std::printf("read (%.0f MB array): %.1f GB/s\n", read["array_bytes"].get<double>() / 1e6,
              read["gbps"].get<double>());
  std::printf("matrix-vector over %.0f MB of bitnet-1b weights: %.1f GB/s\n",
              gemv["weight_bytes"].get<double>() / 1e6, gemv["gbps"].get<double>());
  std::printf("ternary_vs_sgemm_t512 %.3f  gemv_bw_fraction %.3f  transposed_vs_forward %.3f\n",
              out["ternary_vs_sgemm_t512"].get<double>(), out["gemv_bw_fraction"].get<double>(),
              out["transposed_vs_forward"].get<double>());
  return 0;
}

}  // namespace
}  // namespace bench_kernels_cmd

Command add_bench_kernels_command(CLI::App& bench) {
  CLI::App* app = bench.add_subcommand(
      "kernels",
      "Throughput of the CPU kernels on the presets' linear shapes (ternary, fp32, transposed), "
      "DRAM matrix-vector bandwidth and memory copy bandwidth");
  auto options = std::make_shared<bench_kernels_cmd::Options>();
  app->add_flag("--json", options->json, "Print one JSON object");
  app->add_option("--threads", options->threads, "Worker threads (default: all cores)")
      ->check(CLI::Range(1, 1024));
  app->add_flag("--quick", options->quick,
                "Two shapes, one repetition, small arrays: a smoke test in a few seconds");
  app->add_option("--min-time", options->min_time,
                  "Seconds of repeated runs per measurement; the best call counts (default 0.3)")
      ->check(CLI::Range(0.0, 60.0));
  return {app, [options]() -> int { return bench_kernels_cmd::run_kernels(*options); }};
}

}  // namespace tern::cli
