#include "net/messages.h"

#include <cstring>
#include <memory>
#include <type_traits>

#include "net/messages_generated.h"

namespace tern::net {
namespace {

namespace fbs = ::tern::net::fb;
using flatbuffers::FlatBufferBuilder;
using flatbuffers::Offset;
using ByteVector = flatbuffers::Vector<uint8_t>;

// ---- encoding ----

template <size_t N>
Offset<ByteVector> bytes_of(FlatBufferBuilder& builder, const std::array<uint8_t, N>& bytes) {
  return builder.CreateVector(bytes.data(), bytes.size());
}

template <size_t N>
Offset<ByteVector> concat_of(FlatBufferBuilder& builder,
                             const std::vector<std::array<uint8_t, N>>& items) {
  Bytes flat;
  flat.reserve(items.size() * N);
  for (const auto& item : items) flat.insert(flat.end(), item.begin(), item.end());
  return builder.CreateVector(flat);
}

// Each overload builds one body table and names its union tag.
std::pair<fbs::Body, Offset<void>> build(FlatBufferBuilder& b, const msg::Hello& m) {
  auto run_id = bytes_of(b, m.run_id);
  auto role = b.CreateString(m.role);
  auto capabilities = b.CreateVectorOfStrings(m.capabilities);
  return {fbs::Body::Hello,
          fbs::CreateHello(b, m.protocol_version, run_id, role, capabilities).Union()};
}
std::pair<fbs::Body, Offset<void>> build(FlatBufferBuilder& b, const msg::GetManifest& m) {
  auto blob = bytes_of(b, m.blob);
  return {fbs::Body::GetManifest, fbs::CreateGetManifest(b, blob).Union()};
}
std::pair<fbs::Body, Offset<void>> build(FlatBufferBuilder& b, const msg::Manifest& m) {
  auto blob = bytes_of(b, m.manifest.id);
  auto hashes = concat_of(b, m.manifest.chunk_hashes);
  return {fbs::Body::Manifest,
          fbs::CreateManifest(b, blob, m.manifest.size, m.manifest.chunk_size, hashes).Union()};
}
std::pair<fbs::Body, Offset<void>> build(FlatBufferBuilder& b, const msg::GetChunk& m) {
  auto blob = bytes_of(b, m.blob);
  return {fbs::Body::GetChunk, fbs::CreateGetChunk(b, blob, m.index).Union()};
}
std::pair<fbs::Body, Offset<void>> build(FlatBufferBuilder& b, const msg::Chunk& m) {
  auto blob = bytes_of(b, m.blob);
  auto data = b.CreateVector(m.data);
  return {fbs::Body::Chunk, fbs::CreateChunk(b, blob, m.index, data).Union()};
}
std::pair<fbs::Body, Offset<void>> build(FlatBufferBuilder& b, const msg::NotFound& m) {
  auto blob = bytes_of(b, m.blob);
  auto reason = b.CreateString(m.reason);
  return {fbs::Body::NotFound, fbs::CreateNotFound(b, blob, reason).Union()};
}
std::pair<fbs::Body, Offset<void>> build(FlatBufferBuilder& b, const msg::Have& m) {
  auto blobs = concat_of(b, m.blobs);
  return {fbs::Body::Have, fbs::CreateHave(b, blobs).Union()};
}
std::pair<fbs::Body, Offset<void>> build(FlatBufferBuilder& b, const msg::Broadcast& m) {
  auto run_id = bytes_of(b, m.run_id);
  auto sender = bytes_of(b, m.sender);
  auto body = b.CreateVector(m.body);
  auto signature = bytes_of(b, m.signature);
  return {
      fbs::Body::Broadcast,
      fbs::CreateBroadcast(b, run_id, sender, m.seq, m.expiry_ms, m.kind, body, signature).Union()};
}
std::pair<fbs::Body, Offset<void>> build(FlatBufferBuilder& b, const msg::Error& m) {
  auto text = b.CreateString(m.message);
  return {fbs::Body::Error, fbs::CreateError(b, m.code, text).Union()};
}

size_t payload_estimate(const MessageBody& body) {
  if (const auto* chunk = std::get_if<msg::Chunk>(&body)) return chunk->data.size();
  if (const auto* manifest = std::get_if<msg::Manifest>(&body)) {
    return manifest->manifest.chunk_hashes.size() * 32;
  }
  if (const auto* broadcast = std::get_if<msg::Broadcast>(&body)) return broadcast->body.size();
  return 0;
}

// ---- decoding ----

Status field_error(const char* field, const std::string& problem) {
  return Status::Error(std::string("decode message: ") + field + " " + problem);
}

template <size_t N>
Result<std::array<uint8_t, N>> fixed_bytes(const ByteVector* vector, const char* field) {
  const size_t size = vector ? vector->size() : 0;
  if (size != N) {
    return field_error(
        field, "has " + std::to_string(size) + " bytes (expected " + std::to_string(N) + ")");
  }
  std::array<uint8_t, N> out;
  std::memcpy(out.data(), vector->data(), N);
  return out;
}

// A list of N-byte items packed into one byte vector, at most max_items.
template <size_t N>
Result<std::vector<std::array<uint8_t, N>>> packed_items(const ByteVector* vector,
                                                         const char* field, size_t max_items) {
  const size_t size = vector ? vector->size() : 0;
  if (size % N != 0) {
    return field_error(field, "has " + std::to_string(size) + " bytes (not a multiple of " +
                                  std::to_string(N) + ")");
  }
  if (size / N > max_items) {
    return field_error(field, "has " + std::to_string(size / N) + " entries (max " +
                                  std::to_string(max_items) + ")");
  }
  std::vector<std::array<uint8_t, N>> out(size / N);
  if (size != 0) std::memcpy(out.data(), vector->data(), size);
  return out;
}

Result<Bytes> bounded_bytes(const ByteVector* vector, const char* field, size_t max_bytes) {
  const size_t size = vector ? vector->size() : 0;
  if (size > max_bytes) {
    return field_error(
        field, "has " + std::to_string(size) + " bytes (max " + std::to_string(max_bytes) + ")");
  }
  return vector ? Bytes(vector->begin(), vector->end()) : Bytes{};
}

Result<std::string> bounded_string(const flatbuffers::String* text, const std::string& field,
                                   size_t max_bytes) {
  const size_t size = text ? text->size() : 0;
  if (size > max_bytes) {
    return field_error(field.c_str(), "has " + std::to_string(size) + " bytes (max " +
                                          std::to_string(max_bytes) + ")");
  }
  return text ? text->str() : std::string();
}

Status body_missing(const char* name) {
  return field_error("body", std::string(name) + " missing");
}

Result<MessageBody> decode_hello(const fbs::Hello* in, const MessageLimits& limits) {
  if (!in) return body_missing("Hello");
  msg::Hello out;
  out.protocol_version = in->protocol_version();
  TERN_ASSIGN_OR_RETURN(out.run_id, fixed_bytes<16>(in->run_id(), "Hello.run_id"));
  TERN_ASSIGN_OR_RETURN(out.role,
                        bounded_string(in->role(), "Hello.role", limits.max_string_bytes));
  if (const auto* capabilities = in->capabilities()) {
    if (capabilities->size() > limits.max_capabilities) {
      return field_error("Hello.capabilities", "has " + std::to_string(capabilities->size()) +
                                                   " entries (max " +
                                                   std::to_string(limits.max_capabilities) + ")");
    }
    for (flatbuffers::uoffset_t i = 0; i < capabilities->size(); ++i) {
      TERN_ASSIGN_OR_RETURN(
          std::string capability,
          bounded_string(capabilities->Get(i), "Hello.capabilities[" + std::to_string(i) + "]",
                         limits.max_string_bytes));
      out.capabilities.push_back(std::move(capability));
    }
  }
  return MessageBody(std::move(out));
}

Result<MessageBody> decode_get_manifest(const fbs::GetManifest* in) {
  if (!in) return body_missing("GetManifest");
  msg::GetManifest out;
  TERN_ASSIGN_OR_RETURN(out.blob, fixed_bytes<32>(in->blob_id(), "GetManifest.blob_id"));
  return MessageBody(out);
}

Result<MessageBody> decode_manifest(const fbs::Manifest* in, const MessageLimits& limits) {
  if (!in) return body_missing("Manifest");
  msg::Manifest out;
  BlobManifest& manifest = out.manifest;
  TERN_ASSIGN_OR_RETURN(manifest.id, fixed_bytes<32>(in->blob_id(), "Manifest.blob_id"));
  manifest.size = in->size();
  manifest.chunk_size = in->chunk_size();
  Status chunk_size_ok = check_chunk_size(manifest.chunk_size);
  if (!chunk_size_ok.ok()) return field_error("Manifest.chunk_size", chunk_size_ok.message());
  TERN_ASSIGN_OR_RETURN(
      manifest.chunk_hashes,
      packed_items<32>(in->chunk_hashes(), "Manifest.chunk_hashes", limits.max_manifest_chunks));
  const uint64_t expected = chunk_count_for(manifest.size, manifest.chunk_size);
  if (manifest.chunk_hashes.size() != expected) {
    return field_error("Manifest.chunk_hashes",
                       "has " + std::to_string(manifest.chunk_hashes.size()) +
                           " hashes, but size " + std::to_string(manifest.size) + " in chunks of " +
                           std::to_string(manifest.chunk_size) + " needs " +
                           std::to_string(expected));
  }
  return MessageBody(std::move(out));
}

Result<MessageBody> decode_get_chunk(const fbs::GetChunk* in) {
  if (!in) return body_missing("GetChunk");
  msg::GetChunk out;
  TERN_ASSIGN_OR_RETURN(out.blob, fixed_bytes<32>(in->blob_id(), "GetChunk.blob_id"));
  out.index = in->index();
  return MessageBody(out);
}

Result<MessageBody> decode_chunk(const fbs::Chunk* in, const MessageLimits& limits) {
  if (!in) return body_missing("Chunk");
  msg::Chunk out;
  TERN_ASSIGN_OR_RETURN(out.blob, fixed_bytes<32>(in->blob_id(), "Chunk.blob_id"));
  out.index = in->index();
  TERN_ASSIGN_OR_RETURN(out.data, bounded_bytes(in->data(), "Chunk.data", limits.max_chunk_bytes));
  return MessageBody(std::move(out));
}

Result<MessageBody> decode_not_found(const fbs::NotFound* in, const MessageLimits& limits) {
  if (!in) return body_missing("NotFound");
  msg::NotFound out;
  TERN_ASSIGN_OR_RETURN(out.blob, fixed_bytes<32>(in->blob_id(), "NotFound.blob_id"));
  TERN_ASSIGN_OR_RETURN(out.reason,
                        bounded_string(in->reason(), "NotFound.reason", limits.max_string_bytes));
  return MessageBody(std::move(out));
}

Result<MessageBody> decode_have(const fbs::Have* in, const MessageLimits& limits) {
  if (!in) return body_missing("Have");
  msg::Have out;
  TERN_ASSIGN_OR_RETURN(out.blobs,
                        packed_items<32>(in->blob_ids(), "Have.blob_ids", limits.max_have_blobs));
  return MessageBody(std::move(out));
}

Result<MessageBody> decode_broadcast(const fbs::Broadcast* in, const MessageLimits& limits) {
  if (!in) return body_missing("Broadcast");
  msg::Broadcast out;
  TERN_ASSIGN_OR_RETURN(out.run_id, fixed_bytes<16>(in->run_id(), "Broadcast.run_id"));
  TERN_ASSIGN_OR_RETURN(out.sender, fixed_bytes<32>(in->sender(), "Broadcast.sender"));
  out.seq = in->seq();
  out.expiry_ms = in->expiry_ms();
  out.kind = in->kind();
  TERN_ASSIGN_OR_RETURN(
      out.body, bounded_bytes(in->body(), "Broadcast.body", limits.max_broadcast_body_bytes));
  TERN_ASSIGN_OR_RETURN(out.signature, fixed_bytes<64>(in->signature(), "Broadcast.signature"));
  return MessageBody(std::move(out));
}

Result<MessageBody> decode_error(const fbs::Error* in, const MessageLimits& limits) {
  if (!in) return body_missing("Error");
  msg::Error out;
  out.code = in->code();
  TERN_ASSIGN_OR_RETURN(out.message,
                        bounded_string(in->message(), "Error.message", limits.max_string_bytes));
  return MessageBody(std::move(out));
}

Result<MessageBody> decode_body(const fbs::Message& message, const MessageLimits& limits) {
  switch (message.body_type()) {
    case fbs::Body::NONE:
      return field_error("body", "missing");
    case fbs::Body::Hello:
      return decode_hello(message.body_as_Hello(), limits);
    case fbs::Body::GetManifest:
      return decode_get_manifest(message.body_as_GetManifest());
    case fbs::Body::Manifest:
      return decode_manifest(message.body_as_Manifest(), limits);
    case fbs::Body::GetChunk:
      return decode_get_chunk(message.body_as_GetChunk());
    case fbs::Body::Chunk:
      return decode_chunk(message.body_as_Chunk(), limits);
    case fbs::Body::NotFound:
      return decode_not_found(message.body_as_NotFound(), limits);
    case fbs::Body::Have:
      return decode_have(message.body_as_Have(), limits);
    case fbs::Body::Broadcast:
      return decode_broadcast(message.body_as_Broadcast(), limits);
    case fbs::Body::Error:
      return decode_error(message.body_as_Error(), limits);
  }
  // A tag from a newer schema: the verifier cannot look inside, so refuse it.
  return field_error("body_type",
                     std::to_string(static_cast<unsigned>(message.body_type())) + " is unknown");
}

std::string hex_of(std::span<const uint8_t> bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t byte : bytes) {
    out.push_back(kDigits[byte >> 4]);
    out.push_back(kDigits[byte & 15]);
  }
  return out;
}

}  // namespace

Bytes encode_message(const WireMessage& message) {
  FlatBufferBuilder builder(payload_estimate(message.body) + 256);
  auto [type, body] = std::visit([&](const auto& m) { return build(builder, m); }, message.body);
  fbs::MessageBuilder root(builder);
  root.add_version(kWireVersion);
  root.add_request_id(message.request_id);
  root.add_body_type(type);
  root.add_body(body);
  fbs::FinishMessageBuffer(builder, root.Finish());
  return Bytes(builder.GetBufferPointer(), builder.GetBufferPointer() + builder.GetSize());
}

Result<WireMessage> decode_message(std::span<const uint8_t> bytes, const MessageLimits& limits) {
  TERN_CHECK(limits.max_message_bytes < FLATBUFFERS_MAX_BUFFER_SIZE, "max_message_bytes ",
             limits.max_message_bytes);
  if (bytes.size() > limits.max_message_bytes) {
    return Status::Error("decode message: " + std::to_string(bytes.size()) +
                         " bytes exceed max_message_bytes " +
                         std::to_string(limits.max_message_bytes));
  }
  if (bytes.size() < 8) {
    return Status::Error("decode message: " + std::to_string(bytes.size()) +
                         " bytes is too short for a FlatBuffer (min 8)");
  }
  if (!flatbuffers::BufferHasIdentifier(bytes.data(), fbs::MessageIdentifier())) {
    return field_error("file_identifier",
                       "is " + hex_of(bytes.subspan(4, 4)) + " (expected \"TRNM\")");
  }
  // The Verifier checks alignment relative to the buffer start and the accessors
  // then read scalars in place, so the buffer itself must be 8-aligned.
  std::unique_ptr<uint64_t[]> aligned_copy;
  const uint8_t* data = bytes.data();
  if (reinterpret_cast<uintptr_t>(data) % alignof(uint64_t) != 0) {
    aligned_copy.reset(new uint64_t[(bytes.size() + 7) / 8]);
    std::memcpy(aligned_copy.get(), bytes.data(), bytes.size());
    data = reinterpret_cast<const uint8_t*>(aligned_copy.get());
  }
  flatbuffers::Verifier::Options options;
  options.max_depth = limits.max_depth;
  options.max_tables = limits.max_tables;
  options.check_alignment = true;
  flatbuffers::Verifier verifier(data, bytes.size(), options);
  if (!fbs::VerifyMessageBuffer(verifier)) {
    return Status::Error("decode message: " + std::to_string(bytes.size()) +
                         " bytes fail FlatBuffers verification");
  }
  const fbs::Message* root = fbs::GetMessage(data);
  if (root->version() != kWireVersion) {
    return field_error("Message.version", "is " + std::to_string(root->version()) + " (expected " +
                                              std::to_string(kWireVersion) + ")");
  }
  WireMessage out;
  out.request_id = root->request_id();
  TERN_ASSIGN_OR_RETURN(out.body, decode_body(*root, limits));
  return out;
}

const char* body_name(const MessageBody& body) {
  static constexpr const char* kNames[] = {"Hello",    "GetManifest", "Manifest",
                                           "GetChunk", "Chunk",       "NotFound",
                                           "Have",     "Broadcast",   "Error"};
  static_assert(std::size(kNames) == std::variant_size_v<MessageBody>);
  return kNames[body.index()];
}

}  // namespace tern::net
