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
#include "net/net_test_support.h"
#include "net/tcp_transport.h"

namespace tern::net {
namespace {

using asio::ip::tcp;

using testing::pattern;
using testing::pending_receive_error;
using testing::rethrow;
using testing::run;

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

// Runs `body(pair)` on a pair connected through `transport`, until `io` has no
// work left.
template <typename Body>
void run_on_pair(asio::io_context& io, TcpTransport& transport, Body body) {
  run(io, [&]() -> asio::awaitable<void> {
    auto pair = co_await connect_pair(transport, transport);
    CO_ASSERT_OK(pair);
    co_await body(pair.value());
  });
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
  run_on_pair(io, transport, [&](Pair& p) -> asio::awaitable<void> {
    EXPECT_EQ(p.client->peer_address(), p.listener->address());
    EXPECT_EQ(p.server->peer_address().rfind("127.0.0.1:", 0), 0u);
    co_await testing::expect_round_trip_of_all_sizes(*p.client, *p.server);
    done = true;
  });
  EXPECT_TRUE(done);
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
    testing::spawn_two_way_exchange(co_await asio::this_coro::executor, *p.client, *p.server,
                                    kFrames, 1000, 37, seen_by_client, seen_by_server);
  });
  EXPECT_EQ(seen_by_client, kFrames);
  EXPECT_EQ(seen_by_server, kFrames);
}

TEST(TcpTransport, OversizedSendIsRefusedLocally) {
  asio::io_context io;
  TransportLimits limits;
  limits.max_frame_bytes = 1000;
  TcpTransport transport(io.get_executor(), limits);
  run_on_pair(io, transport, [&](Pair& p) -> asio::awaitable<void> {
    Status refused = co_await p.client->send(Bytes(1001));
    EXPECT_NE(refused.message().find("1001 bytes exceeds the limit of 1000"), std::string::npos)
        << refused.message();
    CO_ASSERT_TRUE((co_await p.client->send(Bytes(1000))).ok());
    auto frame = co_await p.server->receive();
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
  run_on_pair(io, transport, [&](Pair& p) -> asio::awaitable<void> {
    pending_error = co_await pending_receive_error(*p.server, [&] {
      p.server->close();
      p.server->close();  // idempotent
    });
    auto from_peer = co_await p.client->receive();
    CO_ASSERT_TRUE(!from_peer.ok());
    EXPECT_NE(from_peer.status().message().find("closed by peer"), std::string::npos)
        << from_peer.status().message();
    const Bytes one(1, 1);
    Status sent = co_await p.server->send(one);
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
  run_on_pair(io, transport, [&](Pair& p) -> asio::awaitable<void> {
    // The server never reads: once the socket buffers are full, a send waits
    // past the write timeout.
    const Bytes frame(limits.max_frame_bytes);
    for (int i = 0; i < 256 && error.empty(); ++i) {
      Status status = co_await p.client->send(frame);
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
  run_on_pair(io, transport, [&](Pair& p) -> asio::awaitable<void> {
    std::unique_ptr<Connection>& server = p.server;
    pending_error = co_await pending_receive_error(*server, [&] { server.reset(); });
  });
  EXPECT_NE(pending_error.find("connection closed"), std::string::npos) << pending_error;
}

TEST(TcpTransport, MaxConnectionsRefusesExtraAndKeepsServing) {
  asio::io_context io;
  TransportLimits limits;
  limits.max_connections = 1;
  TcpTransport transport(io.get_executor(), limits);
  testing::expect_max_connections_refuses_extra_and_keeps_serving(io, transport, "127.0.0.1:0",
                                                                  "127.0.0.1:");
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
  testing::expect_closing_listener_fails_pending_accept(io, transport, "127.0.0.1:0");
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
