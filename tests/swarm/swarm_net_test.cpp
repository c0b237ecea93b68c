// A whole swarm in one process over the in-memory transport: a coordinator
// and three members, with a rogue node that announces updates for batches it
// was not assigned (every honest member must ignore, and never fetch, them;
// the run must end with identical weights), and with and without speculative
// training of the next round (the same weights either way), and with the
// batches read from a data provider over HTTP (the same weights as local
// shards).
#include <gtest/gtest.h>

#include <array>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/log.h"
#include "core/rng.h"
#include "data/shards.h"
#include "net/memory_transport.h"
#include "net/node.h"
#include "net/tcp_transport.h"
#include "swarm/client.h"
#include "swarm/coordinator_server.h"
#include "swarm/data_provider.h"
#include "swarm/data_server.h"
#include "swarm/protocol.h"
#include "swarm/run_config.h"

namespace tern::swarm {
namespace {

namespace fs = std::filesystem;

struct TempDir {
  fs::path path;
  TempDir() {
    char pattern[] = "/tmp/tern_swarm_net_XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~TempDir() { fs::remove_all(path); }
};

// Random tokens: enough for seeded batch windows and a validation split.
void write_shards(const std::string& dir) {
  ShardContents c;
  c.vocab = 512;
  c.tokenizer_hash = std::string(64, 'a');
  Rng rng(5);
  auto fill = [&](ShardSplit& split, size_t docs, size_t len) {
    for (size_t d = 0; d < docs; ++d) {
      split.document_starts.push_back(split.tokens.size());
      for (size_t i = 0; i < len; ++i) split.tokens.push_back(static_cast<int32_t>(rng.below(64)));
    }
  };
  fill(c.train, 40, 500);
  fill(c.val, 8, 500);
  ASSERT_TRUE(write_shard_set(dir, c).ok());
}

RunConfig make_config(const std::string& shards) {
  const std::string text = R"(
[run]
name = "swarm-net-test"
seed = 3
[model]
preset = "tiny"
vocab = 512
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

net::Identity seeded_identity(uint8_t n) {
  std::array<uint8_t, 32> seed{};
  seed.fill(n);
  return net::Identity::from_seed(seed);
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
// to others).
SwarmOutcome run_swarm(const RunConfig& config, const fs::path& dir, bool with_rogue,
                       bool speculate) {
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

}  // namespace
}  // namespace tern::swarm
