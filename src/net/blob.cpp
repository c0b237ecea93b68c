#include "net/blob.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string_view>

namespace tern::net {
namespace {

constexpr std::string_view kBlobDomain = "tern-blob-v1";

Blake2bDigest hash_bytes(std::span<const uint8_t> bytes) {
  Blake2bHasher hasher;
  hasher.update(bytes);
  return hasher.finish();
}

std::string short_hash(const Blake2bDigest& digest) {
  return to_hex(digest).substr(0, 16);
}

}  // namespace

Status check_chunk_size(uint32_t chunk_size) {
  if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize ||
      !std::has_single_bit(chunk_size)) {
    return Status::Error("chunk size " + std::to_string(chunk_size) +
                         " is not a power of two in [4096, 16777216]");
  }
  return Status::Ok();
}

std::string short_blob_id(const BlobId& id) {
  return to_hex(id).substr(0, 12);
}

uint64_t chunk_count_for(uint64_t size, uint32_t chunk_size) {
  TERN_CHECK(check_chunk_size(chunk_size).ok(), "chunk size ", chunk_size);
  return size / chunk_size + (size % chunk_size != 0 ? 1 : 0);
}

uint64_t BlobManifest::chunk_offset(uint32_t index) const {
  TERN_CHECK(index < chunk_count(), "chunk ", index, " of ", chunk_count());
  return uint64_t{index} * chunk_size;
}

uint32_t BlobManifest::chunk_length(uint32_t index) const {
  const uint64_t offset = chunk_offset(index);
  return static_cast<uint32_t>(std::min<uint64_t>(chunk_size, size - offset));
}

BlobId compute_blob_id(uint64_t size, uint32_t chunk_size, std::span<const Blake2bDigest> hashes) {
  uint8_t header[12];
  for (int i = 0; i < 8; ++i) header[i] = static_cast<uint8_t>(size >> (8 * i));
  for (int i = 0; i < 4; ++i) header[8 + i] = static_cast<uint8_t>(chunk_size >> (8 * i));
  Blake2bHasher hasher;
  hasher.update(kBlobDomain);
  hasher.update(std::span<const uint8_t>(header, sizeof(header)));
  for (const Blake2bDigest& hash : hashes) hasher.update(hash);
  return hasher.finish();
}

BlobManifest make_manifest(std::span<const uint8_t> bytes, uint32_t chunk_size) {
  BlobManifest manifest;
  manifest.size = bytes.size();
  manifest.chunk_size = chunk_size;
  const uint64_t count = chunk_count_for(bytes.size(), chunk_size);
  manifest.chunk_hashes.reserve(count);
  for (uint64_t offset = 0; offset < bytes.size(); offset += chunk_size) {
    manifest.chunk_hashes.push_back(
        hash_bytes(bytes.subspan(offset, std::min<uint64_t>(chunk_size, bytes.size() - offset))));
  }
  manifest.id = compute_blob_id(manifest.size, chunk_size, manifest.chunk_hashes);
  return manifest;
}

Result<BlobManifest> verify_manifest(const BlobId& expected_id, BlobManifest manifest) {
  const std::string where = "verify manifest of blob " + short_blob_id(expected_id);
  TERN_RETURN_IF_ERROR(check_chunk_size(manifest.chunk_size).with_context(where));
  const uint64_t expected_chunks = chunk_count_for(manifest.size, manifest.chunk_size);
  if (manifest.chunk_hashes.size() != expected_chunks) {
    return Status::Error(where + ": " + std::to_string(manifest.chunk_hashes.size()) +
                         " chunk hashes for size " + std::to_string(manifest.size) + " (expected " +
                         std::to_string(expected_chunks) + ")");
  }
  if (manifest.id != expected_id) {
    return Status::Error(where + ": manifest names blob " + short_blob_id(manifest.id));
  }
  const BlobId computed =
      compute_blob_id(manifest.size, manifest.chunk_size, manifest.chunk_hashes);
  if (computed != expected_id) {
    return Status::Error(where + ": chunk hashes give id " + short_blob_id(computed));
  }
  return manifest;
}

BlobStore::BlobStore(std::optional<uint64_t> capacity_bytes, uint32_t chunk_size)
    : capacity_(capacity_bytes), chunk_size_(chunk_size) {
  TERN_CHECK(check_chunk_size(chunk_size).ok(), "BlobStore chunk size ", chunk_size);
}

Status BlobStore::reserve_locked(const BlobId& id, uint64_t size, const char* operation) {
  if (capacity_ && size > *capacity_ - std::min(used_, *capacity_)) {
    return Status::Error(std::string(operation) + " blob " + short_blob_id(id) + ": " +
                         std::to_string(size) + " bytes exceed the store's free capacity (" +
                         std::to_string(used_) + " of " + std::to_string(*capacity_) +
                         " bytes used)");
  }
  used_ += size;
  return Status::Ok();
}

Result<BlobId> BlobStore::put(std::span<const uint8_t> bytes) {
  // Hash outside the lock: it is the expensive part.
  BlobManifest manifest = make_manifest(bytes, chunk_size_);
  std::lock_guard lock(mutex_);
  auto it = entries_.find(manifest.id);
  if (it != entries_.end() && it->second.missing == 0) return manifest.id;
  if (it == entries_.end()) {
    TERN_RETURN_IF_ERROR(reserve_locked(manifest.id, manifest.size, "put"));
    it = entries_.emplace(manifest.id, Entry{}).first;
  }
  // New, or a partial download that this completes: size is already reserved.
  Entry& entry = it->second;
  entry.data = std::make_shared<Bytes>(bytes.begin(), bytes.end());
  entry.have.assign(manifest.chunk_count(), true);
  entry.missing = 0;
  entry.manifest = std::move(manifest);
  return entry.manifest.id;
}

bool BlobStore::erase(const BlobId& id) {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return false;
  used_ -= it->second.manifest.size;
  entries_.erase(it);
  return true;
}

bool BlobStore::has(const BlobId& id) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  return it != entries_.end() && it->second.missing == 0;
}

Result<std::shared_ptr<const Bytes>> BlobStore::get(const BlobId& id) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) return Status::Error("get blob " + short_blob_id(id) + ": not held");
  if (it->second.missing != 0) {
    return Status::Error("get blob " + short_blob_id(id) + ": incomplete, " +
                         std::to_string(it->second.missing) + " chunks missing");
  }
  return std::shared_ptr<const Bytes>(it->second.data);
}

Result<BlobManifest> BlobStore::manifest(const BlobId& id) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end())
    return Status::Error("manifest of blob " + short_blob_id(id) + ": not held");
  return it->second.manifest;
}

Result<Bytes> BlobStore::chunk(const BlobId& id, uint32_t index) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  const std::string where = "chunk " + std::to_string(index) + " of blob " + short_blob_id(id);
  if (it == entries_.end()) return Status::Error(where + ": blob not held");
  const Entry& entry = it->second;
  if (index >= entry.manifest.chunk_count()) {
    return Status::Error(where + ": blob has " + std::to_string(entry.manifest.chunk_count()) +
                         " chunks");
  }
  if (!entry.have[index]) return Status::Error(where + ": chunk not held yet");
  const auto begin =
      entry.data->begin() + static_cast<ptrdiff_t>(entry.manifest.chunk_offset(index));
  return Bytes(begin, begin + entry.manifest.chunk_length(index));
}

Status BlobStore::begin(const BlobManifest& manifest) {
  TERN_ASSIGN_OR_RETURN(BlobManifest verified, verify_manifest(manifest.id, manifest));
  std::lock_guard lock(mutex_);
  // Same id, same manifest (the id commits to every field): nothing to redo.
  if (entries_.count(verified.id) != 0) return Status::Ok();
  TERN_RETURN_IF_ERROR(reserve_locked(verified.id, verified.size, "begin download of"));
  Entry entry;
  entry.data = std::make_shared<Bytes>(verified.size);
  entry.have.assign(verified.chunk_count(), false);
  entry.missing = verified.chunk_count();
  entry.manifest = std::move(verified);
  const BlobId id = entry.manifest.id;
  entries_.emplace(id, std::move(entry));
  return Status::Ok();
}

Status BlobStore::put_chunk(const BlobId& id, uint32_t index, std::span<const uint8_t> bytes) {
  const std::string where = "put chunk " + std::to_string(index) + " of blob " + short_blob_id(id);
  Blake2bDigest expected;
  {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(id);
    if (it == entries_.end()) return Status::Error(where + ": no download in progress");
    // Chunks already held are verified all the same, so that a peer sending
    // garbage is caught even when its chunk is no longer needed.
    const Entry& entry = it->second;
    if (index >= entry.manifest.chunk_count()) {
      return Status::Error(where + ": index out of range (blob has " +
                           std::to_string(entry.manifest.chunk_count()) + " chunks)");
    }
    const uint32_t length = entry.manifest.chunk_length(index);
    if (bytes.size() != length) {
      return Status::Error(where + ": " + std::to_string(bytes.size()) + " bytes (expected " +
                           std::to_string(length) + ")");
    }
    expected = entry.manifest.chunk_hashes[index];
  }
  // Hash without the lock; entries are never removed, so the entry outlives it.
  const Blake2bDigest actual = hash_bytes(bytes);
  if (actual != expected) {
    return Status::Error(where + ": hash mismatch (expected " + short_hash(expected) + "..., got " +
                         short_hash(actual) + "...)");
  }
  std::lock_guard lock(mutex_);
  Entry& entry = entries_.at(id);
  if (entry.have[index]) return Status::Ok();  // another thread won the race
  std::memcpy(entry.data->data() + entry.manifest.chunk_offset(index), bytes.data(), bytes.size());
  entry.have[index] = true;
  --entry.missing;
  return Status::Ok();
}

Result<std::vector<uint32_t>> BlobStore::missing_chunks(const BlobId& id) const {
  std::lock_guard lock(mutex_);
  auto it = entries_.find(id);
  if (it == entries_.end()) {
    return Status::Error("missing chunks of blob " + short_blob_id(id) + ": no download begun");
  }
  std::vector<uint32_t> missing;
  missing.reserve(it->second.missing);
  for (uint32_t i = 0; i < it->second.have.size(); ++i) {
    if (!it->second.have[i]) missing.push_back(i);
  }
  return missing;
}

uint64_t BlobStore::used_bytes() const {
  std::lock_guard lock(mutex_);
  return used_;
}

}  // namespace tern::net
