// In-process transport: connections between endpoints of one MemoryNetwork,
// for deterministic tests and simulations of many nodes in one process.
//
// Addresses are "mem:NAME". listen("mem:a") registers the name on the network
// (a second listener on the same name is refused); connect("mem:a") creates a
// connection pair at once (like a TCP backlog) that the listener's accept()
// hands out. Each direction is a bounded queue (MemoryQueueLimits): a sender
// whose queue is full waits until the reader takes frames, up to
// write_timeout. The TransportLimits of each side apply to what that side
// sends and receives: max_frame_bytes (send refuses, receive refuses and
// closes), read_timeout and write_timeout (the connection is then closed),
// max_connections (an accepted connection past the limit is closed at once
// and a log line written; the listener keeps serving). Closing one end makes
// the other end's receive fail with "closed by peer" once the frames already
// queued have been read.
//
// Deterministic: no randomness, and a single-threaded io_context runs the same
// sequence of operations to the same results (timeouts use the executor's
// steady timers, so only the timeout paths depend on the clock).
//
// Threading: the network, its transports, listeners and connections belong to
// the one executor given to MemoryNetwork (single-threaded io_context or a
// strand); every call, close() included, must run there. The network must
// outlive its transports, listeners and connections.
#pragma once

#include <cstddef>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include <asio/any_io_executor.hpp>

#include "net/transport.h"

namespace tern::net {

// Capacity of one direction of a connection. A frame is queued when the queue
// is empty, or when both limits still hold after adding it (so one frame
// bigger than max_bytes still gets through, alone).
struct MemoryQueueLimits {
  size_t max_frames = 64;
  size_t max_bytes = size_t{8} << 20;
};

namespace detail {
struct MemoryListenerState;
}

class MemoryNetwork {
 public:
  explicit MemoryNetwork(asio::any_io_executor executor, MemoryQueueLimits queue = {});
  ~MemoryNetwork();
  MemoryNetwork(const MemoryNetwork&) = delete;
  MemoryNetwork& operator=(const MemoryNetwork&) = delete;

  const asio::any_io_executor& executor() const { return executor_; }
  const MemoryQueueLimits& queue_limits() const { return queue_; }

  // A connected pair without a listener (e.g. for secure-channel tests):
  // first.peer_address() is "mem:pair-N/b", second's "mem:pair-N/a". Each end
  // enforces its own limits.
  std::pair<std::unique_ptr<Connection>, std::unique_ptr<Connection>> connection_pair(
      const TransportLimits& first_limits = {}, const TransportLimits& second_limits = {});

 private:
  friend class MemoryTransport;
  friend struct detail::MemoryListenerState;

  asio::any_io_executor executor_;
  MemoryQueueLimits queue_;
  std::map<std::string, std::weak_ptr<detail::MemoryListenerState>> listeners_;
  uint64_t next_pair_id_ = 0;
  uint64_t next_client_id_ = 0;
};

class MemoryTransport final : public Transport {
 public:
  explicit MemoryTransport(MemoryNetwork& network, TransportLimits limits = {});

  // Fails at once if no listener has `address`, or the address is not "mem:NAME".
  asio::awaitable<Result<std::unique_ptr<Connection>>> connect(std::string address) override;
  // Fails if the address is malformed or the name is already listened on.
  Result<std::unique_ptr<Listener>> listen(std::string address) override;
  const TransportLimits& limits() const override { return limits_; }

 private:
  MemoryNetwork& network_;
  TransportLimits limits_;
};

}  // namespace tern::net
