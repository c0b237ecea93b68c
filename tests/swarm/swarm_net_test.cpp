// A whole swarm in one process over the in-memory transport: a coordinator,
// three honest members and a rogue node that announces updates for batches it
// was not assigned. Every honest member must ignore (and never fetch) them,
// and the run must end with identical weights.
#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/rng.h"
#include "data/shards.h"
#include "net/memory_transport.h"
#include "net/node.h"
#include "swarm/client.h"
#include "swarm/coordinator_server.h"
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

TEST(swarm_net, RogueAnnouncementsAreIgnoredAndMembersAgree) {
  TempDir dir;
  write_shards((dir.path / "shards").string());
  const RunConfig config = make_config((dir.path / "shards").string());
  LogCapture logs;

  asio::io_context io;
  net::MemoryNetwork network(io.get_executor());
  net::MemoryTransport transport(network);
  CoordinatorServerOptions server_options;
  server_options.linger_ms = 500;
  Result<std::unique_ptr<CoordinatorServer>> server =
      CoordinatorServer::open(io.get_executor(), transport, net::Identity::generate(), config,
                              (dir.path / "run.db").string(), server_options);
  ASSERT_TRUE(server.ok()) << server.status().message();
  CoordinatorServer& coordinator = *server.value();
  ASSERT_TRUE(coordinator.listen("mem:coordinator").ok());

  std::vector<std::unique_ptr<SwarmClient>> members;
  auto compute = std::make_shared<asio::thread_pool>(1);  // one kernel caller at a time
  for (int i = 0; i < 3; ++i) {
    ClientOptions options;
    options.compute = compute;
    options.coordinator_address = "mem:coordinator";
    options.listen = "mem:member" + std::to_string(i);
    options.eval_batches = 1;
    Result<std::unique_ptr<SwarmClient>> client = SwarmClient::create(
        io.get_executor(), transport, net::Identity::generate(), config, options);
    ASSERT_TRUE(client.ok()) << client.status().message();
    members.push_back(std::move(client).value());
  }

  // The rogue: links to the coordinator and, whenever a round is training,
  // claims a batch range that was assigned to nobody or to someone else.
  net::NodeOptions rogue_options;
  rogue_options.run_id = config.run.id;
  net::Node rogue(io.get_executor(), transport, net::Identity::generate(), rogue_options);
  int claims = 0;
  rogue.on_broadcast([&](const net::SignedMessage& m) {
    if (m.kind != static_cast<uint16_t>(SwarmKind::kStatus)) return;
    Result<StatusMessage> st = decode_status(m.body);
    if (!st.ok() || !st.value().in_round || st.value().state != State::kRoundTrain) return;
    TrainedMessage fake;
    fake.round = st.value().round;
    fake.batches = st.value().batch_list;  // every batch of the round: assigned to others
    fake.update_blob.fill(0xab);
    rogue.publish(static_cast<uint16_t>(SwarmKind::kTrained), encode_trained(fake), 60'000);
    ++claims;
  });

  Status coordinator_status = Status::Error("coordinator did not finish");
  std::vector<std::optional<Result<ClientReport>>> reports(members.size());
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { coordinator_status = co_await coordinator.run(); },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        Result<net::NodeId> linked = co_await rogue.connect("mem:coordinator", std::nullopt);
        EXPECT_TRUE(linked.ok());
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  for (size_t i = 0; i < members.size(); ++i) {
    asio::co_spawn(
        io, [&, i]() -> asio::awaitable<void> { reports[i] = co_await members[i]->run(); },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
  }
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        // The rogue stays until every member is done, then leaves.
        while (true) {
          bool all = true;
          for (const auto& r : reports) all &= r.has_value();
          if (all) break;
          asio::steady_timer t(io, std::chrono::milliseconds(20));
          co_await t.async_wait(asio::use_awaitable);
        }
        rogue.close();
      },
      [](std::exception_ptr e) {
        if (e) std::rethrow_exception(e);
      });
  io.run();

  ASSERT_TRUE(coordinator_status.ok()) << coordinator_status.message();
  EXPECT_EQ(coordinator.coordinator().state(), State::kFinished);
  EXPECT_EQ(coordinator.coordinator().trained_batches(), 18u);
  EXPECT_GT(claims, 0);
  std::optional<Blake2bDigest> hash;
  for (const auto& r : reports) {
    ASSERT_TRUE(r.has_value());
    ASSERT_TRUE(r->ok()) << r->status().message();
    EXPECT_EQ(r->value().steps_applied, 3u);
    if (hash) {
      EXPECT_EQ(r->value().weight_hash, *hash);
    }
    hash = r->value().weight_hash;
  }
  // Every honest member saw and ignored the rogue's claims.
  const std::string ignored = "ignored trained from " + rogue.id().short_string();
  size_t ignored_lines = 0;
  for (const std::string& line : logs.lines()) {
    ignored_lines += line.find(ignored) != std::string::npos ? 1 : 0;
  }
  EXPECT_GE(ignored_lines, members.size()) << "honest members did not log the rogue's claims";
  EXPECT_TRUE(logs.contains("those batches were not assigned to it"));
}

}  // namespace
}  // namespace tern::swarm
