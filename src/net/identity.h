// Node identity: an Ed25519 key pair (libsodium). A node is its public key;
// addresses are only hints. The X25519 key that Noise uses (secure_channel.h)
// is derived from the Ed25519 key (libsodium's ed25519 -> curve25519
// conversion), so a Noise static key proves the identity it came from.
//
// Text form of a node id: "tern" followed by the lowercase RFC 4648 base32 of
// the 32-byte key, no padding (56 characters in all). Key files hold the
// 32-byte seed (see docs/network.md) and must not be readable by group or
// others: load() refuses them with an error naming the mode. Format (text):
//   tern-ed25519-key v1
//   seed <64 lowercase hex digits>
//   id <node id>            (checked against the seed on load)
//
// Thread-safety: Identity and NodeId are immutable after construction and safe
// to share; the secret is wiped on destruction.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/status.h"

namespace tern::net {

using Ed25519Signature = std::array<uint8_t, 64>;
using X25519Key = std::array<uint8_t, 32>;

struct NodeId {
  std::array<uint8_t, 32> key{};  // Ed25519 public key

  std::string to_string() const;     // "tern" + base32
  std::string short_string() const;  // first 12 characters, for logs
  static Result<NodeId> parse(std::string_view text);
  auto operator<=>(const NodeId&) const = default;
};

class Identity {
 public:
  static Identity generate();  // from libsodium's CSPRNG
  // Deterministic, for tests and reproducible simulations.
  static Identity from_seed(std::span<const uint8_t, 32> seed);
  // Reads a key file; refuses a file whose mode grants group/other any access.
  static Result<Identity> load(const std::string& path);
  // Writes a key file with mode 0600; refuses to overwrite an existing file.
  Status save(const std::string& path) const;

  Identity(const Identity&);
  Identity& operator=(const Identity&);
  ~Identity();

  const NodeId& id() const { return id_; }
  Ed25519Signature sign(std::span<const uint8_t> message) const;
  // X25519 key pair for Noise, derived from the Ed25519 key pair.
  const X25519Key& dh_public() const { return dh_public_; }
  const X25519Key& dh_secret() const { return dh_secret_; }

 private:
  Identity() = default;
  NodeId id_;
  std::array<uint8_t, 64> secret_{};  // libsodium Ed25519 secret key (seed || public)
  X25519Key dh_public_{};
  X25519Key dh_secret_{};
};

bool verify_signature(const NodeId& signer, std::span<const uint8_t> message,
                      const Ed25519Signature& signature);

// The X25519 public key a node's Noise static key must equal; an error for a
// key that is not a valid Ed25519 point.
Result<X25519Key> dh_public_of(const NodeId& node);

}  // namespace tern::net
