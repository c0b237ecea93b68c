// `tern bench swarm [--json] [--quick] [--members N] [--out DIR]`
//
// Data: GCIDE text (data/gcide.h), a SentencePiece vocabulary trained on it and
// token shards (data/prepare.h), made once in DIR. Model: the `small` preset
// with that vocabulary, trained from scratch by a local swarm (one coordinator,
// N members, cli/local_swarm.h) with DeMo and `[optimizer] overlap = true`.
// Two runs of the same config, keys and schedule:
//   uncapped  no upload limit;
//   capped    every member's `--upload-cap` = ceil(2 × U / T) bytes/s, where
//             U = the largest DeMo update a member produced per round
//             (update_bytes / rounds_trained, max over members) and T = the
//             shortest mean compute time of a round (train_s_mean, min over
//             members), both from the uncapped run: sending one update at the
//             cap takes U / cap ≤ T / 2.
// Summary keys (top level of the JSON):
//   step_s_uncapped, step_s_capped  the coordinator's mean round wall time
//   overlap_slowdown                step_s_capped / step_s_uncapped
//   upload_bytes_per_param_step     bytes a member sent (everything on the
//                                   wire) / parameters / steps, max over the
//                                   members of the uncapped run
//   upload_cap_bytes_per_s, update_bytes_per_round (U), train_s (T),
//   update_send_s (U / cap), weight_hashes_equal (all members agree, in both
//   runs), final_val_loss (member 0, uncapped run).
// Timing is wall clock with every process sharing this machine's cores.
#include "cli/bench_swarm.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli/local_swarm.h"
#include "data/gcide.h"
#include "data/prepare.h"
#include "data/shards.h"
#include "model/config.h"
#include "tokenizer/spm_trainer.h"
#include "tokenizer/tokenizer.h"

namespace tern::cli {
namespace bench_swarm_cmd {
namespace {

namespace fs = std::filesystem;

struct Options {
  bool json = false;
  bool quick = false;
  int members = 3;
  int64_t rounds = 0;  // 0: the plan's
  std::string out;     // empty: a temporary directory, removed after a successful run
  std::string gcide_dir = kDefaultGcideDir;
  uint64_t seed = 1;
  std::string tern_exe;       // hidden: the binary the children run (tests inject failures)
  uint64_t time_limit_s = 0;  // hidden: per run; 0: the plan's
};

// Sizes of the full bench and of --quick.
struct Plan {
  size_t corpus_bytes;
  int vocab;
  int64_t seq_len;
  uint64_t rounds;
  uint64_t batches_per_member;  // per round
  uint64_t sequences_per_batch;
  uint64_t time_limit_s;  // per run
};

constexpr Plan kFull{1 << 20, 1024, 128, 60, 2, 8, 240};
constexpr Plan kQuick{160 << 10, 512, 64, 6, 1, 4, 90};

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with("model name")) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown";
}

Result<int64_t> make_data(const Options& o, const Plan& plan, const std::string& dir) {
  TERN_ASSIGN_OR_RETURN(std::string text, gcide_corpus(o.gcide_dir, plan.corpus_bytes));
  const std::string corpus = (fs::path(dir) / "corpus.txt").string();
  {
    std::ofstream out(corpus, std::ios::binary | std::ios::trunc);
    out << text;
    out.flush();
    if (!out) return Status::Error("cannot write '" + corpus + "'");
  }
  TERN_ASSIGN_OR_RETURN(Vocab vocab, train_vocab_on_documents({text}, plan.vocab));
  TERN_ASSIGN_OR_RETURN(Tokenizer tokenizer, Tokenizer::create(std::move(vocab)));
  PrepareOptions prep;
  prep.val_fraction = 0.05;
  prep.seed = o.seed;
  TERN_ASSIGN_OR_RETURN(
      ShardManifest manifest,
      prepare_shards({corpus}, tokenizer, (fs::path(dir) / "shards").string(), prep));
  std::fprintf(stderr,
               "bench swarm: data: %zu bytes of GCIDE, vocabulary %d, %lld training and %lld "
               "validation tokens\n",
               text.size(), tokenizer.n_tokens(), static_cast<long long>(manifest.train_tokens),
               static_cast<long long>(manifest.val_tokens));
  return static_cast<int64_t>(tokenizer.n_tokens());
}

// What one run measured.
struct RunStats {
  double step_s = 0.0;                  // coordinator round_s_mean
  uint64_t rounds = 0;                  // coordinator rounds
  uint64_t steps = 0;                   // coordinator step
  double update_bytes_per_round = 0.0;  // max over members
  double train_s_min = 0.0, train_s_max = 0.0;
  double upload_bytes_per_param_step = 0.0;  // max over members
  int64_t params = 0;
  bool hashes_equal = false;
  std::string weight_hash;
  double initial_val_loss = 0.0, final_val_loss = 0.0;  // member 0
  double wall_s = 0.0;
};

double number(const nlohmann::json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

Result<RunStats> summarize(const LocalSwarmResult& r) {
  RunStats s;
  s.step_s = number(r.coordinator, "round_s_mean");
  s.rounds = static_cast<uint64_t>(number(r.coordinator, "rounds"));
  s.steps = static_cast<uint64_t>(number(r.coordinator, "step"));
  s.hashes_equal = r.weight_hashes_equal;
  s.wall_s = r.wall_s;
  s.train_s_min = std::numeric_limits<double>::infinity();
  for (const nlohmann::json& m : r.members) {
    const double rounds_trained = number(m, "rounds_trained");
    if (rounds_trained > 0) {
      s.update_bytes_per_round =
          std::max(s.update_bytes_per_round, number(m, "update_bytes") / rounds_trained);
      s.train_s_min = std::min(s.train_s_min, number(m, "train_s_mean"));
      s.train_s_max = std::max(s.train_s_max, number(m, "train_s_mean"));
    }
    s.upload_bytes_per_param_step =
        std::max(s.upload_bytes_per_param_step, number(m, "upload_bytes_per_param_step"));
  }
  if (r.members.empty() || !std::isfinite(s.train_s_min) || s.train_s_min <= 0.0 ||
      s.update_bytes_per_round <= 0.0) {
    return Status::Error("no member reported a trained round (update_bytes, train_s_mean)");
  }
  const nlohmann::json& first = r.members.front();
  s.params = static_cast<int64_t>(number(first, "params"));
  s.initial_val_loss = number(first, "initial_val_loss");
  s.final_val_loss = number(first, "final_val_loss");
  if (first.contains("weight_hash") && first["weight_hash"].is_string()) {
    s.weight_hash = first["weight_hash"].get<std::string>();
  }
  return s;
}

Result<RunStats> run_once(const LocalSwarmOptions& base, const std::string& label,
                          const std::string& dir, uint64_t upload_cap) {
  LocalSwarmOptions options = base;
  options.dir = dir;
  options.upload_cap = upload_cap;
  std::fprintf(
      stderr, "bench swarm: %s run: %d members, %llu rounds%s (logs in %s)\n", label.c_str(),
      options.members, static_cast<unsigned long long>(options.rounds_per_epoch * options.epochs),
      upload_cap > 0 ? (", upload capped at " + std::to_string(upload_cap) + " B/s").c_str() : "",
      dir.c_str());
  auto on_event = [&label](const LocalSwarmEvent& e) {
    if (e.member == 0 && e.progress) {
      std::fprintf(
          stderr, "bench swarm: %s: round %llu step %llu members %llu loss %.4f uploaded %llu B\n",
          label.c_str(), static_cast<unsigned long long>(e.round),
          static_cast<unsigned long long>(e.step), static_cast<unsigned long long>(e.members),
          e.loss, static_cast<unsigned long long>(e.uploaded));
    } else if (e.member < 0 && e.line.find("resolved") != std::string::npos &&
               (e.line.find("(void)") != std::string::npos ||
                e.line.find("dropped: none") == std::string::npos)) {
      std::fprintf(stderr, "bench swarm: %s: %s\n", label.c_str(), e.line.c_str());
    }
  };
  TERN_ASSIGN_OR_RETURN(LocalSwarmResult result, run_local_swarm(options, on_event));
  TERN_ASSIGN_OR_RETURN(RunStats stats, summarize(result));
  std::fprintf(stderr,
               "bench swarm: %s: %llu rounds, step %.3f s, compute %.3f-%.3f s per round, "
               "members agree: %s, wall %.1f s\n",
               label.c_str(), static_cast<unsigned long long>(stats.rounds), stats.step_s,
               stats.train_s_min, stats.train_s_max, stats.hashes_equal ? "yes" : "NO",
               stats.wall_s);
  return stats;
}

int run_bench(const Options& o) {
  if (o.members < 1 || o.members > 16) {
    return fail("bench swarm",
                Status::Error("--members " + std::to_string(o.members) + ": must be 1 to 16"));
  }
  if (o.rounds < 0 || o.rounds > 100000) {
    return fail("bench swarm",
                Status::Error("--rounds " + std::to_string(o.rounds) + ": must be 1 to 100000"));
  }
  const std::string dict = (fs::path(o.gcide_dir) / "gcide.dict.dz").string();
  if (std::error_code ec; !fs::is_regular_file(dict, ec)) {
    return fail("bench swarm", Status::Error("needs the GCIDE dictionary, and '" + dict +
                                             "' is missing (install Debian's dict-gcide: "
                                             "scripts/setup.sh)"));
  }
  const Plan plan = o.quick ? kQuick : kFull;
  const auto started = std::chrono::steady_clock::now();

  std::string dir = o.out;
  const bool temporary = dir.empty();
  if (temporary) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/tern-bench-swarm-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      return fail("bench swarm", Status::Error("cannot create a directory like '" + pattern + "'"));
    }
    dir = pattern;
  } else if (std::error_code ec; !fs::create_directories(dir, ec) && ec) {
    return fail("bench swarm",
                Status::Error("cannot create output directory '" + dir + "': " + ec.message()));
  }
  auto failed = [&](const Status& s) {
    if (temporary) std::fprintf(stderr, "bench swarm: files and logs kept in %s\n", dir.c_str());
    return fail("bench swarm", s);
  };

  Result<int64_t> vocab = make_data(o, plan, dir);
  if (!vocab.ok()) return failed(vocab.status());

  const unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  LocalSwarmOptions base;
  base.shards = (fs::path(dir) / "shards").string();
  base.members = o.members;
  base.threads_per_member =
      static_cast<int>(std::max(1u, cores / static_cast<unsigned>(o.members)));
  base.name = "bench-swarm";
  base.preset = "small";
  base.vocab = vocab.value();
  base.seq_len = plan.seq_len;
  base.epochs = 1;
  base.rounds_per_epoch = o.rounds > 0 ? static_cast<uint64_t>(o.rounds) : plan.rounds;
  base.batches_per_round = plan.batches_per_member * static_cast<uint64_t>(o.members);
  base.sequences_per_batch = plan.sequences_per_batch;
  base.lr = 0.01;
  base.overlap = true;
  base.seed = o.seed;
  base.time_limit_s = o.time_limit_s > 0 ? o.time_limit_s : plan.time_limit_s;
  base.tern_exe = o.tern_exe;

  Result<RunStats> uncapped = run_once(base, "uncapped", (fs::path(dir) / "uncapped").string(), 0);
  if (!uncapped.ok()) return failed(uncapped.status());
  const RunStats& u = uncapped.value();
  const auto cap = static_cast<uint64_t>(std::ceil(2.0 * u.update_bytes_per_round / u.train_s_min));
  Result<RunStats> capped =
      run_once(base, "capped", (fs::path(dir) / "capped").string(), std::max<uint64_t>(cap, 1));
  if (!capped.ok()) return failed(capped.status());
  const RunStats& c = capped.value();

  const double slowdown = u.step_s > 0.0 ? c.step_s / u.step_s : 0.0;
  const nlohmann::json out = {
      {"benchmark", "swarm"},
      {"quick", o.quick},
      {"preset", "small"},
      {"params", u.params},
      {"vocab", vocab.value()},
      {"seq_len", base.seq_len},
      {"members", o.members},
      {"threads_per_member", base.threads_per_member},
      {"rounds", u.rounds},
      {"steps", u.steps},
      {"batches_per_round", base.batches_per_round},
      {"sequences_per_batch", base.sequences_per_batch},
      {"step_s_uncapped", u.step_s},
      {"step_s_capped", c.step_s},
      {"overlap_slowdown", slowdown},
      {"upload_bytes_per_param_step", u.upload_bytes_per_param_step},
      {"upload_bytes_per_param_step_capped", c.upload_bytes_per_param_step},
      {"upload_cap_bytes_per_s", cap},
      {"update_bytes_per_round", u.update_bytes_per_round},
      {"train_s", u.train_s_min},
      {"train_s_max", u.train_s_max},
      {"train_s_capped", c.train_s_min},
      {"update_send_s", u.update_bytes_per_round / static_cast<double>(cap)},
      {"weight_hashes_equal", u.hashes_equal && c.hashes_equal},
      {"same_weights_both_runs", !u.weight_hash.empty() && u.weight_hash == c.weight_hash},
      {"initial_val_loss", u.initial_val_loss},
      {"final_val_loss", u.final_val_loss},
      {"final_val_loss_capped", c.final_val_loss},
      {"wall_s_uncapped", u.wall_s},
      {"wall_s_capped", c.wall_s},
      {"seconds",
       std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count()},
      {"nproc", cores},
      {"cpu", cpu_model()}};
  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf(
        "small preset (%lld params), %d members, %llu rounds: step %.3f s uncapped, %.3f s with "
        "upload capped at %llu B/s (update %.0f B per round: %.3f s to send vs %.3f s compute): "
        "slowdown %.3f; upload %.3g bytes/param/step; members agree: %s; validation loss "
        "%.3f -> %.3f\n",
        static_cast<long long>(u.params), o.members, static_cast<unsigned long long>(u.rounds),
        u.step_s, c.step_s, static_cast<unsigned long long>(cap), u.update_bytes_per_round,
        u.update_bytes_per_round / static_cast<double>(cap), u.train_s_min, slowdown,
        u.upload_bytes_per_param_step, u.hashes_equal && c.hashes_equal ? "yes" : "NO",
        u.initial_val_loss, u.final_val_loss);
  }
  if (temporary) {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  return 0;
}

}  // namespace
}  // namespace bench_swarm_cmd

Command add_bench_swarm_command(CLI::App& bench) {
  CLI::App* app = bench.add_subcommand(
      "swarm",
      "A local swarm (coordinator + members as processes) trains the small preset, uncapped and "
      "with upload capped: step time, overlap slowdown, upload bytes/param/step");
  auto o = std::make_shared<bench_swarm_cmd::Options>();
  app->add_flag("--json", o->json, "Print one JSON object");
  app->add_flag("--quick", o->quick, "A few short rounds on a small corpus: a smoke test");
  app->add_option("--members", o->members, "Member processes (default 3)");
  app->add_option("--rounds", o->rounds, "Rounds per run (default 60; --quick 6)");
  app->add_option("--out", o->out,
                  "Keep data, configs and logs here (default: a temporary directory, removed "
                  "after a successful run)");
  app->add_option("--seed", o->seed, "Run seed: data order, keys, initialization (default 1)");
  app->add_option("--gcide-dir", o->gcide_dir, "Where dict-gcide installed its files");
  app->add_option("--tern", o->tern_exe)->group("");
  app->add_option("--time-limit-s", o->time_limit_s)->group("");
  return {app, [o]() -> int { return bench_swarm_cmd::run_bench(*o); }};
}

}  // namespace tern::cli
