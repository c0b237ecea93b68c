// Node: one member of a run on the peer-to-peer layer. It ties the pieces
// together: it listens on a Transport, runs the secure channel (Noise, keyed
// by node identity, with the run id in the prologue) on every link, speaks the
// wire messages (messages.h) over it, serves the blobs of its BlobStore,
// fetches blobs from several peers at once (blob_fetch.h), and carries signed
// broadcasts (broadcast.h), relaying them if configured to.
//
// Every link is a Session: one secure channel with a reader loop (requests
// are answered, responses are matched to waiting requests by request id,
// broadcasts go to the router) and a writer loop draining a bounded outbox
// (and sending an empty Have as a keepalive when the link is idle).
// A full outbox stops the reader (back-pressure on the peer); a broadcast that
// finds it full is dropped with a log line.
//
// Untrusted peers: a failed handshake, a peer not on the allowlist, a link
// past max_peers, a message that does not decode, an unsolicited response and
// a rejected broadcast each cost the peer its link (or the message) and write
// a warn line (component "net"); the node keeps serving everyone else.
//
// Threading: a Node and all its coroutines belong to one single-threaded
// executor (an io_context run by one thread, or a strand); call every method
// from there. close() ends all links; let the executor run until the
// coroutines finish, then destroy the Node (the transport must outlive it).
// Coroutines still parked when the Node is destroyed notice and stop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>

#include "core/status.h"
#include "net/blob.h"
#include "net/blob_fetch.h"
#include "net/broadcast.h"
#include "net/identity.h"
#include "net/messages.h"
#include "net/secure_channel.h"
#include "net/transport.h"

namespace tern::net {

struct NodeOptions {
  RunId run_id{};
  // Relay accepted broadcasts to the other links (coordinator, hub peers).
  bool relay = false;
  ReplayGuardLimits broadcast_limits;
  MessageLimits message_limits;
  SecureChannelOptions channel;  // max_message_bytes is set from message_limits
  Millis request_timeout{30'000};
  // An idle link sends an empty Have this often; keep it well below the
  // transport's read_timeout, which closes links that stay silent.
  Millis keepalive{10'000};
  size_t max_peers = 64;
  size_t max_outbox_bytes = size_t{32} << 20;  // per link
  // When set, only these nodes may hold a link (either direction).
  std::optional<std::vector<NodeId>> allowed_peers;
  std::optional<uint64_t> blob_capacity_bytes;
  uint32_t blob_chunk_size = kDefaultChunkSize;
  // Unix milliseconds; defaults to the system clock. Injected by tests.
  std::function<uint64_t()> now_ms;
};

struct NodeCounters {
  uint64_t links_opened = 0;
  uint64_t rejected_connections = 0;  // failed handshakes, allowlist, max_peers
  uint64_t rejected_messages = 0;     // undecodable or unsolicited messages
  uint64_t requests_served = 0;
  uint64_t chunks_served = 0;
  uint64_t broadcasts_dropped = 0;  // outbox full
};

class Node {
 public:
  Node(asio::any_io_executor executor, Transport& transport, Identity identity,
       NodeOptions options);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Starts accepting links on `address` (e.g. "127.0.0.1:0", "mem:a").
  Status listen(const std::string& address);
  // The bound address after listen(); empty before.
  std::string address() const;

  // Opens a link to the node at `address`. With `expected`, the handshake
  // fails unless that node answers (Noise IK); without, any node (XX).
  asio::awaitable<Result<NodeId>> connect(std::string address, std::optional<NodeId> expected);
  bool connected(const NodeId& peer) const;
  std::vector<NodeId> peers() const;
  void disconnect(const NodeId& peer);

  const NodeId& id() const { return identity_.id(); }
  BlobStore& blobs() { return blobs_; }

  // Fetches a blob from the given linked peers (see fetch_blob). Peers without
  // a link are skipped; none left is an error.
  asio::awaitable<Result<FetchReport>> fetch(BlobId blob, std::vector<NodeId> holders,
                                             FetchOptions options = {});

  // Signs and sends a broadcast to every link; returns what was sent.
  SignedMessage publish(uint16_t kind, Bytes body, uint64_t lifetime_ms);
  // Restricts broadcasts to links with these peers (a member of a star sets
  // its coordinator): other links carry blobs only, so a message is not sent
  // and received twice (directly and relayed). A broadcast arriving on another
  // link is dropped and counted as a rejected message. nullopt: every link.
  void set_broadcast_peers(std::optional<std::vector<NodeId>> peers);
  // Called once per accepted broadcast from another node.
  void on_broadcast(std::function<void(const SignedMessage&)> handler);
  const BroadcastCounters& broadcast_counters() const;

  const NodeCounters& counters() const { return counters_; }

  // Closes the listener and every link; idempotent.
  void close();

  // Simulates a misbehaving holder, for tests and benchmarks: every chunk this
  // node serves passes through `tamper` before it is sent.
  using ChunkTamper = std::function<void(const BlobId&, uint32_t index, Bytes& data)>;
  void set_chunk_tamper_for_testing(ChunkTamper tamper) { tamper_ = std::move(tamper); }

 private:
  class Session;
  class SessionHolder;
  class SessionLink;

  asio::awaitable<void> accept_loop();
  asio::awaitable<void> handshake_inbound(std::unique_ptr<Connection> connection);
  // Admits an authenticated channel as a link, or rejects it (logged).
  Result<NodeId> admit(std::unique_ptr<SecureChannel> channel, const char* direction);
  void session_closed(const NodeId& peer, const Session* session);
  void reject_connection(const std::string& what);
  uint64_t now_ms() const;

  asio::any_io_executor executor_;
  Transport& transport_;
  Identity identity_;
  NodeOptions options_;
  BlobStore blobs_;
  std::unique_ptr<BroadcastRouter> router_;
  std::function<void(const SignedMessage&)> broadcast_handler_;
  std::unique_ptr<Listener> listener_;
  std::map<NodeId, std::shared_ptr<Session>> sessions_;
  std::map<NodeId, bool> link_outbound_;  // per linked peer: did this node dial it
  // Closed links whose loops may still be unwinding; pruned as they finish.
  std::vector<std::shared_ptr<Session>> closing_;
  // Expires with the node: coroutines parked across its destruction see it.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::optional<std::set<NodeId>> allowed_;
  std::optional<std::set<NodeId>> broadcast_peers_;
  NodeCounters counters_;
  ChunkTamper tamper_;
  bool closed_ = false;
};

// Conversions between the wire form of a broadcast and the signed message.
msg::Broadcast to_wire(const SignedMessage& message);
SignedMessage from_wire(const msg::Broadcast& broadcast);

}  // namespace tern::net
