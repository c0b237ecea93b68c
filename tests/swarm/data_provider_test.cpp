// The swarm data provider over real HTTP on loopback: the manifest document
// and its parser, grants (who may read which chunks), the file endpoint's
// checks, and a member's RemoteBatches reading exactly the windows local
// shards give, and refusing tampered data.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "core/log.h"
#include "core/rng.h"
#include "data/shards.h"
#include "net/broadcast.h"
#include "net/tcp_transport.h"
#include "swarm/data_provider.h"
#include "swarm/data_server.h"
#include "swarm/protocol.h"
#include "swarm/remote_batches.h"
#include "swarm/run_config.h"
#include "swarm/swarm_files.h"

namespace tern::swarm {
namespace {

namespace fs = std::filesystem;

using testing::seeded_identity;
using testing::TempDir;

// 300,000 training tokens (2 bytes each: 10 chunks of 64 KiB), so a member's
// few windows touch only some chunks.
void write_shards(const std::string& dir) {
  testing::write_random_shards(dir, 512, 600, 10, 7);
}

RunConfig make_config(const std::string& provider, const std::string& hash) {
  const std::string text = R"(
[run]
name = "data-provider-test"
seed = 11
[model]
preset = "tiny"
vocab = 512
[data]
provider = ")" + provider + R"("
provider_hash = ")" + hash +
                           R"("
seq_len = 32
[optimizer]
lr = 0.01
[batch]
batches_per_round = 4
sequences_per_batch = 2
[membership]
min_members = 2
rounds_per_epoch = 10
)";
  Result<RunConfig> config = parse_run_config(text, "test.toml");
  EXPECT_TRUE(config.ok()) << config.status().message();
  return config.value();
}

// A provider for `shards` on a free loopback port, serving on its own thread.
class Provider {
 public:
  explicit Provider(const std::string& shards, const net::NodeId& coordinator) {
    const uint16_t port = net::free_loopback_port().value();
    url_ = "http://127.0.0.1:" + std::to_string(port);
    const std::string document = provider_manifest_for(shards).value();
    config_ = make_config(url_, provider_manifest_hash(document));
    DataServerOptions options;
    options.shard_dir = shards;
    options.listen = "127.0.0.1:" + std::to_string(port);
    options.config = config_;
    options.coordinator = coordinator;
    Result<std::unique_ptr<DataServer>> server = DataServer::create(options);
    EXPECT_TRUE(server.ok()) << server.status().message();
    server_ = std::move(server).value();
    EXPECT_EQ(server_->manifest_hash(), provider_manifest_hash(document));
    thread_ = std::thread([this] { EXPECT_TRUE(server_->run().ok()); });
  }
  ~Provider() {
    server_->stop();
    thread_.join();
  }
  const RunConfig& config() const { return config_; }
  DataServer& server() { return *server_; }
  httplib::Client client() const { return httplib::Client(url_); }

 private:
  std::string url_;
  RunConfig config_;
  std::unique_ptr<DataServer> server_;
  std::thread thread_;
};

// The coordinator's signed Status of round `round` (epoch 0) with `roster`
// training `batches`.
net::SignedMessage signed_status(const net::Identity& coordinator, const RunConfig& config,
                                 uint64_t round, std::vector<net::NodeId> roster,
                                 std::vector<BatchRange> batches, uint64_t now_ms) {
  std::sort(roster.begin(), roster.end());
  StatusMessage st;
  st.config_hash = config_hash(config);
  st.state = State::kRoundTrain;
  st.now_ms = now_ms;
  st.in_round = true;
  st.round = round;
  st.round_in_epoch = round;
  st.roster = roster;
  for (const net::NodeId& id : roster) {
    MemberInfo m;
    m.id = id;
    st.members.push_back(m);
  }
  st.batch_list = std::move(batches);
  st.schedule_batches = 100;
  st.trained.assign(roster.size(), 0);
  st.attested.assign(std::min<size_t>(config.membership.witnesses_per_round, roster.size()), 0);
  return net::sign_message(coordinator, config.run.id, round + 1, now_ms + 60'000,
                           static_cast<uint16_t>(SwarmKind::kStatus), encode_status(st));
}

uint64_t unix_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// The HTTP status of an answer, -1 without one.
int status_of(const httplib::Result& r) {
  return r ? r->status : -1;
}

TEST(swarm_data_provider, ManifestRoundTripsAndBadFieldsAreNamed) {
  TempDir dir;
  write_shards((dir.path / "shards").string());
  const std::string document = provider_manifest_for((dir.path / "shards").string()).value();
  Result<ProviderManifest> m = parse_provider_manifest(document);
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m.value().train_tokens, 300'000);
  EXPECT_EQ(m.value().files.at("train.tokens").chunks.size(), 10u);
  EXPECT_EQ(provider_manifest_document(m.value()), document);

  const auto error_after = [&](const std::string& from, const std::string& to) {
    std::string bad = document;
    const size_t at = bad.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    bad.replace(at, from.size(), to);
    Result<ProviderManifest> r = parse_provider_manifest(bad);
    return r.ok() ? std::string("parsed") : r.status().message();
  };
  EXPECT_NE(error_after("\"token_bytes\":2", "\"token_bytes\":3").find("token_bytes"),
            std::string::npos);
  EXPECT_NE(error_after("\"chunk_bytes\":65536", "\"chunk_bytes\":65537").find("power of two"),
            std::string::npos);
  EXPECT_NE(error_after("\"train_tokens\":300000", "\"train_tokens\":300001")
                .find("files.train.tokens.bytes"),
            std::string::npos);
  EXPECT_NE(error_after("\"format\":\"tern-data-provider-v1\"", "\"format\":\"v0\"").find("format"),
            std::string::npos);
  EXPECT_NE(parse_provider_manifest("[1,2]").status().message().find("not a JSON object"),
            std::string::npos);
  EXPECT_FALSE(parse_provider_manifest("{").ok());
}

TEST(swarm_data_provider, GrantsOnlyTheRequestersBatchesOfACurrentRound) {
  TempDir dir;
  const std::string shards = (dir.path / "shards").string();
  write_shards(shards);
  const net::Identity coordinator = seeded_identity(1);
  const net::Identity alice = seeded_identity(2), bob = seeded_identity(3);
  LogCapture logs;
  Provider provider(shards, coordinator.id());
  const RunConfig& config = provider.config();
  httplib::Client http = provider.client();
  const uint64_t now = unix_ms();
  const net::SignedMessage round5 =
      signed_status(coordinator, config, 5, {alice.id(), bob.id()}, {{20, 24}}, now);

  // Garbage, a forged coordinator and a stranger are refused.
  EXPECT_EQ(status_of(http.Post("/v1/grant", "nonsense", "application/octet-stream")), 400);
  const net::SignedMessage forged =
      signed_status(seeded_identity(9), config, 5, {alice.id(), bob.id()}, {{20, 24}}, now);
  const std::vector<uint8_t> forged_body = encode_grant_request(forged, alice);
  httplib::Result r = http.Post("/v1/grant", reinterpret_cast<const char*>(forged_body.data()),
                                forged_body.size(), "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_NE(r->body.find("not the run's coordinator"), std::string::npos) << r->body;
  const std::vector<uint8_t> stranger = encode_grant_request(round5, seeded_identity(4));
  r = http.Post("/v1/grant", reinterpret_cast<const char*>(stranger.data()), stranger.size(),
                "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_NE(r->body.find("is assigned no batch in round 5"), std::string::npos) << r->body;

  // Alice's grant covers the chunks of her batches, not Bob's.
  const std::vector<uint8_t> alice_body = encode_grant_request(round5, alice);
  r = http.Post("/v1/grant", reinterpret_cast<const char*>(alice_body.data()), alice_body.size(),
                "application/octet-stream");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const std::string ticket = r->body;
  const RoundPlan plan = plan_from_status(decode_status(round5.body).value(), config.run.seed,
                                          config.membership.witnesses_per_round)
                             .value();
  std::vector<BatchRange> mine, theirs;
  for (const MemberAssignment& a : plan.assignment) {
    (a.member == alice.id() ? mine : theirs) = a.batches;
  }
  httplib::Result served = http.Get("/v1/manifest");
  ASSERT_TRUE(served);
  const ProviderManifest manifest = parse_provider_manifest(served->body).value();
  const auto chunks_of = [&](const std::vector<BatchRange>& batches) {
    return chunks_of_windows(manifest, "train.tokens",
                             batch_window_starts(config, manifest.train_tokens, batches),
                             config.data.seq_len + 1);
  };
  const std::vector<uint64_t> allowed = chunks_of(mine);
  ASSERT_FALSE(allowed.empty());
  // Everything Alice may read in this round or the next (the predicted plan).
  std::vector<BatchRange> granted = mine;
  const std::optional<RoundPlan> next = predict_next_plan(
      decode_status(round5.body).value(), config.run.seed, config.batch.batches_per_round,
      config.membership.witnesses_per_round, config.membership.rounds_per_epoch);
  ASSERT_TRUE(next.has_value());
  for (const MemberAssignment& a : next->assignment) {
    if (a.member == alice.id()) granted.insert(granted.end(), a.batches.begin(), a.batches.end());
  }
  const std::vector<uint64_t> granted_chunks = chunks_of(granted);
  uint64_t refused_chunk = manifest.files.at("train.tokens").chunks.size();
  for (uint64_t c = 0; c < manifest.files.at("train.tokens").chunks.size(); ++c) {
    if (!std::binary_search(granted_chunks.begin(), granted_chunks.end(), c)) refused_chunk = c;
  }
  ASSERT_LT(refused_chunk, manifest.files.at("train.tokens").chunks.size())
      << "every chunk is granted: the test data is too small";
  const uint64_t file_bytes = manifest.files.at("train.tokens").bytes;
  const auto range = [&](uint64_t chunk) {
    return "bytes=" + std::to_string(chunk * kProviderChunkBytes) + "-" +
           std::to_string(std::min<uint64_t>((chunk + 1) * kProviderChunkBytes, file_bytes) - 1);
  };
  const httplib::Headers auth = {{"Authorization", "Bearer " + ticket}};
  httplib::Headers ok_request = auth;
  ok_request.emplace("Range", range(allowed.front()));
  r = http.Get("/v1/files/train.tokens", ok_request);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 206) << r->body;
  EXPECT_EQ(r->body.size(),
            std::min<uint64_t>((allowed.front() + 1) * kProviderChunkBytes, file_bytes) -
                allowed.front() * kProviderChunkBytes);
  httplib::Headers other = auth;
  other.emplace("Range", range(refused_chunk));
  r = http.Get("/v1/files/train.tokens", other);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403) << r->body;
  EXPECT_NE(r->body.find("holds no batch of member"), std::string::npos) << r->body;
  // No ticket, a misaligned range, an unknown file.
  const httplib::Headers no_ticket = {{"Range", range(allowed.front())}};
  EXPECT_EQ(status_of(http.Get("/v1/files/train.tokens", no_ticket)), 403);
  const httplib::Headers misaligned = {{"Authorization", "Bearer " + ticket},
                                       {"Range", "bytes=1-100"}};
  EXPECT_EQ(status_of(http.Get("/v1/files/train.tokens", misaligned)), 416);
  const httplib::Headers no_range = {{"Authorization", "Bearer " + ticket}};
  EXPECT_EQ(status_of(http.Get("/v1/files/train.tokens", no_range)), 416);
  const httplib::Headers small = {{"Range", "bytes=0-9"}};
  EXPECT_EQ(status_of(http.Get("/v1/files/secret.key", small)), 404);
  // Validation data is open to anyone, in whole chunks.
  const httplib::Headers val_chunk = {{"Range", "bytes=0-9999"}};
  r = http.Get("/v1/files/val.tokens", val_chunk);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 206);
  EXPECT_EQ(r->body.size(), 10'000u);

  // Once the run is at round 7, a Status of round 5 no longer grants.
  const net::SignedMessage round7 =
      signed_status(coordinator, config, 7, {alice.id(), bob.id()}, {{28, 32}}, now);
  const std::vector<uint8_t> fresh = encode_grant_request(round7, bob);
  ASSERT_EQ(status_of(http.Post("/v1/grant", reinterpret_cast<const char*>(fresh.data()),
                                fresh.size(), "application/octet-stream")),
            200);
  r = http.Post("/v1/grant", reinterpret_cast<const char*>(alice_body.data()), alice_body.size(),
                "application/octet-stream");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 403);
  EXPECT_NE(r->body.find("round 5 is over"), std::string::npos) << r->body;
  // And Alice's old ticket has expired with it.
  EXPECT_EQ(status_of(http.Get("/v1/files/train.tokens", ok_request)), 403);
  EXPECT_EQ(provider.server().stats().refused, 10u);
  EXPECT_EQ(provider.server().stats().grants, 2u);
}

TEST(swarm_data_provider, RemoteBatchesReadTheWindowsLocalShardsGive) {
  TempDir dir;
  const std::string shards = (dir.path / "shards").string();
  write_shards(shards);
  const net::Identity coordinator = seeded_identity(1);
  const net::Identity alice = seeded_identity(2), bob = seeded_identity(3);
  Provider provider(shards, coordinator.id());
  const RunConfig& config = provider.config();
  Result<std::unique_ptr<RemoteBatches>> remote = RemoteBatches::open(config, alice, 4);
  ASSERT_TRUE(remote.ok()) << remote.status().message();
  const ShardSet local = ShardSet::open(shards).value();
  const int64_t spb = config.batch.sequences_per_batch, seq = config.data.seq_len;

  // Validation windows were fetched at open.
  std::vector<int32_t> t1(static_cast<size_t>(spb * seq)), l1(t1.size()), t2(t1.size()),
      l2(t1.size());
  for (int64_t i = 0; i < 2; ++i) {
    local.dataset().val_batch(i, 2, spb, seq, t1, l1);
    remote.value()->dataset().val_batch(i, 2, spb, seq, t2, l2);
    EXPECT_EQ(t1, t2);
    EXPECT_EQ(l1, l2);
  }
  const net::SignedMessage round0 =
      signed_status(coordinator, config, 0, {alice.id(), bob.id()}, {{0, 4}}, unix_ms());
  const RoundPlan plan = plan_from_status(decode_status(round0.body).value(), config.run.seed,
                                          config.membership.witnesses_per_round)
                             .value();
  std::vector<BatchRange> mine;
  for (const MemberAssignment& a : plan.assignment) {
    if (a.member == alice.id()) mine = a.batches;
  }
  ASSERT_FALSE(mine.empty());
  ASSERT_TRUE(remote.value()->fetch_batches(mine, round0).ok());
  for (const BatchRange& range : mine) {
    for (uint64_t b = range.begin; b < range.end; ++b) {
      Rng r1 = swarm_batch_rng(config.run.seed, b), r2 = swarm_batch_rng(config.run.seed, b);
      local.dataset().sample_train(r1, spb, seq, t1, l1);
      remote.value()->dataset().sample_train(r2, spb, seq, t2, l2);
      EXPECT_EQ(t1, t2) << "batch " << b;
      EXPECT_EQ(l1, l2) << "batch " << b;
    }
  }
  const uint64_t received = remote.value()->bytes_received();
  EXPECT_GT(received, 0u);
  EXPECT_LT(received, 10u * kProviderChunkBytes) << "fetched more than its batches' chunks";
  // Fetching the same batches again costs nothing.
  ASSERT_TRUE(remote.value()->fetch_batches(mine, round0).ok());
  EXPECT_EQ(remote.value()->bytes_received(), received);
}

TEST(swarm_data_provider, TamperedChunksAndAWrongManifestAreRefused) {
  TempDir dir;
  const std::string shards = (dir.path / "shards").string();
  write_shards(shards);
  const net::Identity coordinator = seeded_identity(1), alice = seeded_identity(2);
  Provider provider(shards, coordinator.id());
  // A run pinning another manifest refuses this provider.
  RunConfig other = provider.config();
  other.data.provider_hash = std::string(64, '0');
  Result<std::unique_ptr<RemoteBatches>> refused = RemoteBatches::open(other, alice, 1);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("differs from [data] provider_hash"), std::string::npos)
      << refused.status().message();

  Result<std::unique_ptr<RemoteBatches>> remote = RemoteBatches::open(provider.config(), alice, 1);
  ASSERT_TRUE(remote.ok()) << remote.status().message();
  // The provider's file changes under it (it serves its mapping of the file).
  {
    std::fstream f(shards + "/train.tokens", std::ios::in | std::ios::out | std::ios::binary);
    for (int chunk = 0; chunk < 10; ++chunk) {
      f.seekp(chunk * static_cast<int64_t>(kProviderChunkBytes) + 100);
      f.put('\x01');
      f.put('\x01');
    }
  }
  const net::SignedMessage round0 =
      signed_status(coordinator, provider.config(), 0, {alice.id()}, {{0, 4}}, unix_ms());
  const Status fetched = remote.value()->fetch_batches(std::vector<BatchRange>{{0, 4}}, round0);
  ASSERT_FALSE(fetched.ok());
  EXPECT_NE(fetched.message().find("does not match the manifest's digest"), std::string::npos)
      << fetched.message();
}

}  // namespace
}  // namespace tern::swarm
