// Secure channel: an authenticated, encrypted message stream between two
// nodes over a Connection (transport.h), using Noise (noise.h).
//
// Handshake. The dialer uses Noise IK when it knows the peer's node id (the
// responder's static key is dh_public_of(id)), XX otherwise; the acceptor
// answers either. Every handshake frame starts with one kind byte (1 = XX,
// 2 = IK, 0x7f = rejection); the pattern byte is also part of the prologue,
//   prologue = "tern-net-v1" || pattern byte || caller's context (e.g. run id),
// so a downgraded pattern or a peer from another run fails the handshake. The
// handshake payload that travels with each side's static key is that side's
// 32-byte Ed25519 public key (its node id); the receiver checks that it maps
// to the Noise static key it authenticated. An acceptor that cannot decrypt
// an IK first message (the dialer expected another node, or another context)
// answers with a rejection frame holding its own node id, so the dialer can
// say whom it reached; that claim is unauthenticated and only used in the
// error message.
//
// Transport. An application message (<= max_message_bytes) is cut into Noise
// transport messages of at most 65535 bytes, one Connection frame each; the
// first plaintext byte of each holds flags (bit 0: more fragments follow;
// other bits must be zero). Both directions rekey after every rekey_interval
// Noise messages they carry, at the same point on both sides (no signalling).
// Nonce exhaustion is an error, never a reuse.
//
// Errors: every failure (handshake, MAC, oversize, wrong key, malformed
// fragment, failures of the Connection such as timeouts) is a Status naming
// the operation and the peer address; the channel is closed afterwards.
//
// Threading: like Connection. Everything runs on the Connection's executor;
// at most one send() and one receive() in flight (CHECKed); they may run
// concurrently with each other. The identity and spans passed in must stay
// valid until the operation completes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include <asio/awaitable.hpp>

#include "core/status.h"
#include "net/identity.h"
#include "net/noise.h"
#include "net/transport.h"

namespace tern::net {

struct SecureChannelOptions {
  size_t max_message_bytes = size_t{64} << 20;
  // Noise transport messages per direction between rekeys (> 0).
  uint64_t rekey_interval = uint64_t{1} << 16;
  // Use XX even when the peer's id is known (then checked after the
  // handshake); for tests and for peers whose id is only a hint.
  bool force_xx = false;
};

class SecureChannel {
 public:
  // Runs the initiator side of the handshake over `connection`.
  static asio::awaitable<Result<std::unique_ptr<SecureChannel>>> dial(
      std::unique_ptr<Connection> connection, const Identity& identity,
      std::optional<NodeId> expected_peer, std::span<const uint8_t> prologue_context,
      SecureChannelOptions options = {});

  // Runs the responder side (answers XX or IK).
  static asio::awaitable<Result<std::unique_ptr<SecureChannel>>> accept(
      std::unique_ptr<Connection> connection, const Identity& identity,
      std::span<const uint8_t> prologue_context, SecureChannelOptions options = {});

  ~SecureChannel();
  SecureChannel(const SecureChannel&) = delete;
  SecureChannel& operator=(const SecureChannel&) = delete;

  // The authenticated peer.
  const NodeId& peer() const { return peer_; }
  std::string peer_address() const { return connection_->peer_address(); }
  bool closed() const { return closed_; }

  // Sends one message (0 <= size <= max_message_bytes).
  asio::awaitable<Status> send(std::span<const uint8_t> message);
  // The next complete message.
  asio::awaitable<Result<Bytes>> receive();
  // Closes the channel and its connection; idempotent.
  void close();

 private:
  SecureChannel(std::unique_ptr<Connection> connection, NodeId peer, noise::CipherState send_cipher,
                noise::CipherState receive_cipher, SecureChannelOptions options);
  Status fail(Status status);

  std::unique_ptr<Connection> connection_;
  NodeId peer_;
  noise::CipherState send_cipher_;
  noise::CipherState receive_cipher_;
  SecureChannelOptions options_;
  uint64_t sent_since_rekey_ = 0;
  uint64_t received_since_rekey_ = 0;
  bool send_in_flight_ = false;
  bool receive_in_flight_ = false;
  bool closed_ = false;
};

}  // namespace tern::net
