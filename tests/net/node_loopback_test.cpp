// Blob exchange between 8 nodes over real TCP on loopback, with failures:
// two 32 MiB blobs, three holders each; one holder corrupts every chunk it
// serves, two holders lose their links midway (fault-injecting transport).
// Every fetch must complete and verify. Release-only (label `net`): it moves
// 256 MiB through Noise, which takes seconds optimized and minutes under ASan.
#include <gtest/gtest.h>

#include <memory>
#include <vector>

#include "net/faulty_transport.h"
#include "net/net_test_support.h"
#include "net/node.h"
#include "net/tcp_transport.h"

namespace tern::net {
namespace {

using testing::identity_from;
using testing::random_bytes;
using testing::run_until;

TEST(blob_loopback, EightPeersExchange32MiBBlobsDespiteFailures) {
  constexpr int kNodes = 8;
  constexpr size_t kBlobBytes = size_t{32} << 20;
  asio::io_context io;
  TcpTransport tcp(io.get_executor());
  std::vector<std::unique_ptr<FaultyTransport>> transports;
  std::vector<std::unique_ptr<Node>> nodes;
  NodeOptions options;
  options.run_id.fill(7);
  options.request_timeout = Millis(20'000);
  for (int i = 0; i < kNodes; ++i) {
    transports.push_back(std::make_unique<FaultyTransport>(tcp, FaultPolicy{}, 100 + i));
    nodes.push_back(std::make_unique<Node>(io.get_executor(), *transports.back(),
                                           identity_from(static_cast<uint8_t>(i + 1)), options));
    ASSERT_TRUE(nodes.back()->listen("127.0.0.1:0").ok());
  }
  for (int i = 0; i < kNodes; ++i) {
    for (int j = i + 1; j < kNodes; ++j) {
      Result<NodeId> linked =
          testing::run_until_done(io, nodes[i]->connect(nodes[j]->address(), nodes[j]->id()));
      ASSERT_TRUE(linked.ok()) << linked.status().message();
    }
  }

  const std::vector<uint8_t> blob_a = random_bytes(kBlobBytes, 1);
  const std::vector<uint8_t> blob_b = random_bytes(kBlobBytes + 4321, 2);
  BlobId id_a{}, id_b{};
  for (int i : {0, 1, 2}) id_a = nodes[i]->blobs().put(blob_a).value();
  for (int i : {3, 4, 5}) id_b = nodes[i]->blobs().put(blob_b).value();
  nodes[2]->set_chunk_tamper_for_testing(
      [](const BlobId&, uint32_t, Bytes& chunk) { chunk[chunk.size() / 2] ^= 0x10; });
  FaultPolicy dies_after_a_while;
  dies_after_a_while.disconnect_after_frames = 200;  // ~11 chunks per link
  transports[1]->set_policy(dies_after_a_while);
  FaultPolicy dies_at_random;
  dies_at_random.disconnect_probability = 0.02;
  transports[4]->set_policy(dies_at_random);

  struct Fetch {
    int node;
    BlobId blob;
    std::vector<NodeId> holders;
    std::optional<Result<FetchReport>> result;
  };
  std::vector<Fetch> fetches;
  const std::vector<NodeId> holders_a = {nodes[0]->id(), nodes[1]->id(), nodes[2]->id()};
  const std::vector<NodeId> holders_b = {nodes[3]->id(), nodes[4]->id(), nodes[5]->id()};
  for (int i : {3, 5, 6, 7}) fetches.push_back({i, id_a, holders_a, std::nullopt});
  for (int i : {0, 2, 6, 7}) fetches.push_back({i, id_b, holders_b, std::nullopt});
  for (Fetch& fetch : fetches) {
    asio::co_spawn(
        io,
        [&nodes, &fetch]() -> asio::awaitable<void> {
          Result<FetchReport> report = co_await nodes[fetch.node]->fetch(fetch.blob, fetch.holders);
          fetch.result.emplace(std::move(report));
        },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
  }
  ASSERT_TRUE(run_until(
      io,
      [&] {
        for (const Fetch& f : fetches) {
          if (!f.result) return false;
        }
        return true;
      },
      300'000));

  uint32_t corrupt = 0;
  int multi_holder_fetches = 0;
  for (const Fetch& fetch : fetches) {
    ASSERT_TRUE(fetch.result->ok())
        << "node " << fetch.node << ": " << fetch.result->status().message();
    const FetchReport& report = fetch.result->value();
    corrupt += report.corrupt_chunks;
    int serving = 0;
    for (uint32_t n : report.chunks_per_holder) serving += n > 0 ? 1 : 0;
    multi_holder_fetches += serving > 1 ? 1 : 0;
    const std::vector<uint8_t>& expected = fetch.blob == id_a ? blob_a : blob_b;
    Result<std::shared_ptr<const Bytes>> got = nodes[fetch.node]->blobs().get(fetch.blob);
    ASSERT_TRUE(got.ok());
    EXPECT_TRUE(*got.value() == expected) << "node " << fetch.node;
  }
  EXPECT_GE(corrupt, 1u);  // the tampering holder was caught
  EXPECT_GE(multi_holder_fetches, 4);
  EXPECT_GE(transports[1]->counts().disconnects, 1u);
  EXPECT_GE(transports[4]->counts().disconnects, 1u);
  for (auto& node : nodes) node->close();
  testing::run_for_ms(io, 10);
}

}  // namespace
}  // namespace tern::net
