// Content-addressed blobs: immutable byte strings named by a hash of their
// contents, stored whole or assembled chunk by chunk from untrusted peers.
//
// A blob is cut into fixed-size chunks (the last one may be short; an empty
// blob has none). Its id is
//   BLAKE2b-256("tern-blob-v1" || u64 LE size || u32 LE chunk_size
//               || hash(chunk 0) || hash(chunk 1) || ...)
// where hash(chunk) = BLAKE2b-256(chunk bytes). The manifest (size, chunk size,
// chunk hashes) therefore proves itself against the id, and each chunk proves
// itself against the manifest: a chunk can be accepted from anyone the moment
// it arrives. Chunk sizes are powers of two from 4 KiB to 16 MiB (1 MiB by
// default).
//
// Thread-safety: the free functions are pure. BlobStore is thread-safe: one
// mutex guards its index; chunk hashing runs outside the lock, so several
// threads may verify chunks at once.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/hash.h"
#include "core/status.h"

namespace tern::net {

using BlobId = Blake2bDigest;
using Bytes = std::vector<uint8_t>;

inline constexpr uint32_t kMinChunkSize = uint32_t{4} << 10;
inline constexpr uint32_t kMaxChunkSize = uint32_t{16} << 20;
inline constexpr uint32_t kDefaultChunkSize = uint32_t{1} << 20;

// OK for a power of two in [kMinChunkSize, kMaxChunkSize].
Status check_chunk_size(uint32_t chunk_size);

// The first 12 hex characters of an id, for logs and error messages.
std::string short_blob_id(const BlobId& id);

// ceil(size / chunk_size); chunk_size must be valid (CHECK).
uint64_t chunk_count_for(uint64_t size, uint32_t chunk_size);

struct BlobManifest {
  BlobId id{};
  uint64_t size = 0;
  uint32_t chunk_size = kDefaultChunkSize;
  std::vector<Blake2bDigest> chunk_hashes;  // one per chunk, in order

  uint32_t chunk_count() const { return static_cast<uint32_t>(chunk_hashes.size()); }
  // Byte offset and length of chunk `index` (< chunk_count(), CHECK).
  uint64_t chunk_offset(uint32_t index) const;
  uint32_t chunk_length(uint32_t index) const;

  bool operator==(const BlobManifest&) const = default;
};

// The id the fields name (ignores manifest.id).
BlobId compute_blob_id(uint64_t size, uint32_t chunk_size, std::span<const Blake2bDigest> hashes);

// Manifest of `bytes`; chunk_size must be valid (CHECK).
BlobManifest make_manifest(std::span<const uint8_t> bytes, uint32_t chunk_size = kDefaultChunkSize);

// Checks an untrusted manifest: valid chunk size, chunk count consistent with
// size, manifest.id == expected_id, and the hashes reproduce that id. Returns
// the manifest when it holds; otherwise a Status naming the blob and the fault.
Result<BlobManifest> verify_manifest(const BlobId& expected_id, BlobManifest manifest);

// Complete blobs plus partial downloads, in memory.
//
// A partial download starts with begin(manifest) and reserves the blob's full
// size; put_chunk() accepts a chunk only if its length and hash match the
// manifest. When the last chunk arrives the blob becomes complete (has() is
// true, get() returns it). Partial state stays after a failed fetch, so a later
// fetch resumes with missing_chunks(). manifest() and chunk() serve complete
// blobs and the verified chunks of partial ones (a downloader can serve what it
// already has). With a capacity, bytes held (complete + reserved) never exceed
// it: put() and begin() beyond it return a Status.
class BlobStore {
 public:
  // chunk_size is what put() cuts blobs into (CHECKed valid).
  explicit BlobStore(std::optional<uint64_t> capacity_bytes = std::nullopt,
                     uint32_t chunk_size = kDefaultChunkSize);
  BlobStore(const BlobStore&) = delete;
  BlobStore& operator=(const BlobStore&) = delete;

  // Stores a complete blob (idempotent) and returns its id.
  Result<BlobId> put(std::span<const uint8_t> bytes);

  // True once the blob is complete.
  bool has(const BlobId& id) const;
  // The complete blob; an error if it is absent or still partial.
  Result<std::shared_ptr<const Bytes>> get(const BlobId& id) const;
  Result<BlobManifest> manifest(const BlobId& id) const;
  // A verified chunk of a complete or partial blob.
  Result<Bytes> chunk(const BlobId& id, uint32_t index) const;

  // Starts (or resumes) a download; verifies the manifest against its id.
  // OK without effect if the blob is already complete or begun.
  Status begin(const BlobManifest& manifest);
  // Verifies and stores one chunk of a begun download (or a complete blob). A
  // valid chunk already held is accepted without effect.
  Status put_chunk(const BlobId& id, uint32_t index, std::span<const uint8_t> bytes);
  // Indices not yet verified, ascending (empty once complete); an error if
  // the blob was never begun.
  Result<std::vector<uint32_t>> missing_chunks(const BlobId& id) const;

  // Drops a complete or partial blob and frees its bytes; false if absent. A
  // download of it in progress then fails cleanly (its chunks find no entry);
  // readers holding get()'s pointer keep their copy.
  bool erase(const BlobId& id);

  // Bytes held or reserved by complete and partial blobs.
  uint64_t used_bytes() const;
  std::optional<uint64_t> capacity_bytes() const { return capacity_; }
  uint32_t chunk_size() const { return chunk_size_; }

 private:
  struct Entry {
    BlobManifest manifest;
    std::shared_ptr<Bytes> data;  // full size from begin(); shared once complete
    std::vector<bool> have;       // per chunk
    uint32_t missing = 0;
  };
  Status reserve_locked(const BlobId& id, uint64_t size, const char* operation);

  const std::optional<uint64_t> capacity_;
  const uint32_t chunk_size_;
  mutable std::mutex mutex_;
  std::map<BlobId, Entry> entries_;  // node-based: references stay valid
  uint64_t used_ = 0;
};

}  // namespace tern::net
