// `tern data`: prepare token shards from text, JSONL or chat JSONL files,
// inspect (and verify) a prepared shard directory, and serve one to a swarm
// run as its data provider (swarm/data_server.h).
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cli/commands.h"
#include "data/prepare.h"
#include "data/shards.h"
#include "format/gguf.h"
#include "net/identity.h"
#include "swarm/data_provider.h"
#include "swarm/data_server.h"
#include "swarm/run_config.h"
#include "tokenizer/tokenizer.h"

namespace tern::cli {
namespace data_cmd {
namespace {

struct DataArgs {
  std::vector<std::string> inputs;
  std::string vocab_file;
  std::string output;
  std::string format = "auto";
  bool assistant_only = false;
  double val_fraction = 0.05;
  uint64_t seed = 1;
  bool doc_per_line = false;
  bool whole_file = false;
  std::string dir;
  std::string config, coordinator_id, listen = "127.0.0.1:8470";
};

void print_manifest(const ShardManifest& m) {
  std::printf("format:          tern.shards v%lld\n", static_cast<long long>(m.format_version));
  std::printf("tokenizer hash:  %s\n", m.tokenizer_hash.c_str());
  std::printf("vocab:           %lld (%d-byte tokens)\n", static_cast<long long>(m.vocab),
              m.token_bytes);
  std::printf("train:           %lld tokens, %lld documents\n",
              static_cast<long long>(m.train_tokens), static_cast<long long>(m.train_documents));
  std::printf("validation:      %lld tokens, %lld documents\n",
              static_cast<long long>(m.val_tokens), static_cast<long long>(m.val_documents));
  std::printf("loss mask:       %s\n", m.has_loss_mask ? "yes (assistant tokens only)" : "no");
  std::printf("content hash:    %s\n", m.content_hash.c_str());
  for (const std::string& source : m.sources) std::printf("source:          %s\n", source.c_str());
}

int run_prepare(const DataArgs& a) {
  PrepareOptions options;
  if (a.format == "text") {
    options.format = InputFormat::kText;
  } else if (a.format == "jsonl") {
    options.format = InputFormat::kJsonl;
  } else if (a.format == "chat") {
    options.format = InputFormat::kChat;
  }
  options.text_split = a.doc_per_line ? TextSplit::kLine
                       : a.whole_file ? TextSplit::kWholeFile
                                      : TextSplit::kBlankLine;
  options.assistant_only = a.assistant_only;
  options.val_fraction = a.val_fraction;
  options.seed = a.seed;

  Result<gguf::GgufFile> file = gguf::GgufFile::open(a.vocab_file);
  if (!file.ok()) return fail("data prepare", file.status());
  Result<Vocab> vocab = vocab_from_gguf(file.value());
  if (!vocab.ok()) return fail("data prepare", vocab.status().with_context(a.vocab_file));
  Result<Tokenizer> tokenizer = Tokenizer::create(std::move(vocab).value());
  if (!tokenizer.ok()) return fail("data prepare", tokenizer.status().with_context(a.vocab_file));
  Result<ShardManifest> manifest = prepare_shards(a.inputs, tokenizer.value(), a.output, options);
  if (!manifest.ok()) return fail("data prepare", manifest.status());
  std::printf("wrote %s\n", a.output.c_str());
  print_manifest(manifest.value());
  return 0;
}

int run_info(const DataArgs& a) {
  Result<ShardSet> shards = ShardSet::open(a.dir);
  if (!shards.ok()) return fail("data info", shards.status());
  std::printf("%s: verified\n", a.dir.c_str());
  print_manifest(shards.value().manifest());
  Result<std::string> document = swarm::provider_manifest_for(a.dir);
  if (!document.ok()) return fail("data info", document.status());
  std::printf("provider hash:   %s\n", swarm::provider_manifest_hash(document.value()).c_str());
  return 0;
}

int run_serve(const DataArgs& a) {
  Result<swarm::RunConfig> config = swarm::load_run_config(a.config);
  if (!config.ok()) return fail("data serve", config.status());
  Result<net::NodeId> coordinator = net::NodeId::parse(a.coordinator_id);
  if (!coordinator.ok()) {
    return fail("data serve", coordinator.status().with_context("--coordinator-id"));
  }
  // SIGINT/SIGTERM are blocked in every thread (the server's inherit the
  // mask) and taken by this one, which then stops the server.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  swarm::DataServerOptions options;
  options.shard_dir = a.dir;
  options.listen = a.listen;
  options.config = config.value();
  options.coordinator = coordinator.value();
  Result<std::unique_ptr<swarm::DataServer>> server = swarm::DataServer::create(options);
  if (!server.ok()) return fail("data serve", server.status());
  swarm::DataServer& s = *server.value();
  const std::string host = a.listen.substr(0, a.listen.rfind(':'));
  std::fprintf(stderr, "data: serving %s for run %s, provider hash %s, listening on %s:%d\n",
               a.dir.c_str(), config.value().run.name.c_str(), s.manifest_hash().c_str(),
               host.c_str(), s.port());
  std::atomic<bool> finished = false;
  Status result;
  std::thread serving([&] {
    result = s.run();
    finished = true;
  });
  const timespec poll = {0, 200'000'000};
  while (!finished && sigtimedwait(&stop_signals, nullptr, &poll) < 0) {
  }
  s.stop();
  serving.join();
  if (!result.ok()) return fail("data serve", result);
  const swarm::DataServerStats stats = s.stats();
  std::printf("{\"grants\":%" PRIu64 ",\"refused\":%" PRIu64 ",\"chunks_served\":%" PRIu64
              ",\"bytes_served\":%" PRIu64 "}\n",
              stats.grants, stats.refused, stats.chunks_served, stats.bytes_served);
  return 0;
}

}  // namespace
}  // namespace data_cmd

Command add_data_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand("data", "Prepare and inspect token shards");
  app->require_subcommand(1);
  auto args = std::make_shared<data_cmd::DataArgs>();

  CLI::App* prepare = app->add_subcommand(
      "prepare", "Tokenize text, JSONL or chat JSONL files into train/validation token shards");
  prepare->add_option("files", args->inputs, "Input files (.txt or other: text; .jsonl: JSONL)")
      ->required();
  prepare->add_option("--vocab", args->vocab_file, "GGUF file with tokenizer metadata")->required();
  prepare->add_option("-o,--output", args->output, "Shard directory to write (replaced atomically)")
      ->required();
  prepare
      ->add_option("--format", args->format,
                   "Input format: auto (by extension and first line), text, jsonl or chat")
      ->check(CLI::IsMember({"auto", "text", "jsonl", "chat"}))
      ->capture_default_str();
  prepare->add_flag("--assistant-only", args->assistant_only,
                    "Chat data: train only on assistant replies (writes a loss mask)");
  prepare
      ->add_option("--val-fraction", args->val_fraction,
                   "Fraction of documents for validation, in (0, 1)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  prepare->add_option("--seed", args->seed, "Seed of the train/validation split")
      ->capture_default_str();
  CLI::Option* per_line =
      prepare->add_flag("--doc-per-line", args->doc_per_line, "Text: every line is a document");
  CLI::Option* whole =
      prepare->add_flag("--whole-file", args->whole_file, "Text: every file is one document");
  per_line->excludes(whole);

  CLI::App* info = app->add_subcommand(
      "info", "Verify a shard directory and print its summary and provider hash");
  info->add_option("dir", args->dir, "Shard directory")->required();

  CLI::App* serve = app->add_subcommand(
      "serve",
      "Serve a shard directory to a swarm run's members (HTTP range requests; docs/swarm.md)");
  serve->add_option("--dir", args->dir, "Shard directory")->required();
  serve->add_option("--config", args->config, "The run's config (run.toml)")->required();
  serve
      ->add_option("--coordinator-id", args->coordinator_id,
                   "The coordinator's node id: its signed Status grants members their batches")
      ->required();
  serve->add_option("--listen", args->listen, "HOST:PORT to listen on (port 0: any free port)")
      ->capture_default_str();

  return {app, [args, prepare, serve]() -> int {
            if (prepare->parsed()) return data_cmd::run_prepare(*args);
            if (serve->parsed()) return data_cmd::run_serve(*args);
            return data_cmd::run_info(*args);
          }};
}

}  // namespace tern::cli
