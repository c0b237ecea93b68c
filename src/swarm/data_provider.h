// The swarm data provider's shared definitions (`tern data serve`; the server
// is data_server.h, the member's reader remote_batches.h).
//
// A provider serves one shard directory (data/shards.h) over HTTP. Members do
// not trust it blindly: the run config pins the hash of its manifest, and the
// manifest lists a BLAKE2b-256 digest of every chunk of every data file, so a
// member checks each byte range it downloads.
//
// Provider manifest (GET /v1/manifest): a JSON object, produced once by the
// server; its identity is BLAKE2b-256 of the exact bytes served, which is what
// `[data] provider_hash` pins:
//   format         "tern-data-provider-v1"
//   vocab, token_bytes, tokenizer_hash, content_hash, has_loss_mask,
//   train_tokens, val_tokens        as in the shard manifest
//   chunk_bytes    kProviderChunkBytes
//   files          {"train.tokens": {"bytes": n, "chunks": [hex, ...]}, ...}:
//                  train.tokens, val.tokens, and with a loss mask train.mask
//                  and val.mask; chunk i covers bytes [i*chunk_bytes, ...)
//
// Files (GET /v1/files/<name>, one `Range: bytes=a-b` per request, whole
// chunks only): validation files are open to anyone (every member evaluates on
// the same fixed windows); training files only to a member holding a grant
// for the chunks its batches touch.
//
// Grant (POST /v1/grant, body = encode_grant_request): the coordinator's
// signed Status of a round, plus the member's id and its Ed25519 signature
// over "tern-data-grant-v1" || message id of that Status || member id. The
// provider checks the coordinator's signature, the run and config, that the
// round is current (not older than the newest round it has seen, less one) and
// the member's signature, then grants the chunks of the batches assigned to
// the member in that round and in the round predict_next_plan expects next
// (members train it ahead); the answer is a ticket, sent back as
// `Authorization: Bearer <ticket>`. A grant of round r expires, and Status
// messages of round r stop granting, once a grant of round r + 2 arrives.
//
// Grant request layout (integers little-endian):
//   u8 version (1) | run_id[16] | coordinator[32] | u64 seq | u64 expiry_ms |
//   u16 kind | u32 n | status body[n] | signature[64] | member[32] |
//   member signature[64]
//
// Batch windows: batch b is sequences_per_batch windows of seq_len + 1 tokens
// whose starts are draw_train_window() draws from swarm_batch_rng(seed, b).
//
// Pure functions and plain values; thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/hash.h"
#include "core/rng.h"
#include "core/status.h"
#include "net/broadcast.h"
#include "net/identity.h"
#include "swarm/assignment.h"
#include "swarm/protocol.h"
#include "swarm/run_config.h"

namespace tern::swarm {

inline constexpr uint32_t kProviderChunkBytes = 64 * 1024;
inline constexpr std::string_view kProviderFormat = "tern-data-provider-v1";
inline constexpr std::string_view kGrantDomainTag = "tern-data-grant-v1";

struct ProviderFile {
  uint64_t bytes = 0;
  std::vector<Blake2bDigest> chunks;
  bool operator==(const ProviderFile&) const = default;
};

struct ProviderManifest {
  int64_t vocab = 0;
  int token_bytes = 2;
  std::string tokenizer_hash;
  std::string content_hash;
  bool has_loss_mask = false;
  int64_t train_tokens = 0;
  int64_t val_tokens = 0;
  uint32_t chunk_bytes = kProviderChunkBytes;
  std::map<std::string, ProviderFile> files;  // by name (train.tokens, ...)
  bool operator==(const ProviderManifest&) const = default;
};

// The manifest document (JSON text) of a manifest; the server serves exactly
// these bytes.
std::string provider_manifest_document(const ProviderManifest& manifest);
// Parses and checks an untrusted manifest document: every field present with
// a sane value, file sizes matching the token counts, chunk counts matching
// the sizes. Errors name the field.
Result<ProviderManifest> parse_provider_manifest(std::string_view document);
// Lowercase hex BLAKE2b-256 of a manifest document (what [data] provider_hash pins).
std::string provider_manifest_hash(std::string_view document);

// Chunk digests of one file's bytes.
ProviderFile hash_provider_file(std::span<const uint8_t> bytes, uint32_t chunk_bytes);

// The file a token stream of a split lives in, and its mask's.
std::string tokens_file(bool train);
std::string mask_file(bool train);

// Rng of swarm batch b (its windows' starts are draws from it).
Rng swarm_batch_rng(uint64_t run_seed, uint64_t batch);
// Starts of the windows of every batch in `batches`, in order.
std::vector<int64_t> batch_window_starts(const RunConfig& config, int64_t train_tokens,
                                         std::span<const BatchRange> batches);
// Chunks of `manifest`'s file `name` (token or mask file) that windows of
// `window_tokens` tokens at `starts` touch, ascending and unique.
std::vector<uint64_t> chunks_of_windows(const ProviderManifest& manifest, const std::string& name,
                                        std::span<const int64_t> starts, int64_t window_tokens);

struct GrantRequest {
  net::SignedMessage status;  // the coordinator's Status of a round
  net::NodeId member;
  net::Ed25519Signature member_signature{};
};

// The bytes the member signs: tag || message id of `status` || member.
std::vector<uint8_t> grant_signing_bytes(const net::SignedMessage& status,
                                         const net::NodeId& member);
std::vector<uint8_t> encode_grant_request(const net::SignedMessage& status,
                                          const net::Identity& member);
// Decodes untrusted bytes; checks nothing beyond the layout.
Result<GrantRequest> decode_grant_request(std::span<const uint8_t> bytes);

// What a valid grant request entitles the member to.
struct GrantedBatches {
  uint64_t round = 0;
  std::vector<BatchRange> batches;  // this round's and the predicted next round's
};

// Checks a grant request against the run (config, the coordinator's key, the
// signatures, the Status being a round of this config) and returns the
// member's batches. Freshness is the caller's (it knows the newest round).
Result<GrantedBatches> check_grant_request(const GrantRequest& request, const RunConfig& config,
                                           const net::NodeId& coordinator, uint64_t now_ms);

}  // namespace tern::swarm
