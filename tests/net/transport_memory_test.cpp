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

namespace tern::net {
namespace {

// gtest's ASSERT_* `return`, which a coroutine cannot.
#define CO_ASSERT_TRUE(cond)             \
  do {                                   \
    if (!(cond)) {                       \
      ADD_FAILURE() << "failed: " #cond; \
      co_return;                         \
    }                                    \
  } while (0)
#define CO_ASSERT_OK(expr)                                          \
  do {                                                              \
    const auto& co_result_ = (expr);                                \
    if (!co_result_.ok()) {                                         \
      ADD_FAILURE() << #expr ": " << co_result_.status().message(); \
      co_return;                                                    \
    }                                                               \
  } while (0)

void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

template <typename Coroutine>
void run(asio::io_context& io, Coroutine coroutine) {
  asio::co_spawn(io, std::move(coroutine), rethrow);
  io.run();
}

// Lets other coroutines on the io_context run.
asio::awaitable<void> yield(int times = 1) {
  for (int i = 0; i < times; ++i) co_await asio::post(asio::use_awaitable);
}

Bytes pattern(size_t size, uint8_t seed) {
  Bytes bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(seed + i * 31 + (i >> 8));
  return bytes;
}

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
    const std::vector<size_t> sizes = {0, 1, 64 * 1024, 1024 * 1024};
    for (size_t i = 0; i < sizes.size(); ++i) {
      Status sent = co_await client.value()->send(pattern(sizes[i], static_cast<uint8_t>(i)));
      CO_ASSERT_TRUE(sent.ok());
    }
    for (size_t i = 0; i < sizes.size(); ++i) {
      auto frame = co_await server.value()->receive();
      CO_ASSERT_OK(frame);
      EXPECT_EQ(frame.value(), pattern(sizes[i], static_cast<uint8_t>(i)));
    }
    done = true;
  });
  EXPECT_TRUE(done);
}

asio::awaitable<void> send_frames(Connection& connection, int count, uint8_t tag) {
  for (int i = 0; i < count; ++i) {
    Status sent = co_await connection.send(pattern(100 + i, static_cast<uint8_t>(tag + i)));
    CO_ASSERT_TRUE(sent.ok());
  }
}

asio::awaitable<void> receive_frames(Connection& connection, int count, uint8_t tag, int& seen) {
  for (int i = 0; i < count; ++i) {
    auto frame = co_await connection.receive();
    CO_ASSERT_OK(frame);
    EXPECT_EQ(frame.value(), pattern(100 + i, static_cast<uint8_t>(tag + i)));
    ++seen;
  }
}

TEST(MemoryTransport, ManyFramesBothDirectionsConcurrently) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor(), MemoryQueueLimits{.max_frames = 3, .max_bytes = 1000});
  auto [a, b] = network.connection_pair();
  constexpr int kFrames = 500;
  int seen_by_a = 0;
  int seen_by_b = 0;
  asio::co_spawn(io, send_frames(*a, kFrames, 1), rethrow);
  asio::co_spawn(io, send_frames(*b, kFrames, 2), rethrow);
  asio::co_spawn(io, receive_frames(*a, kFrames, 2, seen_by_a), rethrow);
  asio::co_spawn(io, receive_frames(*b, kFrames, 1, seen_by_b), rethrow);
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
  asio::co_spawn(
      io2,
      [&]() -> asio::awaitable<void> {
        auto frame = co_await c->receive();
        pending_error = frame.ok() ? "ok" : frame.status().message();
      },
      rethrow);
  run(io2, [&]() -> asio::awaitable<void> {
    co_await yield(2);
    c->close();
    co_return;
  });
  EXPECT_NE(pending_error.find("connection closed"), std::string::npos) << pending_error;
}

TEST(MemoryTransport, DestroyingAConnectionWithPendingReceiveIsSafe) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor());
  auto [c, d] = network.connection_pair();
  std::string pending_error;
  asio::co_spawn(
      io,
      [&, conn = c.get()]() -> asio::awaitable<void> {
        auto frame = co_await conn->receive();
        pending_error = frame.ok() ? "ok" : frame.status().message();
      },
      rethrow);
  run(io, [&]() -> asio::awaitable<void> {
    co_await yield(2);
    c.reset();
  });
  EXPECT_NE(pending_error.find("connection closed"), std::string::npos) << pending_error;
}

TEST(MemoryTransport, MaxConnectionsRefusesExtraAndKeepsServing) {
  asio::io_context io;
  MemoryNetwork network(io.get_executor());
  TransportLimits limits;
  limits.max_connections = 1;
  MemoryTransport transport(network, limits);
  auto listener = transport.listen("mem:hub");
  ASSERT_TRUE(listener.ok());
  int handlers_done = 0;
  // Server: accepts forever, echoes every frame of each connection.
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (;;) {
          auto accepted = co_await listener.value()->accept();
          if (!accepted.ok()) co_return;
          asio::co_spawn(
              io,
              [&, connection = std::shared_ptr<Connection>(
                      std::move(accepted.value()))]() -> asio::awaitable<void> {
                for (;;) {
                  auto frame = co_await connection->receive();
                  if (!frame.ok()) break;
                  if (!(co_await connection->send(frame.value())).ok()) break;
                }
                connection->close();
                ++handlers_done;
              },
              rethrow);
        }
      },
      rethrow);
  LogCapture capture;
  run(io, [&]() -> asio::awaitable<void> {
    auto first = co_await transport.connect("mem:hub");
    CO_ASSERT_OK(first);
    CO_ASSERT_TRUE((co_await first.value()->send(Bytes(1, 1))).ok());
    auto echo = co_await first.value()->receive();
    CO_ASSERT_OK(echo);

    auto extra = co_await transport.connect("mem:hub");
    CO_ASSERT_OK(extra);  // like TCP: refused once the listener gets to it
    auto refused = co_await extra.value()->receive();
    CO_ASSERT_TRUE(!refused.ok());
    EXPECT_NE(refused.status().message().find("closed by peer"), std::string::npos);
    EXPECT_TRUE(capture.contains("refused connection from mem:client-1"));
    EXPECT_TRUE(capture.contains("1 connections alive (max 1)"));

    first.value()->close();
    while (handlers_done < 1) co_await yield();
    auto later = co_await transport.connect("mem:hub");
    CO_ASSERT_OK(later);
    CO_ASSERT_TRUE((co_await later.value()->send(Bytes(1, 2))).ok());
    auto later_echo = co_await later.value()->receive();
    CO_ASSERT_OK(later_echo);
    EXPECT_EQ(later_echo.value(), Bytes(1, 2));
    listener.value()->close();
  });
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
  auto listener = transport.listen("mem:x");
  ASSERT_TRUE(listener.ok());
  std::string error;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto accepted = co_await listener.value()->accept();
        error = accepted.ok() ? "ok" : accepted.status().message();
      },
      rethrow);
  run(io, [&]() -> asio::awaitable<void> {
    co_await yield(2);
    listener.value()->close();
  });
  EXPECT_NE(error.find("listener closed"), std::string::npos) << error;
}

}  // namespace
}  // namespace tern::net
