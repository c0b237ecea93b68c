// A whole swarm in one process over the in-memory transport: a coordinator
// and three members, with a rogue node that announces updates for batches it
// was not assigned (every honest member must ignore, and never fetch, them;
// the run must end with identical weights), with and without speculative
// training of the next round (the same weights either way), with the batches
// read from a data provider over HTTP (the same weights as local shards), and
// a LoRA run on a GGUF base that each member keeps at its own path (a member
// whose file differs from the operator's is refused).
#include <gtest/gtest.h>

#include <array>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"
#include "core/rng.h"
#include "data/shards.h"
#include "model/bitnet.h"
#include "model/model_file.h"
#include "model/weight_source.h"
#include "net/memory_transport.h"
#include "net/node.h"
#include "net/tcp_transport.h"
#include "swarm/client.h"
#include "swarm/coordinator_server.h"
#include "swarm/data_provider.h"
#include "swarm/data_server.h"
#include "swarm/protocol.h"
#include "swarm/run_config.h"
#include "swarm/swarm_files.h"
#include "train/load_model.h"

namespace tern::swarm {
namespace {

namespace fs = std::filesystem;

using testing::seeded_identity;
using testing::TempDir;

// Random tokens: enough for seeded batch windows and a validation split.
void write_shards(const std::string& dir) {
  testing::write_random_shards(dir, 64, 40, 8, 5);
}

RunConfig make_config(const std::string& shards,
                      const std::string& model = "preset = \"tiny\"\nvocab = 512") {
  const std::string text = R"(
[run]
name = "swarm-net-test"
seed = 3
[model]
)" + model + R"(
[data]
shards = ")" + shards + R"("
seq_len = 32
[optimizer]
lr = 0.01
[batch]
batches_per_round = 6
sequences_per_batch = 2
[timing]
warmup_ms = 200
round_train_ms = 10000
round_witness_ms = 5000
cooldown_ms = 100
[membership]
min_members = 3
max_members = 8
witnesses_per_round = 2
epochs = 1
rounds_per_epoch = 3
)";
  Result<RunConfig> config = parse_run_config(text, "test.toml");
  EXPECT_TRUE(config.ok()) << config.status().message();
  return config.value();
}

// A base model as an operator would publish it: the tiny preset (with the
// shards' vocabulary) with weights from `seed`, written as a ternary
// TQ2_0-packed GGUF like a released BitNet model.
void write_base_gguf(const fs::path& path, uint64_t seed) {
  ModelConfig config = preset_config("tiny").value();
  config.vocab = 512;
  RandomInitSource init(seed);
  Result<BitNetModel> model = BitNetModel::create_full(config, init);
  ASSERT_TRUE(model.ok()) << model.status().message();
  const Status written = write_model_gguf(path.string(), model.value());
  ASSERT_TRUE(written.ok()) << written.message();
}

// BLAKE2b-256 of a file's bytes (what `b2sum -l 256` prints).
Blake2bDigest file_hash(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_FALSE(bytes.empty()) << path;
  Blake2bHasher hasher;
  hasher.update(bytes);
  return hasher.finish();
}

// The weight hash the members report: BLAKE2b-256 of the trainable parameters.
Blake2bDigest params_hash(const FlatBuffer& params) {
  Blake2bHasher hasher;
  hasher.update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(params.data()),
                                         static_cast<size_t>(params.size()) * sizeof(float)));
  return hasher.finish();
}

// The [model] section of a LoRA run on the GGUF at `gguf` whose bytes hash to `hash`.
std::string lora_model_section(const std::string& gguf, const Blake2bDigest& hash) {
  return "gguf = \"" + gguf + "\"\ngguf_hash = \"" + to_hex(hash) + "\"\nlora_rank = 2";
}

struct SwarmOutcome {
  Status coordinator_status = Status::Error("coordinator did not finish");
  State final_state = State::kWaitingForMembers;
  uint64_t trained_batches = 0;
  std::vector<std::optional<Result<ClientReport>>> reports;
  int rogue_claims = 0;
  std::string rogue;  // its short id
};

// Runs one swarm to the end: a coordinator, three members (fixed keys, so
// two runs have the same roster and plans) and, optionally, a rogue node that,
// whenever a round is training, claims every batch of the round (all assigned
// to others). `member_options` may adjust member i's options.
SwarmOutcome run_swarm(const RunConfig& config, const fs::path& dir, bool with_rogue,
                       bool speculate,
                       const std::function<void(int, ClientOptions&)>& member_options = {}) {
  SwarmOutcome out;
  asio::io_context io;
  net::MemoryNetwork network(io.get_executor());
  net::MemoryTransport transport(network);
  CoordinatorServerOptions server_options;
  server_options.linger_ms = 500;
  Result<std::unique_ptr<CoordinatorServer>> server =
      CoordinatorServer::open(io.get_executor(), transport, seeded_identity(1), config,
                              (dir / "run.db").string(), server_options);
  EXPECT_TRUE(server.ok()) << server.status().message();
  if (!server.ok()) return out;
  CoordinatorServer& coordinator = *server.value();
  EXPECT_TRUE(coordinator.listen("mem:coordinator").ok());

  std::vector<std::unique_ptr<SwarmClient>> members;
  auto compute = std::make_shared<asio::thread_pool>(1);  // one kernel caller at a time
  for (int i = 0; i < 3; ++i) {
    ClientOptions options;
    options.compute = compute;
    options.coordinator_address = "mem:coordinator";
    options.listen = "mem:member" + std::to_string(i);
    options.eval_batches = 1;
    options.speculate = speculate;
    if (member_options) member_options(i, options);
    Result<std::unique_ptr<SwarmClient>> client =
        SwarmClient::create(io.get_executor(), transport,
                            seeded_identity(static_cast<uint8_t>(10 + i)), config, options);
    EXPECT_TRUE(client.ok()) << client.status().message();
    if (!client.ok()) return out;
    members.push_back(std::move(client).value());
  }

  net::NodeOptions rogue_options;
  rogue_options.run_id = config.run.id;
  net::Node rogue(io.get_executor(), transport, seeded_identity(99), rogue_options);
  out.rogue = rogue.id().short_string();
  rogue.on_broadcast([&](const net::SignedMessage& m) {
    if (m.kind != static_cast<uint16_t>(SwarmKind::kStatus)) return;
    Result<StatusMessage> st = decode_status(m.body);
    if (!st.ok() || !st.value().in_round || st.value().state != State::kRoundTrain) return;
    TrainedMessage fake;
    fake.round = st.value().round;
    fake.batches = st.value().batch_list;  // every batch of the round: assigned to others
    fake.update_blob.fill(0xab);
    rogue.publish(static_cast<uint16_t>(SwarmKind::kTrained), encode_trained(fake), 60'000);
    ++out.rogue_claims;
  });

  auto rethrow = [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  };
  out.reports.resize(members.size());
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { out.coordinator_status = co_await coordinator.run(); },
      rethrow);
  if (with_rogue) {
    asio::co_spawn(
        io,
        [&]() -> asio::awaitable<void> {
          Result<net::NodeId> linked = co_await rogue.connect("mem:coordinator", std::nullopt);
          EXPECT_TRUE(linked.ok());
        },
        rethrow);
  }
  for (size_t i = 0; i < members.size(); ++i) {
    asio::co_spawn(
        io, [&, i]() -> asio::awaitable<void> { out.reports[i] = co_await members[i]->run(); },
        rethrow);
  }
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        // The rogue stays until every member is done, then leaves.
        while (true) {
          bool all = true;
          for (const auto& r : out.reports) all &= r.has_value();
          if (all) break;
          asio::steady_timer t(io, std::chrono::milliseconds(20));
          co_await t.async_wait(asio::use_awaitable);
        }
        rogue.close();
      },
      rethrow);
  io.run();
  out.final_state = coordinator.coordinator().state();
  out.trained_batches = coordinator.coordinator().trained_batches();
  return out;
}

// Every member finished with the same weights; returns their hash.
Blake2bDigest agreed_hash(const SwarmOutcome& out, uint64_t steps) {
  std::optional<Blake2bDigest> hash;
  for (const auto& r : out.reports) {
    EXPECT_TRUE(r.has_value());
    if (!r.has_value()) continue;
    EXPECT_TRUE(r->ok()) << r->status().message();
    if (!r->ok()) continue;
    EXPECT_EQ(r->value().steps_applied, steps);
    if (hash) {
      EXPECT_EQ(r->value().weight_hash, *hash);
    }
    hash = r->value().weight_hash;
  }
  return hash.value_or(Blake2bDigest{});
}

TEST(swarm_net, RogueAnnouncementsAreIgnoredAndMembersAgree) {
  TempDir dir;
  write_shards((dir.path / "shards").string());
  const RunConfig config = make_config((dir.path / "shards").string());
  LogCapture logs;
  const SwarmOutcome out = run_swarm(config, dir.path, /*with_rogue=*/true, /*speculate=*/true);

  ASSERT_TRUE(out.coordinator_status.ok()) << out.coordinator_status.message();
  EXPECT_EQ(out.final_state, State::kFinished);
  EXPECT_EQ(out.trained_batches, 18u);
  EXPECT_GT(out.rogue_claims, 0);
  agreed_hash(out, 3);
  // Every honest member saw and ignored the rogue's claims.
  const std::string ignored = "ignored trained from " + out.rogue;
  size_t ignored_lines = 0;
  for (const std::string& line : logs.lines()) {
    ignored_lines += line.find(ignored) != std::string::npos ? 1 : 0;
  }
  EXPECT_GE(ignored_lines, out.reports.size()) << "honest members did not log the rogue's claims";
  EXPECT_TRUE(logs.contains("those batches were not assigned to it"));
}

// Overlap mode computes the next round's update while this round's updates
// upload (speculation); used, it must give the very bits that training at the
// round's start gives.
TEST(swarm_net, SpeculativeTrainingGivesTheSameWeights) {
  TempDir a, b;
  write_shards((a.path / "shards").string());
  const RunConfig config = make_config((a.path / "shards").string());
  const SwarmOutcome plain = run_swarm(config, a.path, false, /*speculate=*/false);
  const SwarmOutcome ahead = run_swarm(config, b.path, false, /*speculate=*/true);
  ASSERT_TRUE(plain.coordinator_status.ok()) << plain.coordinator_status.message();
  ASSERT_TRUE(ahead.coordinator_status.ok()) << ahead.coordinator_status.message();
  EXPECT_EQ(agreed_hash(plain, 3), agreed_hash(ahead, 3));
  uint64_t used = 0;
  for (const auto& r : plain.reports) {
    if (r && r->ok()) {
      EXPECT_EQ(r->value().rounds_speculated, 0u);
    }
  }
  for (const auto& r : ahead.reports) used += r && r->ok() ? r->value().rounds_speculated : 0;
  EXPECT_GT(used, 0u) << "no member computed a round ahead";
}

// Members without local shards read their batches from the run's data
// provider (HTTP on loopback), which serves each only the chunks of its
// batches: the run must end with the very weights local shards give.
TEST(swarm_net, DataProviderGivesTheSameWeightsAsLocalShards) {
  TempDir a, b;
  const std::string shards = (a.path / "shards").string();
  write_shards(shards);
  const RunConfig local = make_config(shards);
  const SwarmOutcome from_disk = run_swarm(local, a.path, false, /*speculate=*/true);
  ASSERT_TRUE(from_disk.coordinator_status.ok()) << from_disk.coordinator_status.message();

  const uint16_t port = net::free_loopback_port().value();
  RunConfig remote = local;
  remote.data.shards.clear();
  remote.data.provider = "http://127.0.0.1:" + std::to_string(port);
  remote.data.provider_hash = provider_manifest_hash(provider_manifest_for(shards).value());
  DataServerOptions options;
  options.shard_dir = shards;
  options.listen = "127.0.0.1:" + std::to_string(port);
  options.config = remote;
  options.coordinator = seeded_identity(1).id();
  Result<std::unique_ptr<DataServer>> server = DataServer::create(options);
  ASSERT_TRUE(server.ok()) << server.status().message();
  std::thread serving([&] { EXPECT_TRUE(server.value()->run().ok()); });
  const SwarmOutcome from_provider = run_swarm(remote, b.path, false, /*speculate=*/true);
  server.value()->stop();
  serving.join();
  ASSERT_TRUE(from_provider.coordinator_status.ok()) << from_provider.coordinator_status.message();
  EXPECT_EQ(agreed_hash(from_disk, 3), agreed_hash(from_provider, 3));
  for (const auto& r : from_provider.reports) {
    if (r && r->ok()) {
      EXPECT_GT(r->value().data_bytes_received, 0u);
    }
  }
  const DataServerStats stats = server.value()->stats();
  EXPECT_GE(stats.grants, 3u);  // every member, every round it trained
  EXPECT_EQ(stats.refused, 0u);
  EXPECT_GT(stats.chunks_served, 0u);
}

// A LoRA run on a GGUF base: each member reads its own copy of the operator's
// file (--model), checked against [model] gguf_hash; only the adapters train
// (drawn from the run seed, so every member starts alike), and every member
// ends with the same adapters, on the base as the file holds it.
TEST(swarm_net, LoraRunOnAGgufBaseAgrees) {
  TempDir dir;
  const std::string shards = (dir.path / "shards").string();
  write_shards(shards);
  const fs::path base = dir.path / "base.gguf";
  ASSERT_NO_FATAL_FAILURE(write_base_gguf(base, 11));
  const Blake2bDigest base_hash = file_hash(base);
  std::vector<fs::path> homes;  // each member's own directory, holding its copy of the base
  for (int i = 0; i < 3; ++i) {
    homes.push_back(dir.path / ("member" + std::to_string(i)));
    fs::create_directories(homes.back());
    fs::copy_file(base, homes.back() / "base.gguf");
  }
  // The config names the operator's path, which no member has.
  RunConfig config =
      make_config(shards, lora_model_section("/operator/models/base.gguf", base_hash));
  config.optimizer.lr = 0.05;  // LoRA steps: three rounds should show in the loss
  const SwarmOutcome out =
      run_swarm(config, dir.path, false, /*speculate=*/true, [&](int i, ClientOptions& options) {
        options.model_path = (homes[i] / "base.gguf").string();
        options.checkpoint_path = (homes[i] / "adapter.gguf").string();
        options.checkpoint_dir = homes[i].string();
      });
  ASSERT_TRUE(out.coordinator_status.ok()) << out.coordinator_status.message();
  EXPECT_EQ(out.final_state, State::kFinished);
  EXPECT_EQ(out.trained_batches, 18u);
  const Blake2bDigest agreed = agreed_hash(out, 3);

  // Where every member starts: the base with A drawn from the run seed and B = 0.
  Result<std::unique_ptr<GgufModelSource>> source = GgufModelSource::open(base.string());
  ASSERT_TRUE(source.ok()) << source.status().message();
  Result<BitNetModel> init = BitNetModel::create_lora(
      source.value()->config(), *to_lora_config(config), *source.value(), config.run.seed);
  ASSERT_TRUE(init.ok()) << init.status().message();
  EXPECT_NE(to_hex(agreed), to_hex(params_hash(init.value().params())))
      << "the adapters did not train";
  // The members' validation batch (eval_batches = 1).
  Result<ShardSet> data = ShardSet::open(shards);
  ASSERT_TRUE(data.ok()) << data.status().message();
  const int64_t spb = config.batch.sequences_per_batch, seq = config.data.seq_len;
  std::vector<int32_t> tokens(static_cast<size_t>(spb * seq)), labels(tokens.size());
  data.value().dataset().val_batch(0, 1, spb, seq, tokens, labels);
  const float base_loss = init.value().forward(tokens, labels, spb, seq);

  for (size_t i = 0; i < out.reports.size(); ++i) {
    ASSERT_TRUE(out.reports[i].has_value() && out.reports[i]->ok());
    const ClientReport& r = out.reports[i]->value();
    // Only the adapters are trainable, hashed and exchanged.
    EXPECT_EQ(r.params, init.value().layout().num_elements());
    // B = 0: the members started from the base itself.
    EXPECT_EQ(r.initial_val_loss, base_loss);
    EXPECT_LT(r.final_val_loss, r.initial_val_loss) << "member " << i;
    // The checkpoint is the adapter; read back onto the base it gives the
    // agreed adapters and the member's final loss, so the base it trained
    // on is the file's, untouched.
    EXPECT_EQ(to_hex(r.checkpoint_weight_hash), to_hex(agreed));
    Result<LoadedModel> loaded =
        load_model((homes[i] / "base.gguf").string(), (homes[i] / "adapter.gguf").string());
    ASSERT_TRUE(loaded.ok()) << loaded.status().message();
    ASSERT_TRUE(loaded.value().model.is_lora());
    EXPECT_EQ(to_hex(params_hash(loaded.value().model.params())), to_hex(agreed));
    EXPECT_EQ(loaded.value().model.forward(tokens, labels, spb, seq), r.final_val_loss);
    EXPECT_EQ(to_hex(file_hash(homes[i] / "base.gguf")), to_hex(base_hash));
  }
  // The one epoch's checkpoint, written by its checkpointer alone, is the same adapter.
  int epoch_files = 0;
  for (const fs::path& home : homes) {
    if (!fs::exists(home / "epoch-0.gguf")) continue;
    ++epoch_files;
    Result<LoadedModel> epoch = load_model(base.string(), (home / "epoch-0.gguf").string());
    ASSERT_TRUE(epoch.ok()) << epoch.status().message();
    EXPECT_EQ(to_hex(params_hash(epoch.value().model.params())), to_hex(agreed));
  }
  EXPECT_EQ(epoch_files, 1);
}

// A full run on a GGUF base starts from the file's weights (here without
// gguf_hash, which is optional) and checkpoints the full model.
TEST(swarm_net, FullRunOnAGgufBaseStartsFromTheFile) {
  TempDir dir;
  const std::string shards = (dir.path / "shards").string();
  write_shards(shards);
  const fs::path base = dir.path / "base.gguf";
  ASSERT_NO_FATAL_FAILURE(write_base_gguf(base, 11));
  const RunConfig config = make_config(shards, "gguf = \"" + base.string() + "\"");
  const SwarmOutcome out =
      run_swarm(config, dir.path, false, /*speculate=*/true, [&](int i, ClientOptions& options) {
        options.checkpoint_path = (dir.path / ("final" + std::to_string(i) + ".gguf")).string();
      });
  ASSERT_TRUE(out.coordinator_status.ok()) << out.coordinator_status.message();
  const Blake2bDigest agreed = agreed_hash(out, 3);

  Result<std::unique_ptr<GgufModelSource>> source = GgufModelSource::open(base.string());
  ASSERT_TRUE(source.ok()) << source.status().message();
  Result<BitNetModel> start = BitNetModel::create_full(source.value()->config(), *source.value());
  ASSERT_TRUE(start.ok()) << start.status().message();
  Result<ShardSet> data = ShardSet::open(shards);
  ASSERT_TRUE(data.ok()) << data.status().message();
  const int64_t spb = config.batch.sequences_per_batch, seq = config.data.seq_len;
  std::vector<int32_t> tokens(static_cast<size_t>(spb * seq)), labels(tokens.size());
  data.value().dataset().val_batch(0, 1, spb, seq, tokens, labels);
  const float base_loss = start.value().forward(tokens, labels, spb, seq);
  for (const auto& report : out.reports) {
    ASSERT_TRUE(report.has_value() && report->ok());
    const ClientReport& r = report->value();
    EXPECT_EQ(r.params, start.value().layout().num_elements());
    EXPECT_EQ(r.initial_val_loss, base_loss);
    EXPECT_EQ(to_hex(r.checkpoint_weight_hash), to_hex(agreed));
  }
}

// Members must start from identical bits: a member whose file does not hash
// to [model] gguf_hash is refused before it joins, naming both hashes.
TEST(swarm_net, MemberWithAnotherGgufIsRefused) {
  TempDir dir;
  const std::string shards = (dir.path / "shards").string();
  write_shards(shards);
  const fs::path base = dir.path / "base.gguf", other = dir.path / "other.gguf";
  ASSERT_NO_FATAL_FAILURE(write_base_gguf(base, 11));
  ASSERT_NO_FATAL_FAILURE(write_base_gguf(other, 12));  // same shapes, other weights
  const Blake2bDigest base_hash = file_hash(base), other_hash = file_hash(other);
  ASSERT_NE(to_hex(base_hash), to_hex(other_hash));
  RunConfig config = make_config(shards, lora_model_section(base.string(), base_hash));

  asio::io_context io;
  net::MemoryNetwork network(io.get_executor());
  net::MemoryTransport transport(network);
  auto create = [&](const RunConfig& c, const fs::path& model_path) {
    ClientOptions options;
    options.coordinator_address = "mem:coordinator";
    options.model_path = model_path.string();
    return SwarmClient::create(io.get_executor(), transport, seeded_identity(10), c, options);
  };
  // The config's own path holds the operator's file.
  Result<std::unique_ptr<SwarmClient>> accepted = create(config, fs::path());
  EXPECT_TRUE(accepted.ok()) << accepted.status().message();

  Result<std::unique_ptr<SwarmClient>> refused = create(config, other);
  ASSERT_FALSE(refused.ok());
  const std::string m = refused.status().message();
  EXPECT_NE(m.find("model file " + other.string() + " has BLAKE2b-256 " + to_hex(other_hash)),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("the run's [model] gguf_hash is " + to_hex(base_hash)), std::string::npos) << m;

  // A preset run has no file to override.
  Result<std::unique_ptr<SwarmClient>> preset = create(make_config(shards), base);
  ASSERT_FALSE(preset.ok());
  EXPECT_NE(preset.status().message().find("but the run trains [model] preset tiny"),
            std::string::npos)
      << preset.status().message();

  // Without gguf_hash nothing can be checked: the member says so, with its file's hash.
  config.model.gguf_hash.reset();
  LogCapture logs;
  Result<std::unique_ptr<SwarmClient>> unchecked = create(config, other);
  EXPECT_TRUE(unchecked.ok()) << unchecked.status().message();
  EXPECT_TRUE(logs.contains("[model] gguf_hash is not set"));
  EXPECT_TRUE(logs.contains(to_hex(other_hash)));
}

}  // namespace
}  // namespace tern::swarm
