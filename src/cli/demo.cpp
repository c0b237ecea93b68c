// `tern demo`: the whole story end to end on the GCIDE dictionary: train a
// tokenizer, prepare token shards, pretrain a small BitNet on general
// definitions with a swarm on this machine (a `tern coordinator` and three
// `tern join` processes on loopback, DeMo updates relayed as blobs), then, on
// one device, LoRA-fine-tune it on medical definitions, compare held-out
// medical perplexity before and after, generate a few definitions, and write
// an HTML report. Every artifact lands in --out so each step can be repeated
// with the individual commands.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>

#include "cli/commands.h"
#include "cli/local_swarm.h"
#include "cli/train_flags.h"
#include "data/demo_corpus.h"
#include "data/gcide.h"
#include "data/prepare.h"
#include "format/gguf.h"
#include "model/model_file.h"
#include "tokenizer/spm_trainer.h"
#include "train/eval.h"
#include "train/generate.h"
#include "train/load_model.h"
#include "train/run.h"

namespace tern::cli {

namespace demo_cmd {
namespace {

struct DemoArgs {
  std::string out = "tern-demo";
  std::string gcide_dir = kDefaultGcideDir;
  bool quick = false;
  bool json = false;
  uint64_t seed = 1;
};

// Sizes of the two variants: the full demo (≤ 10 minutes on two cores) and
// --quick (≤ 3 minutes, for tests).
struct DemoPlan {
  size_t general_bytes;
  int vocab_size;
  uint64_t swarm_epochs;
  uint64_t swarm_rounds_per_epoch;
  int64_t finetune_steps;
  int64_t eval_every;
};

constexpr DemoPlan kFull{6 << 20, 1024, 3, 80, 150, 50};
constexpr DemoPlan kQuick{512 << 10, 512, 2, 10, 30, 20};
constexpr int kSwarmMembers = 3;
constexpr size_t kMedicalDocs = 350;  // ~300 for fine-tuning, ~50 held out
constexpr double kHeldOutFraction = 50.0 / 350.0;
constexpr size_t kMaxMedicalBytes = 600;  // one definition, not a multi-sense entry

// The demo model: the `small` preset (BitNet b1.58 2B-4T's shape in
// miniature: ternary, ReLU², sub-norms, GQA) with the demo tokenizer's vocabulary.
ModelConfig demo_model(int64_t vocab) {
  ModelConfig c = preset_config("small").value();
  c.vocab = vocab;
  return c;
}

class Phase {
 public:
  Phase(bool quiet, const char* title) : quiet_(quiet), start_(std::chrono::steady_clock::now()) {
    if (!quiet_) std::printf("\n== %s\n", title);
    std::fflush(stdout);
  }
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }

 private:
  bool quiet_;
  std::chrono::steady_clock::time_point start_;
};

Status write_jsonl(const std::string& path, const std::vector<std::string>& docs) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  for (const std::string& d : docs) out << nlohmann::json{{"text", d}}.dump() << "\n";
  out.flush();
  if (!out) return Status::Error("demo: cannot write '" + path + "'");
  return Status::Ok();
}

Result<Tokenizer> train_demo_tokenizer(const std::vector<std::string>& general, int vocab_size,
                                       const std::string& path) {
  TERN_ASSIGN_OR_RETURN(Vocab vocab, train_vocab_on_documents(general, vocab_size));
  gguf::GgufWriter writer;
  writer.set_string("general.architecture", "llama");
  writer.set_string("general.name", "tern demo tokenizer");
  add_vocab_to_gguf(vocab, writer);
  TERN_RETURN_IF_ERROR(writer.write(path));
  return Tokenizer::create(std::move(vocab));
}

// Perplexity of a model file (plus an optional adapter) on the held-out split.
Result<EvalResult> held_out_perplexity(const std::string& model, const std::string& adapter,
                                       const ShardSet& medical) {
  TERN_ASSIGN_OR_RETURN(LoadedModel loaded, load_model(model, adapter));
  EvalOptions options;
  options.seq = 128;
  options.batch = 4;
  return evaluate_stream(loaded.model, medical.dataset().val(), options);
}

// Greedy-ish continuations of `prompts` by a model file (plus adapter).
Result<std::vector<std::string>> generations(const std::string& model, const std::string& adapter,
                                             const std::vector<std::string>& prompts,
                                             uint64_t seed) {
  TERN_ASSIGN_OR_RETURN(LoadedModel loaded, load_model(model, adapter));
  TERN_ASSIGN_OR_RETURN(Tokenizer tokenizer, require_tokenizer(loaded, model));
  std::vector<std::string> out;
  for (const std::string& prompt : prompts) {
    TERN_ASSIGN_OR_RETURN(KvDecoder decoder, KvDecoder::create(loaded.model));
    SamplerConfig sampling;
    sampling.temperature = 0.5f;
    sampling.top_k = 20;
    sampling.seed = seed;
    Sampler sampler(sampling, loaded.model.config().vocab);
    GenerateOptions options;
    options.max_tokens = 60;
    std::string text;
    const std::vector<int32_t> ids = tokenizer.encode(prompt, true, false);
    TERN_RETURN_IF_ERROR(
        generate(decoder, sampler, &tokenizer, ids, options, [&](std::string_view piece) {
          text += piece;
        }).status());
    out.push_back(prompt + text);
  }
  return out;
}

// The first `n` characters of a definition up to its first field label, as a prompt.
std::string prompt_of(const std::string& definition) {
  const size_t label = definition.find(") ");
  size_t cut = label != std::string::npos && label < 80 ? label + 2
                                                        : std::min<size_t>(40, definition.size());
  return definition.substr(0, cut);
}

// What the swarm phase shows and reports: each member's per-round progress
// lines (training loss, bytes uploaded and downloaded so far, the data
// provider's included), echoed live and kept for the metrics file and the
// report's charts.
class SwarmStory {
 public:
  void observe(const LocalSwarmEvent& e, bool quiet) {
    if (!e.progress || e.member < 0) return;
    rounds_.push_back(e);
    if (!quiet) {
      std::printf(
          "  %-9s round %3llu  epoch %llu  step %3llu  members %llu  loss %7.4f  "
          "sent %7.1f KiB  received %7.1f KiB\n",
          e.name.c_str(), static_cast<unsigned long long>(e.round),
          static_cast<unsigned long long>(e.epoch), static_cast<unsigned long long>(e.step),
          static_cast<unsigned long long>(e.members), e.loss,
          static_cast<double>(e.uploaded) / 1024.0, static_cast<double>(e.downloaded) / 1024.0);
      std::fflush(stdout);
    }
  }

  Status write_metrics(const std::string& path) const {
    std::ofstream out(path, std::ios::trunc);
    for (const LocalSwarmEvent& e : rounds_) {
      nlohmann::json j{{"member", e.name},
                       {"round", e.round},
                       {"epoch", e.epoch},
                       {"step", e.step},
                       {"members", e.members},
                       {"uploaded_bytes", e.uploaded},
                       {"downloaded_bytes", e.downloaded}};
      if (std::isfinite(e.loss)) j["train_loss"] = e.loss;
      out << j.dump() << "\n";
    }
    out.flush();
    if (!out) return Status::Error("demo: cannot write '" + path + "'");
    return Status::Ok();
  }

  // Training loss per round and cumulative upload, one series per member.
  std::vector<Chart> charts() const {
    Chart loss{"Swarm pretraining: training loss per round", "round", "loss (nats/token)", {}};
    Chart upload{"Swarm pretraining: bytes uploaded per member", "round", "KiB", {}};
    Chart download{"Swarm pretraining: bytes received per member (peers and data provider)",
                   "round",
                   "KiB",
                   {}};
    std::map<std::string, size_t> index;
    for (const LocalSwarmEvent& e : rounds_) {
      auto [it, fresh] = index.emplace(e.name, loss.series.size());
      if (fresh) {
        loss.series.push_back({e.name, {}});
        upload.series.push_back({e.name, {}});
        download.series.push_back({e.name, {}});
      }
      const double x = static_cast<double>(e.round);
      if (std::isfinite(e.loss)) loss.series[it->second].points.emplace_back(x, e.loss);
      upload.series[it->second].points.emplace_back(x, static_cast<double>(e.uploaded) / 1024.0);
      download.series[it->second].points.emplace_back(x,
                                                      static_cast<double>(e.downloaded) / 1024.0);
    }
    return {loss, upload, download};
  }

  ReportTable member_table(const LocalSwarmResult& r) const {
    ReportTable t{"Swarm members",
                  {"member", "batches trained", "uploaded", "bytes/param/step", "received",
                   "from the data provider", "final val loss", "weight hash"},
                  {}};
    for (size_t i = 0; i < r.members.size(); ++i) {
      const nlohmann::json& m = r.members[i];
      char upload[32], per[32], loss[32], download[32], data[32];
      std::snprintf(upload, sizeof upload, "%.1f KiB", m.value("uploaded_bytes", 0.0) / 1024.0);
      std::snprintf(download, sizeof download, "%.1f KiB",
                    m.value("downloaded_bytes", 0.0) / 1024.0);
      std::snprintf(data, sizeof data, "%.1f KiB", m.value("data_bytes_received", 0.0) / 1024.0);
      std::snprintf(per, sizeof per, "%.4f", m.value("upload_bytes_per_param_step", 0.0));
      std::snprintf(loss, sizeof loss, "%.4f", m.value("final_val_loss", 0.0));
      t.rows.push_back({"member-" + std::to_string(i) + " (" +
                            m.value("member", std::string()).substr(0, 12) + "…)",
                        std::to_string(m.value("batches_trained", 0)), upload, per, download, data,
                        loss, m.value("weight_hash", std::string()).substr(0, 16) + "…"});
    }
    return t;
  }

 private:
  std::vector<LocalSwarmEvent> rounds_;
};

struct SwarmSummary {
  uint64_t rounds = 0;
  double initial_val_loss = 0.0, final_val_loss = 0.0;
  double upload_bytes_per_param_step = 0.0;  // the largest of the members'
};

SwarmSummary summarize_swarm(const LocalSwarmResult& r) {
  SwarmSummary s;
  s.rounds = r.coordinator.value("rounds", uint64_t{0});
  for (const nlohmann::json& m : r.members) {
    s.initial_val_loss = m.value("initial_val_loss", 0.0);
    s.final_val_loss = m.value("final_val_loss", 0.0);
    s.upload_bytes_per_param_step =
        std::max(s.upload_bytes_per_param_step, m.value("upload_bytes_per_param_step", 0.0));
  }
  return s;
}

int run(const DemoArgs& a) {
  const DemoPlan plan = a.quick ? kQuick : kFull;
  const bool quiet = a.json;
  const auto started = std::chrono::steady_clock::now();
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(a.out, ec);
  if (ec)
    return fail("demo",
                Status::Error("cannot create output directory '" + a.out + "': " + ec.message()));
  auto path = [&](const char* name) { return (fs::path(a.out) / name).string(); };

  // 1. Corpora.
  Phase corpus_phase(quiet, "1. corpora from the GCIDE dictionary");
  Result<DemoCorpus> corpus =
      demo_corpus(a.gcide_dir, plan.general_bytes, kMedicalDocs, kMaxMedicalBytes, a.seed);
  if (!corpus.ok()) return fail("demo", corpus.status());
  if (Status s = write_jsonl(path("general.jsonl"), corpus.value().general); !s.ok())
    return fail("demo", s);
  if (Status s = write_jsonl(path("medical.jsonl"), corpus.value().medical); !s.ok())
    return fail("demo", s);
  if (!quiet) {
    std::printf(
        "%zu general definitions (pretraining), %zu medical definitions (fine-tuning + "
        "held out)\n",
        corpus.value().general.size(), corpus.value().medical.size());
  }

  // 2. Tokenizer and shards.
  Phase data_phase(quiet, "2. tokenizer (SentencePiece BPE) and token shards");
  Result<Tokenizer> tokenizer =
      train_demo_tokenizer(corpus.value().general, plan.vocab_size, path("tokenizer.gguf"));
  if (!tokenizer.ok()) return fail("demo", tokenizer.status());
  PrepareOptions general_prep;
  general_prep.val_fraction = 0.02;
  general_prep.seed = a.seed;
  Result<ShardManifest> general_manifest = prepare_shards(
      {path("general.jsonl")}, tokenizer.value(), path("general-shards"), general_prep);
  if (!general_manifest.ok()) return fail("demo", general_manifest.status());
  PrepareOptions medical_prep;
  medical_prep.val_fraction = kHeldOutFraction;
  medical_prep.seed = a.seed;
  Result<ShardManifest> medical_manifest = prepare_shards(
      {path("medical.jsonl")}, tokenizer.value(), path("medical-shards"), medical_prep);
  if (!medical_manifest.ok()) return fail("demo", medical_manifest.status());
  Result<ShardSet> general = ShardSet::open(path("general-shards"));
  if (!general.ok()) return fail("demo", general.status());
  Result<ShardSet> medical = ShardSet::open(path("medical-shards"));
  if (!medical.ok()) return fail("demo", medical.status());
  const ShardManifest& mm = medical.value().manifest();
  if (!quiet) {
    std::printf(
        "vocabulary %d tokens; general: %lld training tokens; medical: %lld documents "
        "(%lld tokens) for fine-tuning, %lld held out (%lld tokens)\n",
        tokenizer.value().n_tokens(),
        static_cast<long long>(general.value().manifest().train_tokens),
        static_cast<long long>(mm.train_documents), static_cast<long long>(mm.train_tokens),
        static_cast<long long>(mm.val_documents), static_cast<long long>(mm.val_tokens));
  }

  // 3. Pretraining by a swarm of processes on this machine.
  Phase pretrain_phase(
      quiet, "3. swarm pretraining: a coordinator, a data server and 3 members on loopback");
  SwarmStory swarm;
  LocalSwarmOptions swarm_options;
  swarm_options.dir = path("swarm");
  swarm_options.shards = fs::absolute(path("general-shards")).string();
  swarm_options.data_server = true;  // members fetch their batches over HTTP
  swarm_options.members = kSwarmMembers;
  swarm_options.threads_per_member =
      std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / kSwarmMembers);
  swarm_options.name = "tern-demo";
  swarm_options.preset = "small";
  swarm_options.vocab = tokenizer.value().n_tokens();
  swarm_options.seq_len = 128;
  swarm_options.epochs = plan.swarm_epochs;
  swarm_options.rounds_per_epoch = plan.swarm_rounds_per_epoch;
  swarm_options.batches_per_round = 6;
  swarm_options.sequences_per_batch = 8;
  swarm_options.lr = 0.01;
  swarm_options.seed = a.seed;
  swarm_options.checkpoint = fs::absolute(path("swarm/checkpoint.gguf")).string();
  if (!quiet) {
    const ModelConfig shape = demo_model(tokenizer.value().n_tokens());
    std::printf(
        "model: %lld parameters (`small`: hidden %lld, %lld layers, ternary, ReLU², GQA); "
        "%llu epochs of %llu rounds, each 6 batches of 8 x 128 tokens split among %d members; "
        "DeMo updates (top-4 of 64x64 DCT blocks, 1-bit), overlapped; batches served by "
        "`tern data serve`\n",
        static_cast<long long>(shape.num_params()), static_cast<long long>(shape.hidden),
        static_cast<long long>(shape.layers), static_cast<unsigned long long>(plan.swarm_epochs),
        static_cast<unsigned long long>(plan.swarm_rounds_per_epoch), kSwarmMembers);
  }
  Result<LocalSwarmResult> swarm_run =
      run_local_swarm(swarm_options, [&](const LocalSwarmEvent& e) { swarm.observe(e, quiet); });
  if (!swarm_run.ok()) return fail("demo", swarm_run.status());
  if (Status s = swarm.write_metrics(path("swarm-metrics.jsonl")); !s.ok()) return fail("demo", s);
  const SwarmSummary summary = summarize_swarm(swarm_run.value());
  if (!quiet) {
    std::printf(
        "swarm: %llu rounds, %d members, validation loss %.3f -> %.3f, upload %.4f bytes per "
        "parameter per step, members' weights %s\n",
        static_cast<unsigned long long>(summary.rounds), kSwarmMembers, summary.initial_val_loss,
        summary.final_val_loss, summary.upload_bytes_per_param_step,
        swarm_run.value().weight_hashes_equal ? "identical" : "DIFFER");
  }
  if (!swarm_run.value().weight_hashes_equal) {
    return fail("demo", Status::Error("swarm members ended with different weights (logs in " +
                                      swarm_options.dir + ")"));
  }
  // The members' checkpoint holds the latent fp32 weights; base.gguf is the
  // same model with the tokenizer inside, the file the next steps use.
  Result<std::unique_ptr<GgufModelSource>> checkpoint =
      GgufModelSource::open(swarm_options.checkpoint);
  if (!checkpoint.ok()) return fail("demo", checkpoint.status());
  const ModelConfig config = checkpoint.value()->config();
  Result<BitNetModel> model = BitNetModel::create_full(config, *checkpoint.value());
  if (!model.ok()) return fail("demo", model.status());
  ModelWriteOptions write_options;
  write_options.name = "tern demo base";
  {
    Result<gguf::GgufFile> vocab_file = gguf::GgufFile::open(path("tokenizer.gguf"));
    if (!vocab_file.ok()) return fail("demo", vocab_file.status());
    write_options.extra_metadata = tokenizer_metadata(vocab_file.value());
  }
  if (Status s = write_model_gguf(path("base.gguf"), model.value(), write_options); !s.ok()) {
    return fail("demo", s);
  }
  const double pretrain_seconds = pretrain_phase.seconds();

  // 4. Fine-tuning on the medical definitions, the base frozen at 2 bits.
  Phase finetune_phase(quiet, "4. LoRA fine-tuning on medical definitions (base frozen, TQ2_0)");
  Result<EvalResult> before = held_out_perplexity(path("base.gguf"), "", medical.value());
  if (!before.ok()) return fail("demo", before.status());
  Result<std::unique_ptr<GgufModelSource>> base = GgufModelSource::open(path("base.gguf"));
  if (!base.ok()) return fail("demo", base.status());
  LoraConfig lora;
  lora.rank = 16;
  lora.alpha = 32.0f;
  lora.targets = {LinearId::kQ,    LinearId::kK,  LinearId::kV,   LinearId::kO,
                  LinearId::kGate, LinearId::kUp, LinearId::kDown};
  Result<BitNetModel> tuned = BitNetModel::create_lora(config, lora, *base.value(), a.seed);
  if (!tuned.ok()) return fail("demo", tuned.status());
  // tern finetune's defaults: int8 input gradient, activations cached when they fit.
  tuned.value().set_ternary_backward(TernaryBackward::kInt8);
  apply_activations_flag("auto", tuned.value());
  TrainConfig finetune;
  finetune.batch = 8;
  finetune.seq = 128;
  finetune.eval_batches = 4;
  finetune.seed = a.seed;
  finetune.steps = plan.finetune_steps;
  finetune.schedule.peak_lr = 3e-3;
  finetune.schedule.min_lr = 3e-4;
  finetune.schedule.warmup_steps = 10;
  finetune.adamw.weight_decay = 0.0;
  Result<Trainer> tuner = Trainer::create(tuned.value(), medical.value().dataset(), finetune);
  if (!tuner.ok()) return fail("demo", tuner.status());
  RunOptions finetune_run;
  finetune_run.quiet = quiet;
  finetune_run.eval_every = std::max<int64_t>(10, plan.eval_every / 2);
  finetune_run.log_every = finetune_run.eval_every;
  finetune_run.metrics_path = path("finetune-metrics.jsonl");
  finetune_run.title = "fine-tuning";
  Result<RunResult> finetuned = run_training(tuned.value(), tuner.value(), finetune_run);
  if (!finetuned.ok()) return fail("demo", finetuned.status());
  if (finetuned.value().interrupted) return fail("demo", Status::Error("interrupted"));
  if (Status s = write_lora_adapter(path("medical-lora.gguf"), tuned.value()); !s.ok()) {
    return fail("demo", s);
  }
  const double finetune_seconds = finetune_phase.seconds();

  // 5. Held-out perplexity and generations, from the files just written.
  Phase eval_phase(quiet, "5. held-out medical perplexity and generations");
  Result<EvalResult> after =
      held_out_perplexity(path("base.gguf"), path("medical-lora.gguf"), medical.value());
  if (!after.ok()) return fail("demo", after.status());
  const double drop = 1.0 - after.value().perplexity / before.value().perplexity;
  if (!quiet) {
    std::printf(
        "held-out medical perplexity: %.2f before fine-tuning, %.2f after (%.1f%% lower; "
        "%lld tokens)\n",
        before.value().perplexity, after.value().perplexity, 100.0 * drop,
        static_cast<long long>(after.value().tokens));
  }
  // Prompts: the headword parts of the last three held-out definitions. Every
  // medical definition tokenizes to something, so prepare's document i is
  // definition i and its split rule (split_draw) tells which were held out.
  std::vector<std::string> prompts;
  const std::vector<std::string>& definitions = corpus.value().medical;
  for (size_t i = definitions.size(); i-- > 0 && prompts.size() < 3;) {
    if (split_draw(a.seed, i) < kHeldOutFraction) prompts.push_back(prompt_of(definitions[i]));
  }
  Result<std::vector<std::string>> base_text = generations(path("base.gguf"), "", prompts, a.seed);
  if (!base_text.ok()) return fail("demo", base_text.status());
  Result<std::vector<std::string>> tuned_text =
      generations(path("base.gguf"), path("medical-lora.gguf"), prompts, a.seed);
  if (!tuned_text.ok()) return fail("demo", tuned_text.status());
  if (!quiet) {
    for (size_t i = 0; i < prompts.size(); ++i) {
      std::printf("\n-- base:       %s\n-- fine-tuned: %s\n", base_text.value()[i].c_str(),
                  tuned_text.value()[i].c_str());
    }
  }

  // 6. Report.
  const double total =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  RunReport report = make_run_report(finetuned.value(), finetune_run);
  report.title = "tern demo: swarm pretraining, fine-tuning, evaluation";
  report.subtitle = "GCIDE dictionary; ternary BitNet b1.58; a coordinator and " +
                    std::to_string(kSwarmMembers) + " members on " +
                    std::to_string(std::thread::hardware_concurrency()) + " threads";
  auto fmt = [](const char* f, double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, f, v);
    return std::string(buf);
  };
  report.summary = {
      {"held-out medical perplexity, base", fmt("%.2f", before.value().perplexity)},
      {"held-out medical perplexity, fine-tuned", fmt("%.2f", after.value().perplexity)},
      {"perplexity reduction", fmt("%.1f%%", 100.0 * drop)},
      {"swarm pretraining", fmt("%.0f s", pretrain_seconds) + ", " +
                                std::to_string(summary.rounds) + " rounds, validation loss " +
                                fmt("%.3f", summary.initial_val_loss) + " → " +
                                fmt("%.3f", summary.final_val_loss)},
      {"upload per member", fmt("%.4f bytes/parameter/step", summary.upload_bytes_per_param_step)},
      {"members' weights", swarm_run.value().weight_hashes_equal ? "bit-identical" : "differ"},
      {"fine-tuning", fmt("%.0f s", finetune_seconds) + ", " +
                          fmt("%.0f tokens/s", finetuned.value().tokens_per_second)},
      {"peak resident memory (demo process)",
       fmt("%.1f MiB", static_cast<double>(peak_rss_bytes()) / 1048576.0)},
      {"total time", fmt("%.0f s", total)}};
  std::vector<Chart> charts = swarm.charts();
  for (Chart& c : report.charts) {
    c.title = "Fine-tuning: " + c.title;
    charts.push_back(std::move(c));
  }
  report.charts = std::move(charts);
  report.tables.push_back(swarm.member_table(swarm_run.value()));
  report.tables.push_back(
      {"Held-out medical definitions",
       {"model", "perplexity", "mean loss (nats/token)", "tokens"},
       {{"base", fmt("%.2f", before.value().perplexity), fmt("%.4f", before.value().mean_nll),
         std::to_string(before.value().tokens)},
        {"base + LoRA", fmt("%.2f", after.value().perplexity), fmt("%.4f", after.value().mean_nll),
         std::to_string(after.value().tokens)}}});
  report.config = {
      {"model", model_config_to_json(config)},
      {"swarm", std::to_string(kSwarmMembers) + " members, " + std::to_string(plan.swarm_epochs) +
                    " epochs of " + std::to_string(plan.swarm_rounds_per_epoch) +
                    " rounds, 6 batches of 8 x 128 tokens per round; " + swarm_options.dir +
                    "/run.toml"},
      {"LoRA", "rank 16, alpha 32, all linears"},
      {"fine-tuning", std::to_string(finetune.steps) + " steps of 8 x 128 tokens"},
      {"files", a.out}};
  for (size_t i = 0; i < prompts.size(); ++i) {
    report.texts.push_back(
        {"Generation " + std::to_string(i + 1),
         "base:       " + base_text.value()[i] + "\n\nfine-tuned: " + tuned_text.value()[i]});
  }
  if (Status s = write_html_report(path("report.html"), report); !s.ok()) return fail("demo", s);
  if (a.json) {
    std::printf("%s\n",
                nlohmann::json{{"perplexity_before", before.value().perplexity},
                               {"perplexity_after", after.value().perplexity},
                               {"perplexity_reduction", drop},
                               {"rounds", summary.rounds},
                               {"members", kSwarmMembers},
                               {"final_val_loss", summary.final_val_loss},
                               {"upload_bytes_per_param_step", summary.upload_bytes_per_param_step},
                               {"weight_hashes_equal", swarm_run.value().weight_hashes_equal},
                               {"swarm_seconds", pretrain_seconds},
                               {"data_bytes_served",
                                swarm_run.value().data_server.value("bytes_served", uint64_t{0})},
                               {"seconds", total},
                               {"report", path("report.html")}}
                    .dump()
                    .c_str());
  } else {
    std::printf("\nreport: %s (%.0f s in all)\n", path("report.html").c_str(), total);
  }
  return after.value().perplexity < before.value().perplexity ? 0 : 1;
}

}  // namespace
}  // namespace demo_cmd

Command add_demo_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "demo",
      "Train a tokenizer, pretrain a small BitNet with a local swarm (coordinator + 3 member "
      "processes), LoRA-fine-tune it on medical definitions, "
      "evaluate and report (GCIDE dictionary)");
  auto args = std::make_shared<demo_cmd::DemoArgs>();
  app->add_option("--out", args->out, "Directory for every file the demo writes")
      ->capture_default_str();
  app->add_option("--gcide-dir", args->gcide_dir, "Where dict-gcide installed its files")
      ->capture_default_str();
  app->add_option("--seed", args->seed, "Seed for data selection, initialization and sampling")
      ->capture_default_str();
  app->add_flag("--quick", args->quick, "A short run (under 3 minutes) for smoke tests");
  app->add_flag("--json", args->json, "No progress; print one JSON summary line");
  return {app, [args]() -> int { return demo_cmd::run(*args); }};
}

}  // namespace tern::cli
