// TCP transport (standalone asio, C++20 coroutines).
//
// Wire framing: each frame is a 4-byte little-endian length, then that many
// bytes. The length is checked against max_frame_bytes before the body is
// read or allocated: an oversized length fails receive() with a Status naming
// the size, the limit and the peer, writes a log line and closes the
// connection. Timeouts (TransportLimits) race each operation against a steady
// timer: connect_timeout per connect(), read_timeout per frame from the first
// header byte awaited, write_timeout per frame; a read or write timeout closes
// the connection (the stream may be mid-frame). send() completes when the
// socket has taken the whole frame (no queue in between), so a slow reader
// back-pressures the sender. Sockets set TCP_NODELAY.
//
// Addresses: "HOST:PORT" where HOST is an IPv4 literal ("127.0.0.1"), a
// bracketed IPv6 literal ("[::1]") or "localhost" (127.0.0.1). Host names are
// not resolved (peers exchange IP literals). listen() accepts port 0 and
// address() then reports the port the system chose.
//
// Listener: accept() hands out connections until max_connections are alive at
// once; a further inbound connection is closed at once with a log line and the
// listener keeps accepting (a slot frees when its connection is closed or
// destroyed).
//
// Threading: the transport, its listeners and connections run on the executor
// given at construction, which must be single-threaded (one thread running the
// io_context, or a strand); every call, close() included, must run there.
// Connections and listeners may be destroyed while an operation waits: the
// operation then fails with "closed".
#pragma once

#include <cstdint>
#include <string>

#include <asio/any_io_executor.hpp>

#include "net/transport.h"

namespace tern::net {

// A parsed TCP address.
struct TcpAddress {
  std::string host;  // the IP literal, without brackets
  uint16_t port = 0;
};

// Parses "HOST:PORT" as described above; `allow_port_zero` for listen().
Result<TcpAddress> parse_tcp_address(const std::string& address, bool allow_port_zero);

class TcpTransport final : public Transport {
 public:
  TcpTransport(asio::any_io_executor executor, TransportLimits limits = {});

  asio::awaitable<Result<std::unique_ptr<Connection>>> connect(std::string address) override;
  Result<std::unique_ptr<Listener>> listen(std::string address) override;
  const TransportLimits& limits() const override { return limits_; }

 private:
  asio::any_io_executor executor_;
  TransportLimits limits_;
};

// A TCP port on 127.0.0.1 that is free at the time of the call (the system
// picks it; the probe socket is closed again). Racy by nature: another
// process may take the port before the caller binds it. For local launchers
// and tests that must name a port before the server that uses it starts.
Result<uint16_t> free_loopback_port();

}  // namespace tern::net
