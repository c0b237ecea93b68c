// Node: links, blob serving and fetching, broadcast, and the rejection of
// misbehaving peers (suites named net_reject) while the node keeps serving.
#include "net/node.h"

#include <gtest/gtest.h>

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/write.hpp>

#include "core/log.h"
#include "net/memory_transport.h"
#include "net/messages.h"
#include "net/net_test_support.h"
#include "net/secure_channel.h"
#include "net/tcp_transport.h"

namespace tern::net {
namespace {

using testing::identity_from;
using testing::random_bytes;
using testing::run_until;
using testing::run_until_done;
using testing::unix_now_ms;

RunId run_a() {
  RunId id{};
  id.fill(0xa1);
  return id;
}
RunId run_b() {
  RunId id{};
  id.fill(0xb2);
  return id;
}

NodeOptions small_options(RunId run = run_a()) {
  NodeOptions options;
  options.run_id = run;
  options.blob_chunk_size = 64 << 10;
  options.request_timeout = Millis(10'000);
  return options;
}

// ---------------------------------------------------------------- in-process

class node_memory : public ::testing::Test {
 protected:
  asio::io_context io;
  MemoryNetwork network{io.get_executor()};
  MemoryTransport transport{network};
};

TEST_F(node_memory, FetchesFromSeveralHoldersAndVerifies) {
  Node a(io.get_executor(), transport, identity_from(1), small_options());
  Node b(io.get_executor(), transport, identity_from(2), small_options());
  Node c(io.get_executor(), transport, identity_from(3), small_options());
  ASSERT_TRUE(a.listen("mem:a").ok());
  ASSERT_TRUE(b.listen("mem:b").ok());
  const std::vector<uint8_t> data = random_bytes((1 << 20) + 12345, 7);
  Result<BlobId> id = a.blobs().put(data);
  ASSERT_TRUE(id.ok());

  ASSERT_TRUE(run_until_done(io, c.connect("mem:a", a.id())).ok());
  Result<FetchReport> first = run_until_done(io, c.fetch(id.value(), {a.id()}));
  ASSERT_TRUE(first.ok()) << first.status().message();
  ASSERT_TRUE(c.blobs().has(id.value()));
  EXPECT_EQ(*c.blobs().get(id.value()).value(), data);

  // b fetches from a and c at once: both serve chunks.
  ASSERT_TRUE(run_until_done(io, b.connect("mem:a", a.id())).ok());
  ASSERT_TRUE(run_until_done(io, c.connect("mem:b", b.id())).ok());
  Result<FetchReport> second = run_until_done(io, b.fetch(id.value(), {a.id(), c.id()}));
  ASSERT_TRUE(second.ok()) << second.status().message();
  ASSERT_EQ(second.value().chunks_per_holder.size(), 2u);
  EXPECT_GT(second.value().chunks_per_holder[0], 0u);
  EXPECT_GT(second.value().chunks_per_holder[1], 0u);
  EXPECT_EQ(*b.blobs().get(id.value()).value(), data);
  EXPECT_GE(a.counters().chunks_served + c.counters().chunks_served, 2 * 17u);
}

TEST_F(node_memory, CorruptChunkIsRefetchedFromAnotherHolder) {
  Node honest(io.get_executor(), transport, identity_from(1), small_options());
  Node liar(io.get_executor(), transport, identity_from(2), small_options());
  Node fetcher(io.get_executor(), transport, identity_from(3), small_options());
  ASSERT_TRUE(honest.listen("mem:honest").ok());
  ASSERT_TRUE(liar.listen("mem:liar").ok());
  const std::vector<uint8_t> data = random_bytes(1 << 20, 9);
  const BlobId id = honest.blobs().put(data).value();
  ASSERT_TRUE(liar.blobs().put(data).ok());
  liar.set_chunk_tamper_for_testing([](const BlobId&, uint32_t, Bytes& chunk) { chunk[0] ^= 1; });

  ASSERT_TRUE(run_until_done(io, fetcher.connect("mem:liar", liar.id())).ok());
  ASSERT_TRUE(run_until_done(io, fetcher.connect("mem:honest", honest.id())).ok());
  Result<FetchReport> report = run_until_done(io, fetcher.fetch(id, {liar.id(), honest.id()}));
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_GE(report.value().corrupt_chunks, 1u);
  EXPECT_EQ(report.value().chunks_per_holder[0], 0u);  // nothing from the liar verified
  EXPECT_EQ(*fetcher.blobs().get(id).value(), data);
}

TEST_F(node_memory, BroadcastIsRelayedToEveryMemberOnce) {
  NodeOptions hub_options = small_options();
  hub_options.relay = true;
  Node hub(io.get_executor(), transport, identity_from(10), hub_options);
  ASSERT_TRUE(hub.listen("mem:hub").ok());
  std::vector<std::unique_ptr<Node>> members;
  std::vector<int> received(4, 0);
  for (int i = 0; i < 4; ++i) {
    members.push_back(std::make_unique<Node>(io.get_executor(), transport,
                                             identity_from(static_cast<uint8_t>(20 + i)),
                                             small_options()));
    members.back()->on_broadcast([&received, i](const SignedMessage&) { ++received[i]; });
    ASSERT_TRUE(run_until_done(io, members.back()->connect("mem:hub", hub.id())).ok());
  }
  members[0]->publish(7, Bytes{1, 2, 3}, 60'000);
  ASSERT_TRUE(run_until(io, [&] { return received[1] + received[2] + received[3] == 3; }));
  testing::run_for_ms(io, 20);
  EXPECT_EQ(received, (std::vector<int>{0, 1, 1, 1}));
  EXPECT_EQ(hub.broadcast_counters().delivered, 1u);
}

// Transports close links whose reads wait past read_timeout; an idle link
// stays up only because of the keepalive.
TEST(node_keepalive, IdleLinkSurvivesTheReadTimeoutOnlyWithKeepalive) {
  for (const bool keepalive : {true, false}) {
    asio::io_context io;
    MemoryNetwork network(io.get_executor());
    TransportLimits limits;
    limits.read_timeout = Millis(300);
    MemoryTransport transport(network, limits);
    NodeOptions options = small_options();
    options.keepalive = keepalive ? Millis(40) : Millis(60'000);
    Node a(io.get_executor(), transport, identity_from(1), options);
    Node b(io.get_executor(), transport, identity_from(2), options);
    ASSERT_TRUE(a.listen("mem:a").ok());
    ASSERT_TRUE(run_until_done(io, b.connect("mem:a", a.id())).ok());
    testing::run_for_ms(io, 1200);
    EXPECT_EQ(b.connected(a.id()), keepalive);
    EXPECT_EQ(a.connected(b.id()), keepalive);
    a.close();
    b.close();
    testing::run_for_ms(io, 5);
  }
}

// ------------------------------------------------------- rejections over TCP

class net_reject : public ::testing::Test {
 protected:
  void SetUp() override {
    node = std::make_unique<Node>(io.get_executor(), tcp, identity_from(1), small_options());
    ASSERT_TRUE(node->listen("127.0.0.1:0").ok());
    blob = node->blobs().put(random_bytes(300'000, 3)).value();
    node->on_broadcast([this](const SignedMessage& m) { delivered.push_back(m.seq); });
  }

  // A well-behaved peer still gets the blob: the node kept serving.
  void expect_still_serving(uint8_t tag) {
    Node good(io.get_executor(), tcp, identity_from(tag), small_options());
    ASSERT_TRUE(run_until_done(io, good.connect(node->address(), node->id())).ok());
    Result<FetchReport> report = run_until_done(io, good.fetch(blob, {node->id()}));
    ASSERT_TRUE(report.ok()) << report.status().message();
    EXPECT_TRUE(good.blobs().has(blob));
    good.close();
    testing::run_for_ms(io, 5);
  }

  // A secure channel to the node from an arbitrary identity and run.
  Result<std::unique_ptr<SecureChannel>> raw_channel(uint8_t tag, RunId run) {
    return run_until_done(io, [&]() -> asio::awaitable<Result<std::unique_ptr<SecureChannel>>> {
      TERN_CO_ASSIGN_OR_RETURN(std::unique_ptr<Connection> connection,
                               co_await tcp.connect(node->address()));
      co_return co_await SecureChannel::dial(std::move(connection), identity_from(tag), node->id(),
                                             run);
    }());
  }

  Status send(SecureChannel& channel, const Bytes& bytes) {
    return run_until_done(io, channel.send(bytes));
  }

  asio::io_context io;
  TcpTransport tcp{io.get_executor()};
  std::unique_ptr<Node> node;
  BlobId blob{};
  std::vector<uint64_t> delivered;
  LogCapture logs;
};

TEST_F(net_reject, UnauthenticatedPeer) {
  Result<std::unique_ptr<Connection>> raw = run_until_done(io, tcp.connect(node->address()));
  ASSERT_TRUE(raw.ok());
  const Bytes hello = {'h', 'e', 'l', 'l', 'o'};
  ASSERT_TRUE(run_until_done(io, raw.value()->send(hello)).ok());
  ASSERT_TRUE(run_until(io, [&] { return node->counters().rejected_connections == 1; }));
  EXPECT_TRUE(logs.contains("rejected inbound link from 127.0.0.1"));
  EXPECT_TRUE(node->peers().empty());
  expect_still_serving(50);
}

TEST_F(net_reject, PeerNotOnAllowlist) {
  node->close();
  testing::run_for_ms(io, 5);
  NodeOptions options = small_options();
  options.allowed_peers = std::vector<NodeId>{identity_from(50).id()};
  node = std::make_unique<Node>(io.get_executor(), tcp, identity_from(1), options);
  ASSERT_TRUE(node->listen("127.0.0.1:0").ok());
  blob = node->blobs().put(random_bytes(1000, 4)).value();

  Node stranger(io.get_executor(), tcp, identity_from(60), small_options());
  ASSERT_TRUE(run_until_done(io, stranger.connect(node->address(), node->id())).ok());
  ASSERT_TRUE(run_until(io, [&] { return node->counters().rejected_connections == 1; }));
  EXPECT_TRUE(logs.contains("not on the run's allowlist"));
  Result<FetchReport> refused = run_until_done(io, stranger.fetch(blob, {node->id()}));
  EXPECT_FALSE(refused.ok());
  expect_still_serving(50);
}

TEST_F(net_reject, PeerPresentsDifferentKeyThanDialed) {
  Node dialer(io.get_executor(), tcp, identity_from(70), small_options());
  const NodeId someone_else = identity_from(71).id();
  Result<NodeId> linked = run_until_done(io, dialer.connect(node->address(), someone_else));
  ASSERT_FALSE(linked.ok());
  EXPECT_NE(linked.status().message().find(someone_else.to_string()), std::string::npos)
      << linked.status().message();
  EXPECT_TRUE(logs.contains("rejected outbound link to " + node->address()));
  EXPECT_FALSE(dialer.connected(someone_else));
  expect_still_serving(50);
}

TEST_F(net_reject, ReplayedMessage) {
  Result<std::unique_ptr<SecureChannel>> channel = raw_channel(80, run_a());
  ASSERT_TRUE(channel.ok()) << channel.status().message();
  const uint64_t now = unix_now_ms();
  const SignedMessage first = sign_message(identity_from(80), run_a(), 5, now + 60'000, 1, {9});
  const Bytes wire = encode_message({0, to_wire(first)});
  ASSERT_TRUE(send(*channel.value(), wire).ok());
  ASSERT_TRUE(send(*channel.value(), wire).ok());
  ASSERT_TRUE(run_until(io, [&] { return node->broadcast_counters().rejected_total() == 1; }));
  EXPECT_TRUE(logs.contains("duplicate"));
  const SignedMessage next = sign_message(identity_from(80), run_a(), 6, now + 60'000, 1, {10});
  ASSERT_TRUE(send(*channel.value(), encode_message({0, to_wire(next)})).ok());
  ASSERT_TRUE(run_until(io, [&] { return delivered.size() == 2; }));
  EXPECT_EQ(delivered, (std::vector<uint64_t>{5, 6}));
  expect_still_serving(50);
}

TEST_F(net_reject, MessageForAnotherRun) {
  // A peer of another run cannot even link: the run id is in the prologue.
  Result<std::unique_ptr<SecureChannel>> other = raw_channel(90, run_b());
  EXPECT_FALSE(other.ok());
  ASSERT_TRUE(run_until(io, [&] { return node->counters().rejected_connections == 1; }));
  EXPECT_TRUE(logs.contains("rejected inbound link"));

  // A member of this run relaying a message signed for another run.
  Result<std::unique_ptr<SecureChannel>> member = raw_channel(91, run_a());
  ASSERT_TRUE(member.ok()) << member.status().message();
  const uint64_t now = unix_now_ms();
  const SignedMessage foreign = sign_message(identity_from(91), run_b(), 1, now + 60'000, 1, {1});
  ASSERT_TRUE(send(*member.value(), encode_message({0, to_wire(foreign)})).ok());
  ASSERT_TRUE(run_until(
      io, [&] { return node->broadcast_counters().rejected_for(RejectReason::kWrongRun) == 1; }));
  EXPECT_TRUE(logs.contains("wrong_run"));
  EXPECT_TRUE(delivered.empty());
  expect_still_serving(50);
}

TEST_F(net_reject, OversizedFrame) {
  // A raw socket announcing a 1 GiB frame: refused before any allocation.
  asio::ip::tcp::socket socket(io);
  const std::string address = node->address();
  const auto colon = address.rfind(':');
  socket.connect({asio::ip::make_address(address.substr(0, colon)),
                  static_cast<uint16_t>(std::stoi(address.substr(colon + 1)))});
  const std::array<uint8_t, 8> header = {0, 0, 0, 0x40, 1, 2, 3, 4};
  asio::write(socket, asio::buffer(header));
  ASSERT_TRUE(run_until(io, [&] { return node->counters().rejected_connections == 1; }));
  EXPECT_TRUE(logs.contains("rejected inbound link"));
  expect_still_serving(50);
}

TEST_F(net_reject, RandomBytes) {
  // Before the handshake: random frames.
  Result<std::unique_ptr<Connection>> raw = run_until_done(io, tcp.connect(node->address()));
  ASSERT_TRUE(raw.ok());
  ASSERT_TRUE(run_until_done(io, raw.value()->send(random_bytes(200, 11))).ok());
  ASSERT_TRUE(run_until(io, [&] { return node->counters().rejected_connections == 1; }));

  // After it: an authenticated peer sending random bytes as a message.
  Result<std::unique_ptr<SecureChannel>> channel = raw_channel(100, run_a());
  ASSERT_TRUE(channel.ok()) << channel.status().message();
  ASSERT_TRUE(send(*channel.value(), random_bytes(500, 12)).ok());
  ASSERT_TRUE(run_until(io, [&] { return node->counters().rejected_messages == 1; }));
  EXPECT_TRUE(logs.contains("rejected message"));
  ASSERT_TRUE(run_until(io, [&] { return node->peers().empty(); }));
  expect_still_serving(50);
}

}  // namespace
}  // namespace tern::net
