#include "net/memory_transport.h"

#include <deque>

#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "core/log.h"
#include "net/in_flight.h"

namespace tern::net {
namespace {

using Clock = asio::steady_timer::clock_type;

constexpr std::string_view kScheme = "mem:";
// Connections made but not yet accepted, per listener; connect() fails beyond.
constexpr size_t kMaxBacklog = 128;

// Accepted connections alive at once, shared by a listener and the connections
// it handed out (which may outlive it).
struct ConnectionSlots {
  int alive = 0;
};

// One direction of a connection. A waiting receive sleeps on `readable`, a
// waiting send on `writable`; the other side wakes it by cancelling the timer
// (the timer's expiry doubles as the timeout).
struct Pipe {
  explicit Pipe(const asio::any_io_executor& executor) : readable(executor), writable(executor) {}
  std::deque<Bytes> frames;
  size_t bytes = 0;
  bool writer_closed = false;  // no more frames will be added
  bool reader_closed = false;  // nobody reads any more: sends fail
  asio::steady_timer readable;
  asio::steady_timer writable;
};

bool fits(const Pipe& pipe, const MemoryQueueLimits& queue, size_t frame_bytes) {
  if (pipe.frames.empty()) return true;
  return pipe.frames.size() + 1 <= queue.max_frames && pipe.bytes + frame_bytes <= queue.max_bytes;
}

// State of one end, shared with the coroutines running on it so that they
// stay valid when the Connection object is destroyed while they wait.
struct EndState {
  std::shared_ptr<Pipe> in;
  std::shared_ptr<Pipe> out;
  MemoryQueueLimits queue;
  TransportLimits limits;
  std::string peer;
  std::shared_ptr<ConnectionSlots> slots;  // set once accepted by a listener
  bool closed = false;
  bool sending = false;
  bool receiving = false;

  void close() {
    if (closed) return;
    closed = true;
    out->writer_closed = true;
    out->readable.cancel();  // the peer's receive sees "closed by peer"
    out->writable.cancel();  // our own pending send sees "closed"
    in->reader_closed = true;
    in->frames.clear();
    in->bytes = 0;
    in->writable.cancel();  // the peer's blocked send sees "closed by peer"
    in->readable.cancel();  // our own pending receive sees "closed"
    if (slots) {
      --slots->alive;
      slots.reset();
    }
  }
};

class MemoryConnection final : public Connection {
 public:
  explicit MemoryConnection(std::shared_ptr<EndState> state) : state_(std::move(state)) {}
  ~MemoryConnection() override { state_->close(); }

  asio::awaitable<Status> send(std::span<const uint8_t> frame) override {
    std::shared_ptr<EndState> s = state_;
    InFlightGuard busy(s->sending, "send()");
    if (frame.size() > s->limits.max_frame_bytes) {
      co_return Status::Error("send to " + s->peer + ": frame of " + std::to_string(frame.size()) +
                              " bytes exceeds the limit of " +
                              std::to_string(s->limits.max_frame_bytes) + " bytes");
    }
    const Clock::time_point deadline = Clock::now() + s->limits.write_timeout;
    for (;;) {
      if (s->closed) co_return Status::Error("send to " + s->peer + ": connection closed");
      Pipe& out = *s->out;
      if (out.reader_closed) {
        co_return Status::Error("send to " + s->peer + ": connection closed by peer");
      }
      if (fits(out, s->queue, frame.size())) {
        out.frames.emplace_back(frame.begin(), frame.end());
        out.bytes += frame.size();
        out.readable.cancel();
        co_return Status::Ok();
      }
      if (Clock::now() >= deadline) {
        s->close();
        co_return Status::Error("send to " + s->peer + ": write timeout after " +
                                std::to_string(s->limits.write_timeout.count()) +
                                " ms (peer not reading); connection closed");
      }
      asio::error_code ignored;
      out.writable.expires_at(deadline);
      co_await out.writable.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
  }

  asio::awaitable<Result<Bytes>> receive() override {
    std::shared_ptr<EndState> s = state_;
    InFlightGuard busy(s->receiving, "receive()");
    const Clock::time_point deadline = Clock::now() + s->limits.read_timeout;
    for (;;) {
      if (s->closed) co_return Status::Error("receive from " + s->peer + ": connection closed");
      Pipe& in = *s->in;
      if (!in.frames.empty()) {
        Bytes frame = std::move(in.frames.front());
        in.frames.pop_front();
        in.bytes -= frame.size();
        in.writable.cancel();
        if (frame.size() > s->limits.max_frame_bytes) {
          std::string message = "receive from " + s->peer + ": frame of " +
                                std::to_string(frame.size()) + " bytes exceeds the limit of " +
                                std::to_string(s->limits.max_frame_bytes) +
                                " bytes; connection closed";
          log(LogLevel::kWarn, "net", message);
          s->close();
          co_return Status::Error(message);
        }
        co_return frame;
      }
      if (in.writer_closed) {
        co_return Status::Error("receive from " + s->peer + ": connection closed by peer");
      }
      if (Clock::now() >= deadline) {
        s->close();
        co_return Status::Error("receive from " + s->peer + ": read timeout after " +
                                std::to_string(s->limits.read_timeout.count()) +
                                " ms; connection closed");
      }
      asio::error_code ignored;
      in.readable.expires_at(deadline);
      co_await in.readable.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
  }

  void close() override { state_->close(); }
  std::string peer_address() const override { return state_->peer; }

  EndState& state() { return *state_; }

 private:
  std::shared_ptr<EndState> state_;
};

// Two ends joined by two pipes.
std::pair<std::unique_ptr<MemoryConnection>, std::unique_ptr<MemoryConnection>> make_pair(
    const asio::any_io_executor& executor, const MemoryQueueLimits& queue,
    const TransportLimits& first_limits, std::string first_peer,
    const TransportLimits& second_limits, std::string second_peer) {
  auto forward = std::make_shared<Pipe>(executor);   // first -> second
  auto backward = std::make_shared<Pipe>(executor);  // second -> first
  auto first = std::make_shared<EndState>();
  first->in = backward;
  first->out = forward;
  first->queue = queue;
  first->limits = first_limits;
  first->peer = std::move(first_peer);
  auto second = std::make_shared<EndState>();
  second->in = forward;
  second->out = backward;
  second->queue = queue;
  second->limits = second_limits;
  second->peer = std::move(second_peer);
  return {std::make_unique<MemoryConnection>(std::move(first)),
          std::make_unique<MemoryConnection>(std::move(second))};
}

Result<std::string> parse_name(const std::string& operation, const std::string& address) {
  if (address.size() <= kScheme.size() || address.compare(0, kScheme.size(), kScheme) != 0) {
    return Status::Error(operation + " '" + address +
                         "': an in-process address has the form mem:NAME");
  }
  return address.substr(kScheme.size());
}

}  // namespace

namespace detail {

struct MemoryListenerState {
  MemoryListenerState(MemoryNetwork& network_in, std::string name_in, TransportLimits limits_in)
      : network(network_in),
        name(std::move(name_in)),
        limits(limits_in),
        arrival(network_in.executor()) {}

  void close() {
    if (closed) return;
    closed = true;
    auto it = network.listeners_.find(name);
    if (it != network.listeners_.end() && it->second.lock().get() == this) {
      network.listeners_.erase(it);
    }
    for (auto& connection : backlog) connection->close();
    backlog.clear();
    arrival.cancel();
  }

  MemoryNetwork& network;
  std::string name;
  TransportLimits limits;
  std::deque<std::unique_ptr<MemoryConnection>> backlog;
  asio::steady_timer arrival;  // a waiting accept sleeps on it; cancel() wakes it
  std::shared_ptr<ConnectionSlots> slots = std::make_shared<ConnectionSlots>();
  bool closed = false;
  bool accepting = false;
};

}  // namespace detail

namespace {

class MemoryListener final : public Listener {
 public:
  explicit MemoryListener(std::shared_ptr<detail::MemoryListenerState> state)
      : state_(std::move(state)) {}
  ~MemoryListener() override { state_->close(); }

  asio::awaitable<Result<std::unique_ptr<Connection>>> accept() override {
    std::shared_ptr<detail::MemoryListenerState> s = state_;
    InFlightGuard busy(s->accepting, "accept()");
    for (;;) {
      if (s->closed) co_return Status::Error("accept on mem:" + s->name + ": listener closed");
      if (!s->backlog.empty()) {
        std::unique_ptr<MemoryConnection> connection = std::move(s->backlog.front());
        s->backlog.pop_front();
        if (s->slots->alive >= s->limits.max_connections) {
          log(LogLevel::kWarn, "net", "mem:", s->name, ": refused connection from ",
              connection->peer_address(), ": ", s->slots->alive, " connections alive (max ",
              s->limits.max_connections, ")");
          connection->close();
          continue;
        }
        ++s->slots->alive;
        connection->state().slots = s->slots;
        co_return std::unique_ptr<Connection>(std::move(connection));
      }
      asio::error_code ignored;
      s->arrival.expires_at(Clock::time_point::max());
      co_await s->arrival.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    }
  }

  std::string address() const override { return "mem:" + state_->name; }
  void close() override { state_->close(); }

 private:
  std::shared_ptr<detail::MemoryListenerState> state_;
};

}  // namespace

MemoryNetwork::MemoryNetwork(asio::any_io_executor executor, MemoryQueueLimits queue)
    : executor_(std::move(executor)), queue_(queue) {
  TERN_CHECK(queue_.max_frames >= 1, "a memory queue must hold at least one frame");
}

MemoryNetwork::~MemoryNetwork() = default;

std::pair<std::unique_ptr<Connection>, std::unique_ptr<Connection>> MemoryNetwork::connection_pair(
    const TransportLimits& first_limits, const TransportLimits& second_limits) {
  const std::string base = "mem:pair-" + std::to_string(next_pair_id_++);
  auto [first, second] =
      make_pair(executor_, queue_, first_limits, base + "/b", second_limits, base + "/a");
  return {std::move(first), std::move(second)};
}

MemoryTransport::MemoryTransport(MemoryNetwork& network, TransportLimits limits)
    : network_(network), limits_(limits) {}

asio::awaitable<Result<std::unique_ptr<Connection>>> MemoryTransport::connect(std::string address) {
  TERN_CO_ASSIGN_OR_RETURN(std::string name, parse_name("connect to", address));
  auto it = network_.listeners_.find(name);
  std::shared_ptr<detail::MemoryListenerState> listener =
      it == network_.listeners_.end() ? nullptr : it->second.lock();
  if (!listener || listener->closed) {
    co_return Status::Error("connect to " + address + ": no listener on that name");
  }
  if (listener->backlog.size() >= kMaxBacklog) {
    co_return Status::Error("connect to " + address + ": backlog full (" +
                            std::to_string(kMaxBacklog) + " connections not yet accepted)");
  }
  const std::string client = "mem:client-" + std::to_string(network_.next_client_id_++);
  auto [local, remote] =
      make_pair(network_.executor_, network_.queue_, limits_, address, listener->limits, client);
  listener->backlog.push_back(std::move(remote));
  listener->arrival.cancel();
  co_return std::unique_ptr<Connection>(std::move(local));
}

Result<std::unique_ptr<Listener>> MemoryTransport::listen(std::string address) {
  TERN_ASSIGN_OR_RETURN(std::string name, parse_name("listen on", address));
  auto it = network_.listeners_.find(name);
  if (it != network_.listeners_.end() && !it->second.expired()) {
    return Status::Error("listen on " + address + ": the name is already in use");
  }
  auto state = std::make_shared<detail::MemoryListenerState>(network_, name, limits_);
  network_.listeners_[name] = state;
  return std::unique_ptr<Listener>(std::make_unique<MemoryListener>(std::move(state)));
}

}  // namespace tern::net
