// TcpTransport on 127.0.0.1 with port 0: framing, limits, timeouts, address
// parsing and listener behaviour. One io_context per test, run on the test
// thread.
#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "core/log.h"
#include "net/tcp_transport.h"

namespace tern::net {
namespace {

using asio::ip::tcp;

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

asio::awaitable<void> sleep_ms(int ms) {
  asio::steady_timer timer(co_await asio::this_coro::executor, Millis(ms));
  co_await timer.async_wait(asio::use_awaitable);
}

Bytes pattern(size_t size, uint8_t seed) {
  Bytes bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(seed + i * 31 + (i >> 8));
  return bytes;
}

struct Pair {
  std::unique_ptr<Listener> listener;
  std::unique_ptr<Connection> client;
  std::unique_ptr<Connection> server;
};

// A listener on 127.0.0.1:0 and one connection through it.
asio::awaitable<Result<Pair>> connect_pair(TcpTransport& server_side, TcpTransport& client_side) {
  Pair pair;
  TERN_CO_ASSIGN_OR_RETURN(pair.listener, server_side.listen("127.0.0.1:0"));
  TERN_CO_ASSIGN_OR_RETURN(pair.client, co_await client_side.connect(pair.listener->address()));
  TERN_CO_ASSIGN_OR_RETURN(pair.server, co_await pair.listener->accept());
  co_return pair;
}

TEST(TcpTransport, ListenOnPortZeroReportsTheBoundPort) {
  asio::io_context io;
  TcpTransport transport(io.get_executor());
  auto listener = transport.listen("127.0.0.1:0");
  ASSERT_TRUE(listener.ok()) << listener.status().message();
  const std::string address = listener.value()->address();
  EXPECT_EQ(address.rfind("127.0.0.1:", 0), 0u) << address;
  EXPECT_NE(address, "127.0.0.1:0");
  auto parsed = parse_tcp_address(address, false);
  ASSERT_TRUE(parsed.ok());
  EXPECT_GT(parsed.value().port, 0);
}

TEST(TcpTransport, RoundTripsFramesOfAllSizesInOrder) {
  asio::io_context io;
  TcpTransport transport(io.get_executor());
  bool done = false;
  run(io, [&]() -> asio::awaitable<void> {
    auto pair = co_await connect_pair(transport, transport);
    CO_ASSERT_OK(pair);
    Pair& p = pair.value();
    EXPECT_EQ(p.client->peer_address(), p.listener->address());
    EXPECT_EQ(p.server->peer_address().rfind("127.0.0.1:", 0), 0u);
    const std::vector<size_t> sizes = {0, 1, 64 * 1024, 1024 * 1024};
    // Sender and receiver run concurrently: a 1 MiB frame exceeds socket buffers.
    asio::co_spawn(
        co_await asio::this_coro::executor,
        [&]() -> asio::awaitable<void> {
          for (size_t i = 0; i < sizes.size(); ++i) {
            Status sent = co_await p.client->send(pattern(sizes[i], static_cast<uint8_t>(i)));
            CO_ASSERT_TRUE(sent.ok());
          }
        },
        rethrow);
    for (size_t i = 0; i < sizes.size(); ++i) {
      auto frame = co_await p.server->receive();
      CO_ASSERT_OK(frame);
      EXPECT_EQ(frame.value(), pattern(sizes[i], static_cast<uint8_t>(i)));
    }
    done = true;
  });
  EXPECT_TRUE(done);
}

asio::awaitable<void> send_frames(Connection& connection, int count, uint8_t tag) {
  for (int i = 0; i < count; ++i) {
    Status sent = co_await connection.send(pattern(1000 + 37 * i, static_cast<uint8_t>(tag + i)));
    CO_ASSERT_TRUE(sent.ok());
  }
}

asio::awaitable<void> receive_frames(Connection& connection, int count, uint8_t tag, int& seen) {
  for (int i = 0; i < count; ++i) {
    auto frame = co_await connection.receive();
    CO_ASSERT_OK(frame);
    EXPECT_EQ(frame.value(), pattern(1000 + 37 * i, static_cast<uint8_t>(tag + i)));
    ++seen;
  }
}

TEST(TcpTransport, ManyFramesBothDirectionsConcurrently) {
  asio::io_context io;
  TcpTransport transport(io.get_executor());
  constexpr int kFrames = 300;
  int seen_by_client = 0;
  int seen_by_server = 0;
  Pair p;
  run(io, [&]() -> asio::awaitable<void> {
    auto pair = co_await connect_pair(transport, transport);
    CO_ASSERT_OK(pair);
    p = std::move(pair.value());
    auto executor = co_await asio::this_coro::executor;
    asio::co_spawn(executor, send_frames(*p.client, kFrames, 1), rethrow);
    asio::co_spawn(executor, send_frames(*p.server, kFrames, 2), rethrow);
    asio::co_spawn(executor, receive_frames(*p.client, kFrames, 2, seen_by_client), rethrow);
    asio::co_spawn(executor, receive_frames(*p.server, kFrames, 1, seen_by_server), rethrow);
  });
  EXPECT_EQ(seen_by_client, kFrames);
  EXPECT_EQ(seen_by_server, kFrames);
}

TEST(TcpTransport, OversizedSendIsRefusedLocally) {
  asio::io_context io;
  TransportLimits limits;
  limits.max_frame_bytes = 1000;
  TcpTransport transport(io.get_executor(), limits);
  run(io, [&]() -> asio::awaitable<void> {
    auto pair = co_await connect_pair(transport, transport);
    CO_ASSERT_OK(pair);
    Status refused = co_await pair.value().client->send(Bytes(1001));
    EXPECT_NE(refused.message().find("1001 bytes exceeds the limit of 1000"), std::string::npos)
        << refused.message();
    CO_ASSERT_TRUE((co_await pair.value().client->send(Bytes(1000))).ok());
    auto frame = co_await pair.value().server->receive();
    CO_ASSERT_OK(frame);
    EXPECT_EQ(frame.value().size(), 1000u);
  });
}

TEST(TcpTransport, OversizedFrameFromPeerIsRefusedAndCloses) {
  asio::io_context io;
  TransportLimits small;
  small.max_frame_bytes = 1000;
  TcpTransport server_side(io.get_executor(), small);
  TcpTransport client_side(io.get_executor());
  LogCapture capture;
  run(io, [&]() -> asio::awaitable<void> {
    auto pair = co_await connect_pair(server_side, client_side);
    CO_ASSERT_OK(pair);
    Pair& p = pair.value();
    CO_ASSERT_TRUE((co_await p.client->send(Bytes(5000))).ok());
    auto frame = co_await p.server->receive();
    CO_ASSERT_TRUE(!frame.ok());
    EXPECT_NE(frame.status().message().find("frame of 5000 bytes exceeds the limit of 1000"),
              std::string::npos)
        << frame.status().message();
    EXPECT_FALSE((co_await p.server->receive()).ok());
    // The client sees the close.
    auto closed = co_await p.client->receive();
    EXPECT_FALSE(closed.ok());
  });
  EXPECT_TRUE(capture.contains("frame of 5000 bytes exceeds the limit of 1000"));
}

// A raw socket that claims a 4 GiB frame: refused from the header alone.
TEST(TcpTransport, HugeLengthPrefixFromRawSocketIsRefusedBeforeAllocation) {
  asio::io_context io;
  TcpTransport transport(io.get_executor());
  LogCapture capture;
  run(io, [&]() -> asio::awaitable<void> {
    auto listener = transport.listen("127.0.0.1:0");
    CO_ASSERT_OK(listener);
    auto executor = co_await asio::this_coro::executor;
    tcp::socket raw(executor);
    auto target = parse_tcp_address(listener.value()->address(), false);
    CO_ASSERT_OK(target);
    co_await raw.async_connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), target.value().port),
        asio::use_awaitable);
    const uint8_t header[4] = {0xff, 0xff, 0xff, 0xff};
    co_await asio::async_write(raw, asio::buffer(header), asio::use_awaitable);
    auto server = co_await listener.value()->accept();
    CO_ASSERT_OK(server);
    auto frame = co_await server.value()->receive();
    CO_ASSERT_TRUE(!frame.ok());
    const std::string message = frame.status().message();
    EXPECT_NE(message.find("4294967295 bytes"), std::string::npos) << message;
    EXPECT_NE(message.find("limit of 1048576"), std::string::npos) << message;
    EXPECT_NE(message.find("127.0.0.1:" + std::to_string(raw.local_endpoint().port())),
              std::string::npos)
        << message;
    // The server closed its end: the raw socket reads end-of-file.
    uint8_t byte;
    asio::error_code ec;
    co_await raw.async_read_some(asio::buffer(&byte, 1),
                                 asio::redirect_error(asio::use_awaitable, ec));
    EXPECT_TRUE(ec == asio::error::eof || ec == asio::error::connection_reset) << ec.message();
  });
  EXPECT_TRUE(capture.contains("4294967295 bytes exceeds the limit of 1048576"));
}

TEST(TcpTransport, ReadTimeoutFiresWhenPeerStallsMidFrame) {
  asio::io_context io;
  TransportLimits limits;
  limits.read_timeout = Millis(50);
  TcpTransport transport(io.get_executor(), limits);
  run(io, [&]() -> asio::awaitable<void> {
    auto listener = transport.listen("127.0.0.1:0");
    CO_ASSERT_OK(listener);
    tcp::socket raw(co_await asio::this_coro::executor);
    auto target = parse_tcp_address(listener.value()->address(), false);
    CO_ASSERT_OK(target);
    co_await raw.async_connect(
        tcp::endpoint(asio::ip::make_address("127.0.0.1"), target.value().port),
        asio::use_awaitable);
    // A header announcing 10 bytes, then only 3 of them; the socket stays open.
    const uint8_t partial[7] = {10, 0, 0, 0, 1, 2, 3};
    co_await asio::async_write(raw, asio::buffer(partial), asio::use_awaitable);
    auto server = co_await listener.value()->accept();
    CO_ASSERT_OK(server);
    auto frame = co_await server.value()->receive();
    CO_ASSERT_TRUE(!frame.ok());
    EXPECT_NE(frame.status().message().find("read timeout after 50 ms"), std::string::npos)
        << frame.status().message();
    EXPECT_FALSE((co_await server.value()->receive()).ok());  // closed
  });
}

TEST(TcpTransport, CloseFailsPendingReceiveAndPeerSeesClosedByPeer) {
  asio::io_context io;
  TcpTransport transport(io.get_executor());
  std::string pending_error;
  run(io, [&]() -> asio::awaitable<void> {
    auto pair = co_await connect_pair(transport, transport);
    CO_ASSERT_OK(pair);
    Pair& p = pair.value();
    asio::co_spawn(
        co_await asio::this_coro::executor,
        [&]() -> asio::awaitable<void> {
          auto frame = co_await p.server->receive();
          pending_error = frame.ok() ? "ok" : frame.status().message();
        },
        rethrow);
    co_await sleep_ms(1);
    p.server->close();
    p.server->close();  // idempotent
    auto from_peer = co_await p.client->receive();
    CO_ASSERT_TRUE(!from_peer.ok());
    EXPECT_NE(from_peer.status().message().find("closed by peer"), std::string::npos)
        << from_peer.status().message();
    Status sent = co_await p.server->send(Bytes(1, 1));
    EXPECT_NE(sent.message().find("connection closed"), std::string::npos) << sent.message();
  });
  EXPECT_NE(pending_error.find("connection closed"), std::string::npos) << pending_error;
}

TEST(TcpTransport, WriteTimeoutWhenPeerDoesNotRead) {
  asio::io_context io;
  TransportLimits limits;
  limits.write_timeout = Millis(50);
  TcpTransport transport(io.get_executor(), limits);
  std::string error;
  int sent = 0;
  run(io, [&]() -> asio::awaitable<void> {
    auto pair = co_await connect_pair(transport, transport);
    CO_ASSERT_OK(pair);
    // The server never reads: once the socket buffers are full, a send waits
    // past the write timeout.
    const Bytes frame(limits.max_frame_bytes);
    for (int i = 0; i < 256 && error.empty(); ++i) {
      Status status = co_await pair.value().client->send(frame);
      if (status.ok()) {
        ++sent;
      } else {
        error = status.message();
      }
    }
  });
  EXPECT_NE(error.find("write timeout after 50 ms"), std::string::npos)
      << error << " after " << sent << " frames";
}

TEST(TcpTransport, DestroyingAConnectionWithPendingReceiveIsSafe) {
  asio::io_context io;
  TcpTransport transport(io.get_executor());
  std::string pending_error;
  run(io, [&]() -> asio::awaitable<void> {
    auto pair = co_await connect_pair(transport, transport);
    CO_ASSERT_OK(pair);
    Connection* server = pair.value().server.get();
    asio::co_spawn(
        co_await asio::this_coro::executor,
        [&, server]() -> asio::awaitable<void> {
          auto frame = co_await server->receive();
          pending_error = frame.ok() ? "ok" : frame.status().message();
        },
        rethrow);
    co_await sleep_ms(1);
    pair.value().server.reset();
  });
  EXPECT_NE(pending_error.find("connection closed"), std::string::npos) << pending_error;
}

TEST(TcpTransport, MaxConnectionsRefusesExtraAndKeepsServing) {
  asio::io_context io;
  TransportLimits limits;
  limits.max_connections = 1;
  TcpTransport transport(io.get_executor(), limits);
  auto listener = transport.listen("127.0.0.1:0");
  ASSERT_TRUE(listener.ok());
  int handlers_done = 0;
  // Server: accepts until closed, echoes every frame of each connection.
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
    const std::string address = listener.value()->address();
    auto first = co_await transport.connect(address);
    CO_ASSERT_OK(first);
    CO_ASSERT_TRUE((co_await first.value()->send(Bytes(1, 1))).ok());
    CO_ASSERT_OK(co_await first.value()->receive());

    auto extra = co_await transport.connect(address);
    CO_ASSERT_OK(extra);  // the kernel completes the handshake; the listener then closes it
    auto refused = co_await extra.value()->receive();
    CO_ASSERT_TRUE(!refused.ok());
    EXPECT_TRUE(capture.contains("refused connection from 127.0.0.1:"));
    EXPECT_TRUE(capture.contains("1 connections alive (max 1)"));

    first.value()->close();
    while (handlers_done < 1) co_await sleep_ms(1);
    auto later = co_await transport.connect(address);
    CO_ASSERT_OK(later);
    CO_ASSERT_TRUE((co_await later.value()->send(Bytes(1, 2))).ok());
    auto echo = co_await later.value()->receive();
    CO_ASSERT_OK(echo);
    EXPECT_EQ(echo.value(), Bytes(1, 2));
    later.value()->close();
    listener.value()->close();
  });
}

TEST(TcpTransport, ConnectToClosedPortFailsCleanly) {
  asio::io_context io;
  TcpTransport transport(io.get_executor());
  std::string address;
  {
    auto listener = transport.listen("127.0.0.1:0");
    ASSERT_TRUE(listener.ok());
    address = listener.value()->address();
  }  // closed: nothing listens on that port any more
  run(io, [&]() -> asio::awaitable<void> {
    auto connection = co_await transport.connect(address);
    CO_ASSERT_TRUE(!connection.ok());
    EXPECT_EQ(connection.status().message().rfind("connect to " + address + ": ", 0), 0u)
        << connection.status().message();
  });
}

TEST(TcpTransport, ClosingListenerFailsPendingAccept) {
  asio::io_context io;
  TcpTransport transport(io.get_executor());
  auto listener = transport.listen("127.0.0.1:0");
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
    co_await sleep_ms(1);
    listener.value()->close();
  });
  EXPECT_NE(error.find("listener closed"), std::string::npos) << error;
}

TEST(TcpTransport, ParsesAddresses) {
  auto v4 = parse_tcp_address("10.0.0.1:65535", false);
  ASSERT_TRUE(v4.ok());
  EXPECT_EQ(v4.value().host, "10.0.0.1");
  EXPECT_EQ(v4.value().port, 65535);
  auto local = parse_tcp_address("localhost:80", false);
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(local.value().host, "127.0.0.1");
  auto v6 = parse_tcp_address("[::1]:8080", false);
  ASSERT_TRUE(v6.ok());
  EXPECT_EQ(v6.value().host, "::1");
  EXPECT_EQ(v6.value().port, 8080);
  EXPECT_TRUE(parse_tcp_address("0.0.0.0:0", true).ok());
}

TEST(TcpTransport, RejectsBadAddresses) {
  struct Case {
    const char* address;
    const char* expected;
  };
  const Case cases[] = {
      {"", "expected HOST:PORT"},
      {"1.2.3.4", "expected HOST:PORT"},
      {"1.2.3.4:", "port '' is not a number"},
      {"1.2.3.4:70000", "port '70000' is not a number in 0..65535"},
      {"1.2.3.4:8x", "port '8x'"},
      {"1.2.3.4:-1", "port '-1'"},
      {"1.2.3.4:0", "port 0 is only valid for listening"},
      {"example.com:80", "host 'example.com' is not an IPv4 literal"},
      {"1.2.3:80", "host '1.2.3'"},
      {"::1:80", "host '::1'"},
      {"[::1]", "expected [IPv6]:PORT"},
      {"[::1:80", "expected [IPv6]:PORT"},
      {"[1.2.3.4]:80", "'1.2.3.4' is not an IPv6 address"},
      {"mem:x", "host 'mem'"},
  };
  for (const Case& c : cases) {
    auto parsed = parse_tcp_address(c.address, false);
    ASSERT_FALSE(parsed.ok()) << c.address;
    EXPECT_NE(parsed.status().message().find(c.expected), std::string::npos)
        << c.address << " -> " << parsed.status().message();
    EXPECT_NE(parsed.status().message().find(std::string("'") + c.address + "'"),
              std::string::npos);
  }
  asio::io_context io;
  TcpTransport transport(io.get_executor());
  auto listened = transport.listen("nowhere");
  ASSERT_FALSE(listened.ok());
  EXPECT_EQ(listened.status().message().rfind("listen: address 'nowhere'", 0), 0u)
      << listened.status().message();
  run(io, [&]() -> asio::awaitable<void> {
    auto connected = co_await transport.connect("example.com:80");
    CO_ASSERT_TRUE(!connected.ok());
    EXPECT_EQ(connected.status().message().rfind("connect: address 'example.com:80'", 0), 0u);
  });
}

TEST(TcpTransport, ListenOnAPortInUseFails) {
  asio::io_context io;
  TcpTransport transport(io.get_executor());
  auto first = transport.listen("127.0.0.1:0");
  ASSERT_TRUE(first.ok());
  auto second = transport.listen(first.value()->address());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().message().rfind("listen on " + first.value()->address(), 0), 0u)
      << second.status().message();
}

}  // namespace
}  // namespace tern::net
