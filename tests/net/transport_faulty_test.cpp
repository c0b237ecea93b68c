// FaultyTransport over the in-process transport: every fault, its counter, and
// reproducibility from the seed. One single-threaded io_context per test.
#include <gtest/gtest.h>

#include <bit>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "net/faulty_transport.h"
#include "net/memory_transport.h"
#include "net/net_test_support.h"

namespace tern::net {
namespace {

using testing::run;

// Frame i: 8 bytes holding i, then (i % 50) bytes of pattern.
Bytes numbered(uint64_t i) {
  Bytes bytes(8 + i % 50);
  for (int b = 0; b < 8; ++b) bytes[b] = static_cast<uint8_t>(i >> (8 * b));
  for (size_t k = 8; k < bytes.size(); ++k) bytes[k] = static_cast<uint8_t>(i * 7 + k);
  return bytes;
}

uint64_t number_of(const Bytes& frame) {
  uint64_t i = 0;
  for (int b = 0; b < 8 && b < static_cast<int>(frame.size()); ++b) {
    i |= uint64_t{frame[b]} << (8 * b);
  }
  return i;
}

// A faulty client connected to a plain in-process server.
struct FaultyRig {
  explicit FaultyRig(asio::io_context& io, FaultPolicy policy, uint64_t seed,
                     MemoryQueueLimits queue = {})
      : network(io.get_executor(), queue),
        plain(network),
        faulty(plain, policy, seed),
        listener(std::move(plain.listen("mem:server").value())) {}

  struct Link {
    std::unique_ptr<Connection> client;  // through `faulty`
    std::unique_ptr<Connection> server;  // plain
  };
  // Connects the faulty client and accepts it on the server.
  asio::awaitable<Result<Link>> connect_client() {
    Link link;
    TERN_CO_ASSIGN_OR_RETURN(link.client, co_await faulty.connect("mem:server"));
    TERN_CO_ASSIGN_OR_RETURN(link.server, co_await listener->accept());
    co_return link;
  }

  MemoryNetwork network;
  MemoryTransport plain;
  FaultyTransport faulty;
  std::unique_ptr<Listener> listener;
};

struct Outcome {
  std::vector<Bytes> received;
  std::vector<bool> send_ok;
  FaultCounts counts;
};

// Sends `frames` numbered frames through a faulty connection, then closes it;
// the server collects what arrives until the close.
Outcome send_through(FaultPolicy policy, uint64_t seed, int frames) {
  asio::io_context io;
  FaultyRig setup(io, policy, seed, MemoryQueueLimits{.max_frames = 4096, .max_bytes = 64 << 20});
  Outcome outcome;
  run(io, [&]() -> asio::awaitable<void> {
    auto link = co_await setup.connect_client();
    CO_ASSERT_OK(link);
    Connection& client = *link.value().client;
    Connection& server = *link.value().server;
    for (int i = 0; i < frames; ++i) {
      Status sent = co_await client.send(numbered(i));
      outcome.send_ok.push_back(sent.ok());
    }
    client.close();
    for (;;) {
      auto frame = co_await server.receive();
      if (!frame.ok()) break;
      outcome.received.push_back(std::move(frame.value()));
    }
  });
  outcome.counts = setup.faulty.counts();
  return outcome;
}

TEST(FaultyTransport, NoFaultsPassesEverythingThrough) {
  const Outcome outcome = send_through(FaultPolicy{}, 1, 100);
  ASSERT_EQ(outcome.received.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(outcome.received[i], numbered(i));
  EXPECT_EQ(outcome.counts.frames, 100u);
  EXPECT_EQ(outcome.counts.dropped + outcome.counts.corrupted + outcome.counts.reordered +
                outcome.counts.delayed + outcome.counts.disconnects,
            0u);
}

TEST(FaultyTransport, DropRateMatchesProbabilityForFixedSeed) {
  FaultPolicy policy;
  policy.drop_probability = 0.1;
  const Outcome outcome = send_through(policy, 42, 1000);
  EXPECT_EQ(outcome.counts.frames, 1000u);
  EXPECT_EQ(outcome.counts.dropped + outcome.received.size(), 1000u);
  // Binomial(1000, 0.1): mean 100, sd 9.5; the exact count is fixed by the seed.
  EXPECT_GE(outcome.counts.dropped, 60u);
  EXPECT_LE(outcome.counts.dropped, 140u);
  EXPECT_EQ(outcome.counts.dropped, 83u);
  // The survivors arrive in order, and a dropped send still reports success.
  for (size_t k = 1; k < outcome.received.size(); ++k) {
    EXPECT_LT(number_of(outcome.received[k - 1]), number_of(outcome.received[k]));
  }
  for (bool ok : outcome.send_ok) EXPECT_TRUE(ok);
}

TEST(FaultyTransport, CorruptionFlipsExactlyOneBit) {
  FaultPolicy policy;
  policy.corrupt_probability = 1.0;
  const Outcome outcome = send_through(policy, 7, 200);
  ASSERT_EQ(outcome.received.size(), 200u);
  EXPECT_EQ(outcome.counts.corrupted, 200u);
  for (int i = 0; i < 200; ++i) {
    const Bytes original = numbered(i);
    ASSERT_EQ(outcome.received[i].size(), original.size());
    int flipped = 0;
    for (size_t k = 0; k < original.size(); ++k) {
      flipped += std::popcount(static_cast<unsigned>(original[k] ^ outcome.received[i][k]));
    }
    EXPECT_EQ(flipped, 1) << "frame " << i;
  }
}

TEST(FaultyTransport, CorruptionLeavesEmptyFramesAlone) {
  asio::io_context io;
  FaultPolicy policy;
  policy.corrupt_probability = 1.0;
  FaultyRig setup(io, policy, 3);
  run(io, [&]() -> asio::awaitable<void> {
    auto link = co_await setup.connect_client();
    CO_ASSERT_OK(link);
    Connection& client = *link.value().client;
    Connection& server = *link.value().server;
    CO_ASSERT_TRUE((co_await client.send(Bytes())).ok());
    auto frame = co_await server.receive();
    CO_ASSERT_OK(frame);
    EXPECT_TRUE(frame.value().empty());
  });
  EXPECT_EQ(setup.faulty.counts().corrupted, 0u);
}

TEST(FaultyTransport, ReorderSwapsNeighbours) {
  FaultPolicy policy;
  policy.reorder_probability = 1.0;
  const Outcome outcome = send_through(policy, 5, 6);
  // Every other frame is held and goes out right after the next one.
  ASSERT_EQ(outcome.received.size(), 6u);
  const std::vector<uint64_t> expected = {1, 0, 3, 2, 5, 4};
  for (size_t k = 0; k < 6; ++k) EXPECT_EQ(number_of(outcome.received[k]), expected[k]);
  EXPECT_EQ(outcome.counts.reordered, 3u);
}

TEST(FaultyTransport, DisconnectAfterFramesClosesTheConnection) {
  FaultPolicy policy;
  policy.disconnect_after_frames = 3;
  const Outcome outcome = send_through(policy, 9, 5);
  ASSERT_EQ(outcome.send_ok.size(), 5u);
  EXPECT_TRUE(outcome.send_ok[0] && outcome.send_ok[1] && outcome.send_ok[2]);
  EXPECT_FALSE(outcome.send_ok[3]);
  EXPECT_FALSE(outcome.send_ok[4]);  // closed
  EXPECT_EQ(outcome.received.size(), 3u);
  EXPECT_EQ(outcome.counts.disconnects, 1u);
}

TEST(FaultyTransport, DisconnectProbabilityClosesOnceAndPeerSeesIt) {
  asio::io_context io;
  FaultPolicy policy;
  policy.disconnect_probability = 0.2;
  FaultyRig setup(io, policy, 11);
  int sent_before_failure = 0;
  std::string peer_error;
  run(io, [&]() -> asio::awaitable<void> {
    auto link = co_await setup.connect_client();
    CO_ASSERT_OK(link);
    Connection& client = *link.value().client;
    Connection& server = *link.value().server;
    for (int i = 0; i < 1000; ++i) {
      Status sent = co_await client.send(numbered(i));
      if (!sent.ok()) {
        EXPECT_NE(sent.message().find("disconnected by fault injection"), std::string::npos);
        break;
      }
      ++sent_before_failure;
    }
    for (int i = 0; i < sent_before_failure; ++i) CO_ASSERT_OK(co_await server.receive());
    auto after = co_await server.receive();
    CO_ASSERT_TRUE(!after.ok());
    peer_error = after.status().message();
  });
  EXPECT_LT(sent_before_failure, 1000);
  EXPECT_EQ(setup.faulty.counts().disconnects, 1u);
  EXPECT_NE(peer_error.find("closed by peer"), std::string::npos) << peer_error;
}

TEST(FaultyTransport, DelayKeepsOrderAndCounts) {
  FaultPolicy policy;
  policy.delay = Millis(1);
  policy.delay_jitter = Millis(2);
  const Outcome outcome = send_through(policy, 13, 10);
  ASSERT_EQ(outcome.received.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(outcome.received[i], numbered(i));
  EXPECT_EQ(outcome.counts.delayed, 10u);
}

TEST(FaultyTransport, SameSeedSameFaultsOtherSeedOtherFaults) {
  FaultPolicy policy;
  policy.drop_probability = 0.05;
  policy.corrupt_probability = 0.05;
  policy.reorder_probability = 0.05;
  const Outcome first = send_through(policy, 1234, 500);
  const Outcome again = send_through(policy, 1234, 500);
  const Outcome other = send_through(policy, 4321, 500);
  EXPECT_EQ(first.received, again.received);
  EXPECT_EQ(first.counts.dropped, again.counts.dropped);
  EXPECT_EQ(first.counts.corrupted, again.counts.corrupted);
  EXPECT_EQ(first.counts.reordered, again.counts.reordered);
  EXPECT_GT(first.counts.dropped, 0u);
  EXPECT_GT(first.counts.corrupted, 0u);
  EXPECT_GT(first.counts.reordered, 0u);
  EXPECT_NE(first.received, other.received);
}

TEST(FaultyTransport, PolicyChangesAtRunTime) {
  asio::io_context io;
  FaultyRig setup(io, FaultPolicy{}, 17);
  run(io, [&]() -> asio::awaitable<void> {
    auto link = co_await setup.connect_client();
    CO_ASSERT_OK(link);
    Connection& client = *link.value().client;
    Connection& server = *link.value().server;
    CO_ASSERT_TRUE((co_await client.send(numbered(0))).ok());
    FaultPolicy broken;
    broken.drop_probability = 1.0;
    setup.faulty.set_policy(broken);
    EXPECT_EQ(setup.faulty.policy().drop_probability, 1.0);
    CO_ASSERT_TRUE((co_await client.send(numbered(1))).ok());  // dropped
    setup.faulty.set_policy(FaultPolicy{});
    CO_ASSERT_TRUE((co_await client.send(numbered(2))).ok());
    auto a = co_await server.receive();
    auto b = co_await server.receive();
    CO_ASSERT_OK(a);
    CO_ASSERT_OK(b);
    EXPECT_EQ(number_of(a.value()), 0u);
    EXPECT_EQ(number_of(b.value()), 2u);
  });
  EXPECT_EQ(setup.faulty.counts().dropped, 1u);
}

TEST(FaultyTransport, AcceptedConnectionsAreWrappedToo) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor());
  MemoryTransport plain(network);
  FaultPolicy policy;
  policy.corrupt_probability = 1.0;
  FaultyTransport faulty(plain, policy, 21);
  auto listener = faulty.listen("mem:faulty-server");
  ASSERT_TRUE(listener.ok());
  EXPECT_EQ(listener.value()->address(), "mem:faulty-server");
  run(io, [&]() -> asio::awaitable<void> {
    auto client = co_await plain.connect("mem:faulty-server");
    CO_ASSERT_OK(client);
    auto server = co_await listener.value()->accept();
    CO_ASSERT_OK(server);
    CO_ASSERT_TRUE((co_await server.value()->send(numbered(3))).ok());
    auto frame = co_await client.value()->receive();
    CO_ASSERT_OK(frame);
    EXPECT_NE(frame.value(), numbered(3));
    // Receiving through the wrapper is untouched.
    CO_ASSERT_TRUE((co_await client.value()->send(numbered(4))).ok());
    auto back = co_await server.value()->receive();
    CO_ASSERT_OK(back);
    EXPECT_EQ(back.value(), numbered(4));
  });
  EXPECT_EQ(faulty.counts().corrupted, 1u);
}

TEST(FaultyTransport, ConnectErrorsPassThrough) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor());
  MemoryTransport plain(network);
  FaultyTransport faulty(plain, FaultPolicy{}, 1);
  EXPECT_FALSE(faulty.listen("bad").ok());
  run(io, [&]() -> asio::awaitable<void> {
    auto connection = co_await faulty.connect("mem:nobody");
    CO_ASSERT_TRUE(!connection.ok());
    EXPECT_NE(connection.status().message().find("no listener"), std::string::npos);
  });
}

TEST(TokenBucket, WaitsForTheDebtOnVirtualTime) {
  using namespace std::chrono;
  const TokenBucket::Clock::time_point t0{};
  TokenBucket bucket(1000, 500, t0);  // 1000 B/s, bucket of 500 B, starts full
  EXPECT_EQ(bucket.take(500, t0), microseconds(0));
  EXPECT_EQ(bucket.take(100, t0), microseconds(100'000));  // 100 B at 1000 B/s
  // After waiting those 100 ms, the bucket is empty again.
  EXPECT_EQ(bucket.take(250, t0 + milliseconds(100)), microseconds(250'000));
  // Two seconds later it is full (capped at 500), not at 2000.
  const auto later = t0 + milliseconds(350) + seconds(2);
  EXPECT_EQ(bucket.take(500, later), microseconds(0));
  EXPECT_EQ(bucket.take(1, later), microseconds(1000));
}

TEST(FaultyTransport, BandwidthCapMakesSendsWait) {
  FaultPolicy policy;
  policy.bandwidth_bytes_per_second = 100'000;
  policy.bandwidth_burst_bytes = 10'000;
  asio::io_context io;
  FaultyRig setup(io, policy, 1);
  run(io, [&]() -> asio::awaitable<void> {
    auto link = co_await setup.connect_client();
    CO_ASSERT_OK(link);
    Connection& client = *link.value().client;
    Connection& server = *link.value().server;
    for (int i = 0; i < 4; ++i) {
      CO_ASSERT_TRUE((co_await client.send(Bytes(10'000))).ok());
    }
    for (int i = 0; i < 4; ++i) CO_ASSERT_OK(co_await server.receive());
  });
  const FaultCounts counts = setup.faulty.counts();
  // The first frame empties the bucket; each later one owes 10 kB = 100 ms,
  // less whatever refilled meanwhile (real time, so only bounds are exact).
  EXPECT_GE(counts.bandwidth_waits, 1u);
  EXPECT_LE(counts.bandwidth_waits, 3u);
  EXPECT_GT(counts.bandwidth_wait_total.count(), 0);
  EXPECT_LE(counts.bandwidth_wait_total, std::chrono::microseconds(300'000));
}

}  // namespace
}  // namespace tern::net
