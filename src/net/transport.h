// Transport: moves frames (byte strings) between two endpoints, in order and
// reliably, or fails with a Status that names the operation and the peer.
//
// Three implementations share this interface: TCP (tcp_transport.h, asio),
// in-process (memory_transport.h, deterministic tests) and a fault-injecting
// wrapper around either (faulty_transport.h). Security is a layer above
// (secure_channel.h): a Transport authenticates nobody.
//
// Threading: every operation is an asio coroutine that runs on the executor the
// transport was created with (single-threaded: one thread runs it, or a
// strand); close() too must be called there. A Connection allows at most one send() and one
// receive() in flight at a time (a second concurrent call is a bug, CHECKed);
// send and receive may run concurrently with each other.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "core/status.h"

namespace tern::net {

using Bytes = std::vector<uint8_t>;
using Millis = std::chrono::milliseconds;

// Limits every implementation enforces. Peers are untrusted: a frame above
// max_frame_bytes, a read that stalls past read_timeout, or a connection past
// max_connections is refused with a Status (and the connection closed), never
// buffered without bound.
struct TransportLimits {
  size_t max_frame_bytes = size_t{1} << 20;
  Millis connect_timeout{10'000};
  Millis read_timeout{30'000};  // per frame, from the first byte awaited
  Millis write_timeout{30'000};
  int max_connections = 256;  // accepted connections alive at once, per listener
};

class Connection {
 public:
  virtual ~Connection() = default;

  // Sends one frame (0 <= size <= max_frame_bytes). Completes once the frame
  // is handed to the layer below; a slow reader back-pressures the sender
  // (bounded buffering), so a send can wait, up to write_timeout.
  virtual asio::awaitable<Status> send(std::span<const uint8_t> frame) = 0;

  // The next frame, or an error: closed by the peer, read timeout, oversized
  // frame (after either of these two the connection is closed), or closed
  // locally. read_timeout counts from the call, so an idle connection whose
  // peer sends nothing for read_timeout fails and closes.
  virtual asio::awaitable<Result<Bytes>> receive() = 0;

  // Closes both directions; pending and later operations fail. Idempotent.
  // Destroying a connection closes it (pending operations then fail).
  virtual void close() = 0;

  // "host:port" for TCP, the endpoint name for in-process; for logs only.
  virtual std::string peer_address() const = 0;
};

class Listener {
 public:
  virtual ~Listener() = default;
  // The next inbound connection (limits applied), or an error once closed.
  virtual asio::awaitable<Result<std::unique_ptr<Connection>>> accept() = 0;
  // The bound address, e.g. "127.0.0.1:40123" after listening on port 0.
  virtual std::string address() const = 0;
  virtual void close() = 0;
};

class Transport {
 public:
  virtual ~Transport() = default;
  virtual asio::awaitable<Result<std::unique_ptr<Connection>>> connect(std::string address) = 0;
  virtual Result<std::unique_ptr<Listener>> listen(std::string address) = 0;
  virtual const TransportLimits& limits() const = 0;
};

}  // namespace tern::net
