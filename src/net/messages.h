// Wire messages: everything peers send each other, as plain C++ structs, and
// their encoding (FlatBuffers schema src/net/messages.fbs, identifier "TRNM",
// Message.version kWireVersion).
//
// decode_message treats its input as hostile and is total: any byte string
// gives either a Status naming the field at fault and its value, or a message
// whose every field has been checked - the FlatBuffers Verifier (depth and
// table limits), identifier and version, exact lengths of ids (32 bytes), run
// ids (16) and signatures (64), manifests whose chunk hash count matches
// size / chunk_size, and caps on strings, lists, chunk data and the whole
// message (MessageLimits). encode_message(decode_message(b)) decodes to the
// same struct. Pure functions; thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "core/status.h"
#include "net/blob.h"

namespace tern::net {

inline constexpr uint16_t kWireVersion = 1;

using RunId = std::array<uint8_t, 16>;
using NodeKey = std::array<uint8_t, 32>;         // Ed25519 public key (NodeId::key)
using SignatureBytes = std::array<uint8_t, 64>;  // Ed25519 signature

// Message bodies; the names follow the schema's tables.
namespace msg {

struct Hello {
  uint16_t protocol_version = 0;
  RunId run_id{};
  std::string role;
  std::vector<std::string> capabilities;
  bool operator==(const Hello&) const = default;
};
struct GetManifest {
  BlobId blob{};
  bool operator==(const GetManifest&) const = default;
};
// Unverified as decoded: only its shape is checked (see verify_manifest()).
struct Manifest {
  BlobManifest manifest;
  bool operator==(const Manifest&) const = default;
};
struct GetChunk {
  BlobId blob{};
  uint32_t index = 0;
  bool operator==(const GetChunk&) const = default;
};
// Unverified as decoded (see BlobStore::put_chunk()).
struct Chunk {
  BlobId blob{};
  uint32_t index = 0;
  Bytes data;
  bool operator==(const Chunk&) const = default;
};
struct NotFound {
  BlobId blob{};
  std::string reason;
  bool operator==(const NotFound&) const = default;
};
struct Have {
  std::vector<BlobId> blobs;
  bool operator==(const Have&) const = default;
};
// Signature unchecked as decoded: that is the broadcast layer's job.
struct Broadcast {
  RunId run_id{};
  NodeKey sender{};
  uint64_t seq = 0;
  uint64_t expiry_ms = 0;
  uint16_t kind = 0;
  Bytes body;
  SignatureBytes signature{};
  bool operator==(const Broadcast&) const = default;
};
struct Error {
  uint16_t code = 0;
  std::string message;
  bool operator==(const Error&) const = default;
};

}  // namespace msg

using MessageBody = std::variant<msg::Hello, msg::GetManifest, msg::Manifest, msg::GetChunk,
                                 msg::Chunk, msg::NotFound, msg::Have, msg::Broadcast, msg::Error>;

struct WireMessage {
  uint64_t request_id = 0;
  MessageBody body;
  bool operator==(const WireMessage&) const = default;
};

struct MessageLimits {
  size_t max_message_bytes = size_t{kMaxChunkSize} + (size_t{64} << 10);  // must be < 2 GiB
  uint32_t max_chunk_bytes = kMaxChunkSize;                               // Chunk.data
  size_t max_string_bytes = 1024;  // role, each capability, reason, error message
  size_t max_capabilities = 64;
  size_t max_have_blobs = 65536;
  size_t max_manifest_chunks = size_t{1} << 20;
  size_t max_broadcast_body_bytes = size_t{1} << 20;
  uint32_t max_depth = 8;    // FlatBuffers Verifier nesting
  uint32_t max_tables = 64;  // FlatBuffers Verifier table count
};

// Encodes any message; one that breaks the rules above (a manifest whose hash
// count does not match its size, a string over the receiver's cap) is encoded
// as is and refused by the receiver's decode_message.
Bytes encode_message(const WireMessage& message);

Result<WireMessage> decode_message(std::span<const uint8_t> bytes,
                                   const MessageLimits& limits = {});

// "Hello", "Chunk", ... for logs.
const char* body_name(const MessageBody& body);

}  // namespace tern::net
