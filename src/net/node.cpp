#include "net/node.h"

#include <chrono>
#include <deque>
#include <exception>
#include <utility>

#include <asio/co_spawn.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "core/log.h"

namespace tern::net {
namespace {

constexpr std::string_view kComponent = "net";

void rethrow_if_failed(std::exception_ptr error) {
  if (error) std::rethrow_exception(error);
}

uint64_t system_now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// Waits until the timer expires or is cancelled; never throws.
asio::awaitable<void> wait_on(asio::steady_timer& timer) {
  (void)co_await timer.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
}

}  // namespace

msg::Broadcast to_wire(const SignedMessage& message) {
  msg::Broadcast b;
  b.run_id = message.run_id;
  b.sender = message.sender.key;
  b.seq = message.seq;
  b.expiry_ms = message.expiry_ms;
  b.kind = message.kind;
  b.body = message.body;
  b.signature = message.signature;
  return b;
}

SignedMessage from_wire(const msg::Broadcast& broadcast) {
  SignedMessage m;
  m.run_id = broadcast.run_id;
  m.sender.key = broadcast.sender;
  m.seq = broadcast.seq;
  m.expiry_ms = broadcast.expiry_ms;
  m.kind = broadcast.kind;
  m.body = broadcast.body;
  m.signature = broadcast.signature;
  return m;
}

// One authenticated link. Lives as long as its loops run or the node maps it;
// it reaches the node through `node_`, which the node clears (close_all) when
// it is destroyed, so a link never touches a dead node.
class Node::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Node& node, std::unique_ptr<SecureChannel> channel)
      : node_(&node),
        channel_(std::move(channel)),
        peer_(channel_->peer()),
        description_(peer_.short_string() + " (" + channel_->peer_address() + ")"),
        request_timeout_(node.options_.request_timeout),
        keepalive_(node.options_.keepalive),
        max_outbox_bytes_(node.options_.max_outbox_bytes),
        outbox_signal_(node.executor_),
        space_signal_(node.executor_) {}

  void start(const asio::any_io_executor& executor) {
    asio::co_spawn(executor, shared_from_this()->read_loop(), rethrow_if_failed);
    asio::co_spawn(executor, shared_from_this()->write_loop(), rethrow_if_failed);
  }

  const NodeId& peer() const { return peer_; }
  const std::string& description() const { return description_; }
  bool closed() const { return closed_; }

  // Idempotent. Fails waiting requests and tells the node (if still there).
  void close(const std::string& reason, bool log_it) {
    if (closed_) return;
    closed_ = true;
    if (log_it) log(LogLevel::kWarn, kComponent, "link to ", description_, " closed: ", reason);
    channel_->close();
    outbox_signal_.cancel();
    space_signal_.cancel();
    for (auto& [id, pending] : pending_) {
      pending->result = Status::Error("link to " + description_ + " closed: " + reason);
      pending->timer.cancel();
    }
    pending_.clear();
    if (node_ != nullptr) node_->session_closed(peer_, this);
  }

  void detach_from_node() { node_ = nullptr; }

  // Sends `body` as a request and waits for the response with its id.
  asio::awaitable<Result<WireMessage>> request(MessageBody body) {
    auto self = shared_from_this();
    if (closed_) co_return Status::Error("request to " + description_ + ": link closed");
    const uint64_t id = next_request_id_++;
    auto pending = std::make_shared<Pending>(outbox_signal_.get_executor());
    pending->timer.expires_after(request_timeout_);
    pending_[id] = pending;
    const char* name = body_name(body);
    // Arguments of co_awaited calls are named locals throughout this file: GCC 12
    // destroys some temporaries in a co_await full-expression twice.
    Bytes request_bytes = encode_message(WireMessage{id, std::move(body)});
    Status queued = co_await enqueue(std::move(request_bytes));
    TERN_CO_RETURN_IF_ERROR(queued);
    if (!pending->result) co_await wait_on(pending->timer);
    pending_.erase(id);
    if (!pending->result) {
      co_return Status::Error(std::string(name) + " request to " + description_ +
                              ": no answer within " + std::to_string(request_timeout_.count()) +
                              " ms");
    }
    co_return std::move(*pending->result);
  }

  // Queues a broadcast without waiting; false if the outbox is full or closed.
  bool try_send(Bytes bytes) {
    if (closed_ || (outbox_bytes_ > 0 && outbox_bytes_ + bytes.size() > max_outbox_bytes_)) {
      return false;
    }
    push(std::move(bytes));
    return true;
  }

 private:
  struct Pending {
    explicit Pending(const asio::any_io_executor& executor) : timer(executor) {}
    asio::steady_timer timer;
    std::optional<Result<WireMessage>> result;
  };

  void push(Bytes bytes) {
    outbox_bytes_ += bytes.size();
    outbox_.push_back(std::move(bytes));
    outbox_signal_.cancel();
  }

  // Queues `bytes`, waiting while the outbox is over its cap (back-pressure).
  asio::awaitable<Status> enqueue(Bytes bytes) {
    while (!closed_ && outbox_bytes_ > 0 && outbox_bytes_ + bytes.size() > max_outbox_bytes_) {
      // All waiters share one armed timer; re-arming would cancel the others.
      if (space_waiters_++ == 0) space_signal_.expires_at(asio::steady_timer::time_point::max());
      co_await wait_on(space_signal_);
      --space_waiters_;
    }
    if (closed_) co_return Status::Error("send to " + description_ + ": link closed");
    push(std::move(bytes));
    co_return Status::Ok();
  }

  asio::awaitable<void> write_loop() {
    auto self = shared_from_this();
    for (;;) {
      while (outbox_.empty() && !closed_) {
        // Transports close a link whose reads wait past read_timeout, so an idle
        // link carries an empty Have now and then. A cancel means new work.
        outbox_signal_.expires_after(keepalive_);
        auto [error] =
            co_await outbox_signal_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
        if (!error && outbox_.empty() && !closed_) push(encode_message({0, msg::Have{}}));
      }
      if (closed_) co_return;
      Bytes bytes = std::move(outbox_.front());
      outbox_.pop_front();
      outbox_bytes_ -= bytes.size();
      space_signal_.cancel();
      Status sent = co_await channel_->send(bytes);
      if (!sent.ok()) {
        close("send failed: " + sent.message(), !closed_);
        co_return;
      }
    }
  }

  asio::awaitable<void> read_loop() {
    auto self = shared_from_this();
    while (!closed_) {
      Result<Bytes> frame = co_await channel_->receive();
      if (closed_ || node_ == nullptr) co_return;
      if (!frame.ok()) {
        close(frame.status().message(), true);
        co_return;
      }
      Result<WireMessage> message = decode_message(frame.value(), node_->options_.message_limits);
      if (!message.ok()) {
        ++node_->counters_.rejected_messages;
        close("rejected message: " + message.status().message(), true);
        co_return;
      }
      Status handled = co_await dispatch(std::move(message).value());
      if (!handled.ok() && !closed_) close(handled.message(), true);
    }
  }

  asio::awaitable<Status> reply(uint64_t request_id, MessageBody body) {
    ++node_->counters_.requests_served;
    Bytes reply_bytes = encode_message(WireMessage{request_id, std::move(body)});
    Status queued = co_await enqueue(std::move(reply_bytes));
    co_return queued;
  }

  // The answer to a request for blob data; nothing for other messages.
  std::optional<MessageBody> answer_request(const MessageBody& body) {
    Node& node = *node_;
    if (auto* get = std::get_if<msg::GetManifest>(&body)) {
      Result<BlobManifest> manifest = node.blobs_.manifest(get->blob);
      if (!manifest.ok()) return msg::NotFound{get->blob, manifest.status().message()};
      return msg::Manifest{std::move(manifest).value()};
    }
    if (auto* get = std::get_if<msg::GetChunk>(&body)) {
      Result<Bytes> chunk = node.blobs_.chunk(get->blob, get->index);
      if (!chunk.ok()) return msg::NotFound{get->blob, chunk.status().message()};
      Bytes data = std::move(chunk).value();
      if (node.tamper_) node.tamper_(get->blob, get->index, data);
      ++node.counters_.chunks_served;
      return msg::Chunk{get->blob, get->index, std::move(data)};
    }
    return std::nullopt;
  }

  asio::awaitable<Status> dispatch(WireMessage message) {
    Node& node = *node_;
    MessageBody& body = message.body;
    std::optional<MessageBody> answer = answer_request(body);
    if (answer) {
      MessageBody reply_body = std::move(*answer);
      Status queued = co_await reply(message.request_id, std::move(reply_body));
      co_return queued;
    }
    if (auto* broadcast = std::get_if<msg::Broadcast>(&body)) {
      if (node.broadcast_peers_ && node.broadcast_peers_->count(peer_) == 0) {
        ++node.counters_.rejected_messages;
        log(LogLevel::kWarn, "net", "broadcast on a blob-only link from ", peer_.short_string(),
            " dropped");
        co_return Status::Ok();
      }
      // Duplicates are normal when several relays forward the same message;
      // the router logs and counts every rejection, and the link stays up.
      (void)node.router_->on_receive(peer_, from_wire(*broadcast), node.now_ms());
      co_return Status::Ok();
    }
    if (std::holds_alternative<msg::Manifest>(body) || std::holds_alternative<msg::Chunk>(body) ||
        std::holds_alternative<msg::NotFound>(body) || std::holds_alternative<msg::Error>(body)) {
      auto it = pending_.find(message.request_id);
      if (it == pending_.end()) {
        // A late answer to a request that timed out looks the same: count it,
        // keep the link.
        ++node.counters_.rejected_messages;
        log(LogLevel::kWarn, kComponent, "ignored unsolicited ", body_name(body), " from ",
            description_, " (request id ", message.request_id, ")");
        co_return Status::Ok();
      }
      it->second->result = std::move(message);
      it->second->timer.cancel();
      pending_.erase(it);
      co_return Status::Ok();
    }
    // Hello and Have carry nothing this layer acts on yet.
    log(LogLevel::kDebug, kComponent, "ignored ", body_name(body), " from ", description_);
    co_return Status::Ok();
  }

  Node* node_;
  std::unique_ptr<SecureChannel> channel_;
  const NodeId peer_;
  const std::string description_;
  const Millis request_timeout_;
  const Millis keepalive_;
  const size_t max_outbox_bytes_;
  std::deque<Bytes> outbox_;
  size_t outbox_bytes_ = 0;
  asio::steady_timer outbox_signal_;  // wakes the writer
  asio::steady_timer space_signal_;   // wakes senders waiting for outbox space
  int space_waiters_ = 0;
  std::map<uint64_t, std::shared_ptr<Pending>> pending_;
  uint64_t next_request_id_ = 1;
  bool closed_ = false;
};

// A linked peer seen as a blob holder.
class Node::SessionHolder final : public BlobHolder {
 public:
  explicit SessionHolder(std::shared_ptr<Session> session)
      : session_(session), name_(session->description()) {}

  std::string name() const override { return name_; }

  asio::awaitable<Result<BlobManifest>> get_manifest(const BlobId& id) override {
    MessageBody request = msg::GetManifest{id};
    TERN_CO_ASSIGN_OR_RETURN(WireMessage answer, co_await ask(std::move(request)));
    if (auto* manifest = std::get_if<msg::Manifest>(&answer.body)) co_return manifest->manifest;
    co_return unexpected("GetManifest", id, answer);
  }

  asio::awaitable<Result<Bytes>> get_chunk(const BlobId& id, uint32_t index) override {
    MessageBody request = msg::GetChunk{id, index};
    TERN_CO_ASSIGN_OR_RETURN(WireMessage answer, co_await ask(std::move(request)));
    auto* chunk = std::get_if<msg::Chunk>(&answer.body);
    if (chunk != nullptr && chunk->blob == id && chunk->index == index) {
      co_return std::move(chunk->data);
    }
    if (chunk != nullptr) {
      co_return Status::Error("GetChunk " + short_blob_id(id) + "/" + std::to_string(index) +
                              " from " + name_ + ": answered with chunk " +
                              short_blob_id(chunk->blob) + "/" + std::to_string(chunk->index));
    }
    co_return unexpected("GetChunk", id, answer);
  }

 private:
  asio::awaitable<Result<WireMessage>> ask(MessageBody body) {
    std::shared_ptr<Session> session = session_.lock();
    if (!session || session->closed()) {
      co_return Status::Error(std::string(body_name(body)) + " to " + name_ + ": link closed");
    }
    co_return co_await session->request(std::move(body));
  }

  Status unexpected(const char* request, const BlobId& id, const WireMessage& answer) const {
    std::string what = std::string(request) + " " + short_blob_id(id) + " from " + name_;
    if (auto* missing = std::get_if<msg::NotFound>(&answer.body)) {
      return Status::Error(what + ": not found (" + missing->reason + ")");
    }
    if (auto* error = std::get_if<msg::Error>(&answer.body)) {
      return Status::Error(what + ": error " + std::to_string(error->code) + " (" + error->message +
                           ")");
    }
    return Status::Error(what + ": answered with " + body_name(answer.body));
  }

  std::weak_ptr<Session> session_;
  std::string name_;
};

// A link as the broadcast router sees it.
class Node::SessionLink final : public BroadcastLink {
 public:
  SessionLink(std::shared_ptr<Session> session, NodeCounters& counters)
      : session_(session), peer_(session->peer()), counters_(counters) {}

  NodeId peer() const override { return peer_; }

  void send(const SignedMessage& message) override {
    std::shared_ptr<Session> session = session_.lock();
    if (!session) return;
    if (!session->try_send(encode_message({0, to_wire(message)}))) {
      ++counters_.broadcasts_dropped;
      log(LogLevel::kWarn, kComponent, "dropped broadcast seq ", message.seq, " to ",
          session->description(), ": outbox full or link closed");
    }
  }

 private:
  std::weak_ptr<Session> session_;
  NodeId peer_;
  NodeCounters& counters_;
};

Node::Node(asio::any_io_executor executor, Transport& transport, Identity identity,
           NodeOptions options)
    : executor_(std::move(executor)),
      transport_(transport),
      identity_(std::move(identity)),
      options_(std::move(options)),
      blobs_(options_.blob_capacity_bytes, options_.blob_chunk_size) {
  options_.channel.max_message_bytes = options_.message_limits.max_message_bytes;
  BroadcastConfig config;
  config.relay = options_.relay;
  config.limits = options_.broadcast_limits;
  // Seqs must not repeat across restarts while receivers remember them.
  config.first_seq = now_ms() * 1024;
  router_ = std::make_unique<BroadcastRouter>(identity_, options_.run_id, config,
                                              [this](const SignedMessage& message) {
                                                if (broadcast_handler_) broadcast_handler_(message);
                                              });
  if (options_.allowed_peers) {
    allowed_.emplace(options_.allowed_peers->begin(), options_.allowed_peers->end());
    router_->guard().set_members(*options_.allowed_peers);
  }
}

Node::~Node() {
  close();
  alive_.reset();
  // Loops still parked on the executor must not reach back into this node.
  for (auto& session : closing_) session->detach_from_node();
}

uint64_t Node::now_ms() const {
  return options_.now_ms ? options_.now_ms() : system_now_ms();
}

Status Node::listen(const std::string& address) {
  TERN_CHECK(listener_ == nullptr, "Node::listen called twice");
  if (closed_) return Status::Error("listen on " + address + ": node closed");
  Result<std::unique_ptr<Listener>> listener = transport_.listen(address);
  if (!listener.ok()) return listener.status();
  listener_ = std::move(listener).value();
  asio::co_spawn(executor_, accept_loop(), rethrow_if_failed);
  return Status::Ok();
}

std::string Node::address() const {
  return listener_ ? listener_->address() : std::string();
}

asio::awaitable<void> Node::accept_loop() {
  std::weak_ptr<bool> alive = alive_;
  for (;;) {
    Result<std::unique_ptr<Connection>> connection = co_await listener_->accept();
    if (alive.expired() || closed_) co_return;
    if (!connection.ok()) {
      log(LogLevel::kWarn, kComponent, "accept on ", listener_->address(), ": ",
          connection.status().message());
      co_return;
    }
    asio::co_spawn(executor_, handshake_inbound(std::move(connection).value()), rethrow_if_failed);
  }
}

asio::awaitable<void> Node::handshake_inbound(std::unique_ptr<Connection> connection) {
  const std::string address = connection->peer_address();
  std::weak_ptr<bool> alive = alive_;
  Result<std::unique_ptr<SecureChannel>> channel = co_await SecureChannel::accept(
      std::move(connection), identity_, options_.run_id, options_.channel);
  if (alive.expired() || closed_) co_return;
  if (!channel.ok()) {
    reject_connection("inbound link from " + address + ": " + channel.status().message());
    co_return;
  }
  (void)admit(std::move(channel).value(), "inbound");
}

asio::awaitable<Result<NodeId>> Node::connect(std::string address, std::optional<NodeId> expected) {
  if (closed_) co_return Status::Error("connect to " + address + ": node closed");
  std::weak_ptr<bool> alive = alive_;
  Result<std::unique_ptr<Connection>> connection = co_await transport_.connect(address);
  if (alive.expired()) co_return Status::Error("connect to " + address + ": node destroyed");
  if (!connection.ok()) {
    log(LogLevel::kWarn, kComponent, "connect to ", address, ": ", connection.status().message());
    co_return connection.status();
  }
  Result<std::unique_ptr<SecureChannel>> channel = co_await SecureChannel::dial(
      std::move(connection).value(), identity_, expected, options_.run_id, options_.channel);
  if (alive.expired()) co_return Status::Error("connect to " + address + ": node destroyed");
  if (!channel.ok()) {
    reject_connection("outbound link to " + address + ": " + channel.status().message());
    co_return channel.status();
  }
  co_return admit(std::move(channel).value(), "outbound");
}

void Node::reject_connection(const std::string& what) {
  ++counters_.rejected_connections;
  log(LogLevel::kWarn, kComponent, "rejected ", what);
}

Result<NodeId> Node::admit(std::unique_ptr<SecureChannel> channel, const char* direction) {
  const NodeId peer = channel->peer();
  const std::string who =
      std::string(direction) + " link with " + peer.to_string() + " at " + channel->peer_address();
  auto refuse = [&](const std::string& why) -> Status {
    channel->close();
    reject_connection(who + ": " + why);
    return Status::Error(who + ": " + why);
  };
  if (closed_) return refuse("node closed");
  if (peer == id()) return refuse("the peer presented this node's own key");
  if (allowed_ && allowed_->count(peer) == 0) return refuse("not on the run's allowlist");
  auto existing = sessions_.find(peer);
  if (existing == sessions_.end() && sessions_.size() >= options_.max_peers) {
    return refuse("already at max_peers " + std::to_string(options_.max_peers));
  }
  const bool outbound = std::string_view(direction) == "outbound";
  if (existing != sessions_.end()) {
    if (link_outbound_[peer] != outbound) {
      // Both nodes dialed each other at once. Both ends keep the link that the
      // lower node id dialed, so they agree without talking; the other closes.
      const NodeId& new_dialer = outbound ? id() : peer;
      const NodeId& old_dialer = outbound ? peer : id();
      if (old_dialer < new_dialer) {
        channel->close();
        return peer;  // the existing link carries on
      }
    }
    existing->second->close("replaced by a new link", false);
  }
  auto session = std::make_shared<Session>(*this, std::move(channel));
  sessions_[peer] = session;
  link_outbound_[peer] = outbound;
  if (!broadcast_peers_ || broadcast_peers_->count(peer) != 0) {
    router_->add_link(std::make_shared<SessionLink>(session, counters_));
  }
  ++counters_.links_opened;
  session->start(executor_);
  return peer;
}

void Node::session_closed(const NodeId& peer, const Session* session) {
  auto it = sessions_.find(peer);
  if (it == sessions_.end() || it->second.get() != session) return;
  // Keep the session alive until its loops have unwound.
  std::erase_if(closing_, [](const std::shared_ptr<Session>& s) { return s.use_count() == 1; });
  closing_.push_back(it->second);
  sessions_.erase(it);
  router_->remove_link(peer);
}

void Node::set_broadcast_peers(std::optional<std::vector<NodeId>> peers) {
  if (!peers) {
    broadcast_peers_.reset();
  } else {
    broadcast_peers_.emplace(peers->begin(), peers->end());
  }
  for (const auto& [peer, session] : sessions_) {
    if (!broadcast_peers_ || broadcast_peers_->count(peer) != 0) {
      router_->add_link(std::make_shared<SessionLink>(session, counters_));
    } else {
      router_->remove_link(peer);
    }
  }
}

bool Node::connected(const NodeId& peer) const {
  return sessions_.count(peer) != 0;
}

std::vector<NodeId> Node::peers() const {
  std::vector<NodeId> ids;
  for (const auto& [peer, session] : sessions_) ids.push_back(peer);
  return ids;
}

void Node::disconnect(const NodeId& peer) {
  auto it = sessions_.find(peer);
  if (it != sessions_.end()) it->second->close("closed locally", false);
}

asio::awaitable<Result<FetchReport>> Node::fetch(BlobId blob, std::vector<NodeId> holders,
                                                 FetchOptions options) {
  std::vector<std::unique_ptr<BlobHolder>> linked;
  for (const NodeId& holder : holders) {
    auto it = sessions_.find(holder);
    if (it != sessions_.end()) linked.push_back(std::make_unique<SessionHolder>(it->second));
  }
  if (linked.empty()) {
    co_return Status::Error("fetch blob " + short_blob_id(blob) + ": none of the " +
                            std::to_string(holders.size()) + " holders has a link");
  }
  std::vector<BlobHolder*> pointers;
  for (const auto& holder : linked) pointers.push_back(holder.get());
  co_return co_await fetch_blob(blob, pointers, blobs_, options);
}

SignedMessage Node::publish(uint16_t kind, Bytes body, uint64_t lifetime_ms) {
  return router_->publish(kind, std::move(body), now_ms(), lifetime_ms);
}

void Node::on_broadcast(std::function<void(const SignedMessage&)> handler) {
  broadcast_handler_ = std::move(handler);
}

const BroadcastCounters& Node::broadcast_counters() const {
  return router_->counters();
}

void Node::close() {
  if (closed_) return;
  closed_ = true;
  if (listener_) listener_->close();
  std::map<NodeId, std::shared_ptr<Session>> sessions = std::move(sessions_);
  sessions_.clear();
  for (auto& [peer, session] : sessions) {
    closing_.push_back(session);
    session->close("node closed", false);
  }
}

}  // namespace tern::net
