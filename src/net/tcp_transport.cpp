#include "net/tcp_transport.h"

#include <array>
#include <atomic>
#include <charconv>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include "core/log.h"
#include "net/in_flight.h"

namespace tern::net {
namespace {

using asio::ip::tcp;

std::string format_endpoint(const tcp::endpoint& endpoint) {
  const asio::ip::address address = endpoint.address();
  const std::string host = address.is_v6() ? "[" + address.to_string() + "]" : address.to_string();
  return host + ":" + std::to_string(endpoint.port());
}

Result<tcp::endpoint> to_endpoint(const std::string& operation, const std::string& address,
                                  bool allow_port_zero) {
  Result<TcpAddress> parsed = parse_tcp_address(address, allow_port_zero);
  if (!parsed.ok()) return parsed.status().with_context(operation);
  asio::error_code ec;
  const asio::ip::address ip = asio::ip::make_address(parsed.value().host, ec);
  TERN_CHECK(!ec, "parse_tcp_address let through '", parsed.value().host, "'");
  return tcp::endpoint(ip, parsed.value().port);
}

// Accepted connections alive at once, shared by a listener and the
// connections it handed out (which may outlive it).
struct ConnectionSlots {
  std::atomic<int> alive{0};
};

// Arms a timer for `timeout`; if it fires before disarm(), `on_expiry` runs.
// A generation number makes an expiry that races with disarm() harmless, and
// `owner` (the object holding the watchdog) is checked to be still alive.
class Watchdog {
 public:
  explicit Watchdog(const asio::any_io_executor& executor) : timer_(executor) {}

  template <typename OnExpiry>
  void arm(std::weak_ptr<void> owner, Millis timeout, OnExpiry on_expiry) {
    const uint64_t generation = ++generation_;
    expired_ = false;
    timer_.expires_after(timeout);
    timer_.async_wait([this, owner, generation, on_expiry](const asio::error_code& ec) {
      if (ec) return;
      const std::shared_ptr<void> alive = owner.lock();
      if (!alive || generation != generation_) return;
      expired_ = true;
      on_expiry();
    });
  }
  void disarm() {
    ++generation_;
    timer_.cancel();
  }
  bool expired() const { return expired_; }

 private:
  asio::steady_timer timer_;
  uint64_t generation_ = 0;
  bool expired_ = false;
};

// State of one connection, shared with the coroutines running on it so that
// they stay valid when the Connection object is destroyed while they wait.
struct TcpState {
  TcpState(tcp::socket socket_in, TransportLimits limits_in, std::string peer_in)
      : socket(std::move(socket_in)),
        limits(limits_in),
        peer(std::move(peer_in)),
        read_watchdog(socket.get_executor()),
        write_watchdog(socket.get_executor()) {}

  void close() {
    if (closed) return;
    closed = true;
    asio::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    read_watchdog.disarm();
    write_watchdog.disarm();
    if (slots) {
      --slots->alive;
      slots.reset();
    }
  }

  tcp::socket socket;
  TransportLimits limits;
  std::string peer;
  Watchdog read_watchdog;
  Watchdog write_watchdog;
  std::shared_ptr<ConnectionSlots> slots;  // set when accepted by a listener
  bool closed = false;
  bool sending = false;
  bool receiving = false;
};

class TcpConnection final : public Connection {
 public:
  explicit TcpConnection(std::shared_ptr<TcpState> state) : state_(std::move(state)) {}
  ~TcpConnection() override { state_->close(); }

  asio::awaitable<Status> send(std::span<const uint8_t> frame) override {
    std::shared_ptr<TcpState> s = state_;
    InFlightGuard busy(s->sending, "send()");
    if (frame.size() > s->limits.max_frame_bytes) {
      co_return Status::Error("send to " + s->peer + ": frame of " + std::to_string(frame.size()) +
                              " bytes exceeds the limit of " +
                              std::to_string(s->limits.max_frame_bytes) + " bytes");
    }
    if (s->closed) co_return Status::Error("send to " + s->peer + ": connection closed");
    std::array<uint8_t, 4> header;
    const uint32_t size = static_cast<uint32_t>(frame.size());
    for (int i = 0; i < 4; ++i) header[i] = static_cast<uint8_t>(size >> (8 * i));
    const std::array<asio::const_buffer, 2> buffers = {asio::buffer(header),
                                                       asio::buffer(frame.data(), frame.size())};
    TcpState* raw = s.get();
    s->write_watchdog.arm(s, s->limits.write_timeout, [raw] { raw->close(); });
    asio::error_code ec;
    co_await asio::async_write(s->socket, buffers, asio::redirect_error(asio::use_awaitable, ec));
    s->write_watchdog.disarm();
    if (!ec) co_return Status::Ok();
    std::string reason;
    if (s->write_watchdog.expired()) {
      reason = "write timeout after " + std::to_string(s->limits.write_timeout.count()) + " ms";
    } else if (s->closed) {
      reason = "connection closed";
    } else {
      reason = ec.message();
    }
    s->close();
    co_return Status::Error("send to " + s->peer + ": " + reason);
  }

  asio::awaitable<Result<Bytes>> receive() override {
    std::shared_ptr<TcpState> s = state_;
    InFlightGuard busy(s->receiving, "receive()");
    if (s->closed) co_return Status::Error("receive from " + s->peer + ": connection closed");
    TcpState* raw = s.get();
    s->read_watchdog.arm(s, s->limits.read_timeout, [raw] { raw->close(); });

    std::array<uint8_t, 4> header;
    asio::error_code ec;
    co_await asio::async_read(s->socket, asio::buffer(header),
                              asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return read_failure(*s, ec);
    uint32_t size = 0;
    for (int i = 0; i < 4; ++i) size |= uint32_t{header[i]} << (8 * i);
    if (size > s->limits.max_frame_bytes) {
      s->read_watchdog.disarm();
      std::string message = "receive from " + s->peer + ": frame of " + std::to_string(size) +
                            " bytes exceeds the limit of " +
                            std::to_string(s->limits.max_frame_bytes) + " bytes; connection closed";
      log(LogLevel::kWarn, "net", message);
      s->close();
      co_return Status::Error(message);
    }
    Bytes frame(size);
    if (size > 0) {
      co_await asio::async_read(s->socket, asio::buffer(frame),
                                asio::redirect_error(asio::use_awaitable, ec));
      if (ec) co_return read_failure(*s, ec);
    }
    s->read_watchdog.disarm();
    co_return frame;
  }

  void close() override { state_->close(); }
  std::string peer_address() const override { return state_->peer; }

 private:
  static Status read_failure(TcpState& s, const asio::error_code& ec) {
    s.read_watchdog.disarm();
    std::string reason;
    if (s.read_watchdog.expired()) {
      reason = "read timeout after " + std::to_string(s.limits.read_timeout.count()) +
               " ms; connection closed";
    } else if (s.closed) {
      reason = "connection closed";
    } else if (ec == asio::error::eof || ec == asio::error::connection_reset) {
      reason = "connection closed by peer";
    } else {
      reason = ec.message();
    }
    s.close();
    return Status::Error("receive from " + s.peer + ": " + reason);
  }

  std::shared_ptr<TcpState> state_;
};

void set_socket_options(tcp::socket& socket) {
  asio::error_code ignored;  // an option a platform lacks only costs latency
  socket.set_option(tcp::no_delay(true), ignored);
}

struct ListenerState {
  ListenerState(tcp::acceptor acceptor_in, TransportLimits limits_in, std::string address_in)
      : acceptor(std::move(acceptor_in)), limits(limits_in), address(std::move(address_in)) {}

  void close() {
    if (closed) return;
    closed = true;
    asio::error_code ignored;
    acceptor.close(ignored);
  }

  tcp::acceptor acceptor;
  TransportLimits limits;
  std::string address;
  std::shared_ptr<ConnectionSlots> slots = std::make_shared<ConnectionSlots>();
  bool closed = false;
  bool accepting = false;
};

class TcpListener final : public Listener {
 public:
  explicit TcpListener(std::shared_ptr<ListenerState> state) : state_(std::move(state)) {}
  ~TcpListener() override { state_->close(); }

  asio::awaitable<Result<std::unique_ptr<Connection>>> accept() override {
    std::shared_ptr<ListenerState> s = state_;
    InFlightGuard busy(s->accepting, "accept()");
    for (;;) {
      if (s->closed) co_return Status::Error("accept on " + s->address + ": listener closed");
      asio::error_code ec;
      tcp::socket socket =
          co_await s->acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (s->closed) co_return Status::Error("accept on " + s->address + ": listener closed");
      if (ec) {
        // Per-connection failures (the client gave up, out of descriptors)
        // must not stop the listener; log and keep serving.
        log(LogLevel::kWarn, "net", "accept on ", s->address, ": ", ec.message());
        if (ec == asio::error::no_descriptors || ec == asio::error::no_buffer_space) {
          co_return Status::Error("accept on " + s->address + ": " + ec.message());
        }
        continue;
      }
      asio::error_code peer_ec;
      const tcp::endpoint remote = socket.remote_endpoint(peer_ec);
      const std::string peer = peer_ec ? std::string("unknown peer") : format_endpoint(remote);
      if (s->slots->alive.load() >= s->limits.max_connections) {
        log(LogLevel::kWarn, "net", s->address, ": refused connection from ", peer, ": ",
            s->slots->alive.load(), " connections alive (max ", s->limits.max_connections, ")");
        asio::error_code ignored;
        socket.close(ignored);
        continue;
      }
      set_socket_options(socket);
      auto state = std::make_shared<TcpState>(std::move(socket), s->limits, peer);
      ++s->slots->alive;
      state->slots = s->slots;
      co_return std::unique_ptr<Connection>(std::make_unique<TcpConnection>(std::move(state)));
    }
  }

  std::string address() const override { return state_->address; }
  void close() override { state_->close(); }

 private:
  std::shared_ptr<ListenerState> state_;
};

}  // namespace

Result<TcpAddress> parse_tcp_address(const std::string& address, bool allow_port_zero) {
  const std::string quoted = "'" + address + "'";
  std::string host;
  std::string port_text;
  if (!address.empty() && address[0] == '[') {
    const size_t close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':') {
      return Status::Error("address " + quoted + ": expected [IPv6]:PORT");
    }
    host = address.substr(1, close - 1);
    port_text = address.substr(close + 2);
    asio::error_code ec;
    const asio::ip::address ip = asio::ip::make_address(host, ec);
    if (ec || !ip.is_v6()) {
      return Status::Error("address " + quoted + ": '" + host + "' is not an IPv6 address");
    }
  } else {
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos) {
      return Status::Error("address " + quoted + ": expected HOST:PORT");
    }
    host = address.substr(0, colon);
    port_text = address.substr(colon + 1);
    if (host == "localhost") host = "127.0.0.1";
    asio::error_code ec;
    const asio::ip::address ip = asio::ip::make_address(host, ec);
    if (ec || !ip.is_v4()) {
      return Status::Error("address " + quoted + ": host '" + host +
                           "' is not an IPv4 literal, [IPv6] literal or localhost");
    }
  }
  unsigned port = 0;
  const char* first = port_text.data();
  const char* last = first + port_text.size();
  const auto [end, error] = std::from_chars(first, last, port);
  if (port_text.empty() || error != std::errc() || end != last || port > 65535) {
    return Status::Error("address " + quoted + ": port '" + port_text +
                         "' is not a number in 0..65535");
  }
  if (port == 0 && !allow_port_zero) {
    return Status::Error("address " + quoted + ": port 0 is only valid for listening");
  }
  return TcpAddress{host, static_cast<uint16_t>(port)};
}

TcpTransport::TcpTransport(asio::any_io_executor executor, TransportLimits limits)
    : executor_(std::move(executor)), limits_(limits) {}

asio::awaitable<Result<std::unique_ptr<Connection>>> TcpTransport::connect(std::string address) {
  TERN_CO_ASSIGN_OR_RETURN(tcp::endpoint endpoint, to_endpoint("connect", address, false));
  const std::string peer = format_endpoint(endpoint);
  auto state = std::make_shared<TcpState>(tcp::socket(executor_), limits_, peer);
  TcpState* raw = state.get();
  // The connect timeout reuses the write watchdog: nothing else runs yet.
  state->write_watchdog.arm(state, limits_.connect_timeout, [raw] {
    asio::error_code ignored;
    raw->socket.close(ignored);
  });
  asio::error_code ec;
  co_await state->socket.async_connect(endpoint, asio::redirect_error(asio::use_awaitable, ec));
  state->write_watchdog.disarm();
  if (state->write_watchdog.expired()) {
    co_return Status::Error("connect to " + peer + ": timed out after " +
                            std::to_string(limits_.connect_timeout.count()) + " ms");
  }
  if (ec) co_return Status::Error("connect to " + peer + ": " + ec.message());
  set_socket_options(state->socket);
  co_return std::unique_ptr<Connection>(std::make_unique<TcpConnection>(std::move(state)));
}

Result<std::unique_ptr<Listener>> TcpTransport::listen(std::string address) {
  TERN_ASSIGN_OR_RETURN(tcp::endpoint endpoint, to_endpoint("listen", address, true));
  tcp::acceptor acceptor(executor_);
  asio::error_code ec;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::Error("listen on " + address + ": " + ec.message());
  const tcp::endpoint bound = acceptor.local_endpoint(ec);
  if (ec) return Status::Error("listen on " + address + ": " + ec.message());
  auto state =
      std::make_shared<ListenerState>(std::move(acceptor), limits_, format_endpoint(bound));
  return std::unique_ptr<Listener>(std::make_unique<TcpListener>(std::move(state)));
}

Result<uint16_t> free_loopback_port() {
  asio::io_context io;
  asio::ip::tcp::acceptor probe(io);
  asio::error_code ec;
  const asio::ip::tcp::endpoint any_port(asio::ip::address_v4::loopback(), 0);
  probe.open(any_port.protocol(), ec);
  if (!ec) probe.bind(any_port, ec);
  if (ec) return Status::Error("free_loopback_port: cannot bind 127.0.0.1:0: " + ec.message());
  const uint16_t port = probe.local_endpoint(ec).port();
  if (ec) return Status::Error("free_loopback_port: " + ec.message());
  return port;
}

}  // namespace tern::net
