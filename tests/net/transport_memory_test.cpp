// MemoryTransport: framing, limits, back-pressure and close semantics, all on
// one single-threaded io_context per test.
#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "core/log.h"
#include "net/memory_transport.h"
#include "net/net_test_support.h"

namespace tern::net {
namespace {

using testing::pattern;
using testing::pending_receive_error;
using testing::rethrow;
using testing::run;
using testing::yield;

TransportLimits fast_fail_limits() {
  TransportLimits limits;
  limits.read_timeout = Millis(20);
  limits.write_timeout = Millis(20);
  return limits;
}

TEST(MemoryTransport, RoundTripsFramesOfAllSizesInOrder) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor());
  MemoryTransport transport(network);
  bool done = false;
  run(io, [&]() -> asio::awaitable<void> {
    auto listener = transport.listen("mem:server");
    CO_ASSERT_OK(listener);
    EXPECT_EQ(listener.value()->address(), "mem:server");
    auto client = co_await transport.connect("mem:server");
    CO_ASSERT_OK(client);
    auto server = co_await listener.value()->accept();
    CO_ASSERT_OK(server);
    EXPECT_EQ(client.value()->peer_address(), "mem:server");
    co_await testing::expect_round_trip_of_all_sizes(*client.value(), *server.value());
    done = true;
  });
  EXPECT_TRUE(done);
}

TEST(MemoryTransport, ManyFramesBothDirectionsConcurrently) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor(), MemoryQueueLimits{.max_frames = 3, .max_bytes = 1000});
  auto [a, b] = network.connection_pair();
  constexpr int kFrames = 500;
  int seen_by_a = 0;
  int seen_by_b = 0;
  testing::spawn_two_way_exchange(io.get_executor(), *a, *b, kFrames, 100, 1, seen_by_a, seen_by_b);
  io.run();
  EXPECT_EQ(seen_by_a, kFrames);
  EXPECT_EQ(seen_by_b, kFrames);
}

TEST(MemoryTransport, OversizedSendIsRefusedAndConnectionStaysUsable) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor());
  TransportLimits limits;
  limits.max_frame_bytes = 1000;
  auto [a, b] = network.connection_pair(limits, limits);
  run(io, [&]() -> asio::awaitable<void> {
    Status refused = co_await a->send(Bytes(1001));
    EXPECT_FALSE(refused.ok());
    EXPECT_NE(refused.message().find("1001 bytes exceeds the limit of 1000"), std::string::npos)
        << refused.message();
    CO_ASSERT_TRUE((co_await a->send(Bytes(1000))).ok());
    auto frame = co_await b->receive();
    CO_ASSERT_OK(frame);
    EXPECT_EQ(frame.value().size(), 1000u);
  });
}

TEST(MemoryTransport, OversizedReceiveIsRefusedLoggedAndCloses) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor());
  TransportLimits small;
  small.max_frame_bytes = 1000;
  auto [big_sender, small_receiver] = network.connection_pair(TransportLimits{}, small);
  LogCapture capture;
  run(io, [&]() -> asio::awaitable<void> {
    CO_ASSERT_TRUE((co_await big_sender->send(Bytes(5000))).ok());
    auto frame = co_await small_receiver->receive();
    CO_ASSERT_TRUE(!frame.ok());
    const std::string message = frame.status().message();
    EXPECT_NE(message.find("5000"), std::string::npos) << message;
    EXPECT_NE(message.find("1000"), std::string::npos) << message;
    EXPECT_NE(message.find(small_receiver->peer_address()), std::string::npos) << message;
    // Closed: the receiver's next receive and the sender's next send fail.
    auto again = co_await small_receiver->receive();
    EXPECT_FALSE(again.ok());
    Status sent = co_await big_sender->send(Bytes(1));
    EXPECT_FALSE(sent.ok());
    EXPECT_NE(sent.message().find("closed by peer"), std::string::npos) << sent.message();
  });
  EXPECT_TRUE(capture.contains("5000 bytes exceeds the limit of 1000"));
}

TEST(MemoryTransport, ReadTimeoutFiresAndCloses) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor());
  auto [a, b] = network.connection_pair(fast_fail_limits(), TransportLimits{});
  run(io, [&]() -> asio::awaitable<void> {
    auto frame = co_await a->receive();
    CO_ASSERT_TRUE(!frame.ok());
    EXPECT_NE(frame.status().message().find("read timeout after 20 ms"), std::string::npos)
        << frame.status().message();
    Status sent = co_await b->send(Bytes(3));
    EXPECT_FALSE(sent.ok());
  });
}

TEST(MemoryTransport, SenderBlocksOnFullQueueAndResumesAfterReads) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor(),
                        MemoryQueueLimits{.max_frames = 2, .max_bytes = 1 << 20});
  auto [a, b] = network.connection_pair();
  int sent = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (int i = 0; i < 10; ++i) {
          CO_ASSERT_TRUE((co_await a->send(pattern(10, static_cast<uint8_t>(i)))).ok());
          ++sent;
        }
      },
      rethrow);
  run(io, [&]() -> asio::awaitable<void> {
    co_await yield(5);
    EXPECT_EQ(sent, 2);  // the queue holds two frames; the third send waits
    for (int i = 0; i < 10; ++i) {
      auto frame = co_await b->receive();
      CO_ASSERT_OK(frame);
      EXPECT_EQ(frame.value(), pattern(10, static_cast<uint8_t>(i)));
      co_await yield(5);
      EXPECT_EQ(sent, std::min(10, i + 3));
    }
  });
  EXPECT_EQ(sent, 10);
}

TEST(MemoryTransport, ByteCapacityBoundsTheQueueButLetsOneBigFrameThrough) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor(), MemoryQueueLimits{.max_frames = 64, .max_bytes = 100});
  auto [a, b] = network.connection_pair();
  int sent = 0;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        CO_ASSERT_TRUE((co_await a->send(Bytes(500))).ok());  // alone: fits
        ++sent;
        CO_ASSERT_TRUE((co_await a->send(Bytes(1))).ok());  // waits for the 500
        ++sent;
      },
      rethrow);
  run(io, [&]() -> asio::awaitable<void> {
    co_await yield(5);
    EXPECT_EQ(sent, 1);
    auto frame = co_await b->receive();
    CO_ASSERT_OK(frame);
    co_await yield(5);
    EXPECT_EQ(sent, 2);
  });
}

TEST(MemoryTransport, WriteTimeoutWhenPeerDoesNotRead) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor(), MemoryQueueLimits{.max_frames = 1, .max_bytes = 1000});
  auto [a, b] = network.connection_pair(fast_fail_limits(), TransportLimits{});
  run(io, [&]() -> asio::awaitable<void> {
    CO_ASSERT_TRUE((co_await a->send(Bytes(1))).ok());
    Status blocked = co_await a->send(Bytes(1));
    EXPECT_FALSE(blocked.ok());
    EXPECT_NE(blocked.message().find("write timeout after 20 ms"), std::string::npos)
        << blocked.message();
  });
}

TEST(MemoryTransport, CloseFailsPeerAfterQueuedFramesAndPendingLocalOps) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor());
  auto [a, b] = network.connection_pair();
  run(io, [&]() -> asio::awaitable<void> {
    CO_ASSERT_TRUE((co_await a->send(Bytes(1, 7))).ok());
    a->close();
    a->close();  // idempotent
    auto queued = co_await b->receive();
    CO_ASSERT_OK(queued);
    EXPECT_EQ(queued.value(), Bytes(1, 7));
    auto after = co_await b->receive();
    CO_ASSERT_TRUE(!after.ok());
    EXPECT_NE(after.status().message().find("closed by peer"), std::string::npos);
    Status sent = co_await a->send(Bytes(1, 1));
    EXPECT_NE(sent.message().find("connection closed"), std::string::npos);
  });

  // A receive waiting on a connection that is closed locally fails.
  asio::io_context io2;
  MemoryNetwork network2(io2.get_executor());
  auto [c, d] = network2.connection_pair();
  std::string pending_error;
  run(io2, [&]() -> asio::awaitable<void> {
    pending_error = co_await pending_receive_error(*c, [&] { c->close(); });
  });
  EXPECT_NE(pending_error.find("connection closed"), std::string::npos) << pending_error;
}

TEST(MemoryTransport, DestroyingAConnectionWithPendingReceiveIsSafe) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor());
  auto [c, d] = network.connection_pair();
  std::string pending_error;
  run(io, [&]() -> asio::awaitable<void> {
    pending_error = co_await pending_receive_error(*c, [&] { c.reset(); });
  });
  EXPECT_NE(pending_error.find("connection closed"), std::string::npos) << pending_error;
}

TEST(MemoryTransport, MaxConnectionsRefusesExtraAndKeepsServing) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor());
  TransportLimits limits;
  limits.max_connections = 1;
  MemoryTransport transport(network, limits);
  testing::expect_max_connections_refuses_extra_and_keeps_serving(io, transport, "mem:hub",
                                                                  "mem:client-1");
}

TEST(MemoryTransport, AddressErrors) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor());
  MemoryTransport transport(network);
  for (const char* bad : {"", "mem:", "server", "tcp:1.2.3.4:5", "MEM:x"}) {
    auto listened = transport.listen(bad);
    EXPECT_FALSE(listened.ok()) << bad;
    if (!listened.ok()) {
      EXPECT_NE(listened.status().message().find("mem:NAME"), std::string::npos);
    }
  }
  auto first = transport.listen("mem:a");
  ASSERT_TRUE(first.ok());
  auto duplicate = transport.listen("mem:a");
  ASSERT_FALSE(duplicate.ok());
  EXPECT_NE(duplicate.status().message().find("already in use"), std::string::npos);
  run(io, [&]() -> asio::awaitable<void> {
    auto nobody = co_await transport.connect("mem:nobody");
    CO_ASSERT_TRUE(!nobody.ok());
    EXPECT_NE(nobody.status().message().find("no listener"), std::string::npos);
    auto malformed = co_await transport.connect("127.0.0.1:80");
    EXPECT_FALSE(malformed.ok());
    // A closed listener fails its accept and frees the name.
    first.value()->close();
    auto accepted = co_await first.value()->accept();
    EXPECT_FALSE(accepted.ok());
    auto gone = co_await transport.connect("mem:a");
    EXPECT_FALSE(gone.ok());
  });
  EXPECT_TRUE(transport.listen("mem:a").ok());
}

TEST(MemoryTransport, ClosingListenerFailsPendingAccept) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor());
  MemoryTransport transport(network);
  testing::expect_closing_listener_fails_pending_accept(io, transport, "mem:x");
}

}  // namespace
}  // namespace tern::net
