// Blob ids, manifests and BlobStore: the id follows the spec, bad manifests
// and chunks are refused by name, partial downloads complete and resume.
#include "net/blob.h"

#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "core/rng.h"

namespace tern::net {
namespace {

Bytes random_blob(size_t size, uint64_t seed) {
  Rng rng(seed);
  Bytes out(size);
  for (uint8_t& byte : out) byte = static_cast<uint8_t>(rng.next_u64());
  return out;
}

Blake2bDigest hash_of(std::span<const uint8_t> bytes) {
  Blake2bHasher hasher;
  hasher.update(bytes);
  return hasher.finish();
}

bool contains(const Status& status, const std::string& needle) {
  return status.message().find(needle) != std::string::npos;
}

TEST(blob_store, IdFollowsTheSpec) {
  const Bytes data = random_blob(2 * 4096 + 100, 1);
  const BlobManifest manifest = make_manifest(data, 4096);
  ASSERT_EQ(manifest.chunk_count(), 3u);
  EXPECT_EQ(manifest.size, data.size());
  EXPECT_EQ(manifest.chunk_hashes[0], hash_of(std::span(data).subspan(0, 4096)));
  EXPECT_EQ(manifest.chunk_hashes[2], hash_of(std::span(data).subspan(8192)));
  EXPECT_EQ(manifest.chunk_length(2), 100u);
  EXPECT_EQ(manifest.chunk_offset(2), 8192u);

  // Spelled out: domain, u64 LE size, u32 LE chunk size, chunk hashes.
  Blake2bHasher root;
  root.update(std::string_view("tern-blob-v1"));
  const uint8_t header[12] = {0x64, 0x20, 0, 0, 0, 0, 0, 0, 0x00, 0x10, 0, 0};  // 8292, 4096
  root.update(std::span<const uint8_t>(header, 12));
  for (const auto& hash : manifest.chunk_hashes) root.update(hash);
  EXPECT_EQ(manifest.id, root.finish());
}

TEST(blob_store, EmptyBlobHasNoChunks) {
  const BlobManifest manifest = make_manifest({}, kDefaultChunkSize);
  EXPECT_EQ(manifest.chunk_count(), 0u);
  Blake2bHasher root;
  root.update(std::string_view("tern-blob-v1"));
  const uint8_t header[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0};  // size 0, 1 MiB
  root.update(std::span<const uint8_t>(header, 12));
  EXPECT_EQ(manifest.id, root.finish());

  BlobStore store;
  Result<BlobId> id = store.put({});
  ASSERT_TRUE(id.ok());
  EXPECT_EQ(id.value(), manifest.id);
  EXPECT_TRUE(store.has(manifest.id));
  EXPECT_TRUE(store.get(manifest.id).value()->empty());
  // A download of it completes at begin().
  BlobStore other;
  ASSERT_TRUE(other.begin(manifest).ok());
  EXPECT_TRUE(other.has(manifest.id));
  EXPECT_TRUE(other.missing_chunks(manifest.id).value().empty());
}

TEST(blob_store, ChunkSizeMustBeAPowerOfTwoInRange) {
  EXPECT_TRUE(check_chunk_size(4096).ok());
  EXPECT_TRUE(check_chunk_size(1u << 24).ok());
  for (uint32_t bad : {0u, 2048u, 5000u, 1u << 25, 3u << 20}) {
    Status status = check_chunk_size(bad);
    EXPECT_FALSE(status.ok());
    EXPECT_TRUE(contains(status, std::to_string(bad))) << status.message();
  }
}

TEST(blob_store, PutServesBlobManifestAndChunks) {
  const Bytes data = random_blob(3 * 4096 + 1, 2);
  BlobStore store(std::nullopt, 4096);
  Result<BlobId> id = store.put(data);
  ASSERT_TRUE(id.ok());
  EXPECT_TRUE(store.has(id.value()));
  EXPECT_EQ(*store.get(id.value()).value(), data);
  EXPECT_EQ(store.manifest(id.value()).value(), make_manifest(data, 4096));
  EXPECT_EQ(store.chunk(id.value(), 3).value(), Bytes{data.back()});
  EXPECT_EQ(store.chunk(id.value(), 1).value(), Bytes(data.begin() + 4096, data.begin() + 8192));
  EXPECT_EQ(store.used_bytes(), data.size());
  ASSERT_TRUE(store.put(data).ok());  // idempotent
  EXPECT_EQ(store.used_bytes(), data.size());

  BlobId unknown{};
  unknown[0] = 0xab;
  EXPECT_TRUE(contains(store.get(unknown).status(), "get blob ab0000000000: not held"));
  EXPECT_TRUE(contains(store.manifest(unknown).status(), "not held"));
  EXPECT_TRUE(contains(store.chunk(unknown, 0).status(), "chunk 0 of blob ab0000000000"));
  EXPECT_TRUE(contains(store.chunk(id.value(), 4).status(), "blob has 4 chunks"));
  EXPECT_FALSE(store.has(unknown));
}

TEST(blob_store, VerifyManifestRefusesEveryLie) {
  const Bytes data = random_blob(5 * 4096, 3);
  const BlobManifest good = make_manifest(data, 4096);
  ASSERT_TRUE(verify_manifest(good.id, good).ok());

  BlobManifest tampered = good;
  tampered.chunk_hashes[3][0] ^= 1;
  EXPECT_TRUE(contains(verify_manifest(good.id, tampered).status(), "chunk hashes give id"));

  BlobManifest other_id = good;
  other_id.id[0] ^= 1;
  EXPECT_TRUE(contains(verify_manifest(good.id, other_id).status(), "manifest names blob"));

  BlobManifest short_list = good;
  short_list.chunk_hashes.pop_back();
  EXPECT_TRUE(contains(verify_manifest(good.id, short_list).status(),
                       "4 chunk hashes for size 20480 (expected 5)"));

  BlobManifest bad_size = good;
  bad_size.size += 1;
  EXPECT_TRUE(contains(verify_manifest(good.id, bad_size).status(), "(expected 6)"));

  BlobManifest same_count_other_size = good;
  same_count_other_size.size -= 1;  // still 5 chunks, but the id commits to the size
  EXPECT_TRUE(
      contains(verify_manifest(good.id, same_count_other_size).status(), "chunk hashes give id"));

  BlobManifest bad_chunk_size = good;
  bad_chunk_size.chunk_size = 4000;
  EXPECT_TRUE(contains(verify_manifest(good.id, bad_chunk_size).status(), "chunk size 4000"));

  // begin() refuses what verify refuses, and leaves no state behind.
  BlobStore store;
  EXPECT_FALSE(store.begin(tampered).ok());
  EXPECT_FALSE(store.missing_chunks(good.id).ok());
  EXPECT_EQ(store.used_bytes(), 0u);
}

TEST(blob_store, PartialDownloadCompletesInAnyOrder) {
  const Bytes data = random_blob(7 * 4096 + 123, 4);
  const BlobManifest manifest = make_manifest(data, 4096);
  BlobStore source(std::nullopt, 4096);
  ASSERT_TRUE(source.put(data).ok());

  BlobStore store;
  ASSERT_TRUE(store.begin(manifest).ok());
  ASSERT_TRUE(store.begin(manifest).ok());  // resuming is a no-op
  EXPECT_EQ(store.used_bytes(), data.size());
  EXPECT_EQ(store.missing_chunks(manifest.id).value().size(), 8u);
  const uint32_t order[] = {7, 2, 0, 5, 1, 6, 3, 4};
  for (size_t i = 0; i < 8; ++i) {
    EXPECT_FALSE(store.has(manifest.id));
    EXPECT_FALSE(store.get(manifest.id).ok());
    const Bytes chunk = source.chunk(manifest.id, order[i]).value();
    ASSERT_TRUE(store.put_chunk(manifest.id, order[i], chunk).ok());
    ASSERT_TRUE(store.put_chunk(manifest.id, order[i], chunk).ok());  // duplicate: fine
    // A partial download serves the chunks it has verified.
    EXPECT_EQ(store.chunk(manifest.id, order[i]).value(), chunk);
    EXPECT_EQ(store.missing_chunks(manifest.id).value().size(), 7 - i);
  }
  EXPECT_TRUE(store.has(manifest.id));
  EXPECT_EQ(*store.get(manifest.id).value(), data);
  EXPECT_EQ(store.used_bytes(), data.size());
}

TEST(blob_store, BadChunksAreRefusedByName) {
  const Bytes data = random_blob(3 * 4096, 5);
  const BlobManifest manifest = make_manifest(data, 4096);
  const std::string blob = short_blob_id(manifest.id);
  BlobStore store;

  Bytes chunk1(data.begin() + 4096, data.begin() + 8192);
  EXPECT_TRUE(contains(store.put_chunk(manifest.id, 1, chunk1),
                       "put chunk 1 of blob " + blob + ": no download in progress"));
  ASSERT_TRUE(store.begin(manifest).ok());

  Bytes corrupt = chunk1;
  corrupt[100] ^= 0x40;
  Status status = store.put_chunk(manifest.id, 1, corrupt);
  ASSERT_FALSE(status.ok());
  EXPECT_TRUE(contains(status, "put chunk 1 of blob " + blob)) << status.message();
  EXPECT_TRUE(contains(status, "expected " + to_hex(manifest.chunk_hashes[1]).substr(0, 16)))
      << status.message();
  EXPECT_TRUE(contains(status, "got " + to_hex(hash_of(corrupt)).substr(0, 16)))
      << status.message();

  EXPECT_TRUE(contains(store.put_chunk(manifest.id, 1, Bytes(4095)), "4095 bytes (expected 4096)"));
  EXPECT_TRUE(
      contains(store.put_chunk(manifest.id, 3, chunk1), "index out of range (blob has 3 chunks)"));
  EXPECT_EQ(store.missing_chunks(manifest.id).value(), (std::vector<uint32_t>{0, 1, 2}));
  EXPECT_TRUE(contains(store.chunk(manifest.id, 1).status(), "chunk not held yet"));
  EXPECT_TRUE(store.put_chunk(manifest.id, 1, chunk1).ok());
  EXPECT_EQ(store.missing_chunks(manifest.id).value(), (std::vector<uint32_t>{0, 2}));
}

TEST(blob_store, CapacityBoundsPutAndBegin) {
  const Bytes a = random_blob(10000, 6);
  const Bytes b = random_blob(7000, 7);
  BlobStore store(16000, 4096);
  ASSERT_TRUE(store.put(a).ok());
  Result<BlobId> too_much = store.put(b);
  ASSERT_FALSE(too_much.ok());
  EXPECT_TRUE(contains(too_much.status(),
                       "7000 bytes exceed the store's free capacity (10000 of "
                       "16000 bytes used)"))
      << too_much.status().message();
  EXPECT_TRUE(contains(store.begin(make_manifest(b, 4096)), "begin download of blob"));
  EXPECT_EQ(store.used_bytes(), 10000u);
  EXPECT_TRUE(store.put(random_blob(6000, 8)).ok());  // exactly full
  EXPECT_EQ(store.used_bytes(), 16000u);
  EXPECT_FALSE(store.put(Bytes{1}).ok());
  EXPECT_TRUE(store.put({}).ok());  // empty blobs take nothing
}

TEST(blob_store, EraseFreesCompleteAndPartialBlobs) {
  const Bytes a = random_blob(10000, 10);
  const Bytes b = random_blob(3 * 4096, 11);
  const BlobManifest partial = make_manifest(b, 4096);
  BlobStore store(16000, 4096);
  const BlobId id = store.put(a).value();
  const std::shared_ptr<const Bytes> held = store.get(id).value();
  EXPECT_TRUE(store.erase(id));
  EXPECT_FALSE(store.erase(id));
  EXPECT_FALSE(store.has(id));
  EXPECT_EQ(*held, a);  // a reader's copy outlives the entry
  EXPECT_EQ(store.used_bytes(), 0u);
  ASSERT_TRUE(store.begin(partial).ok());
  ASSERT_TRUE(store.put_chunk(partial.id, 0, Bytes(b.begin(), b.begin() + 4096)).ok());
  EXPECT_TRUE(store.erase(partial.id));
  EXPECT_EQ(store.used_bytes(), 0u);
  // The download in progress now fails by name instead of writing anywhere.
  EXPECT_TRUE(contains(store.put_chunk(partial.id, 1, Bytes(b.begin() + 4096, b.begin() + 8192)),
                       "no download in progress"));
  EXPECT_TRUE(store.put(a).ok());  // the freed capacity is usable again
}

TEST(blob_store, PutCompletesAPartialDownload) {
  const Bytes data = random_blob(2 * 4096, 9);
  const BlobManifest manifest = make_manifest(data, 4096);
  BlobStore store(std::nullopt, 4096);
  ASSERT_TRUE(store.begin(manifest).ok());
  ASSERT_TRUE(store.put(data).ok());
  EXPECT_TRUE(store.has(manifest.id));
  EXPECT_TRUE(store.missing_chunks(manifest.id).value().empty());
  EXPECT_EQ(store.used_bytes(), data.size());
}

TEST(blob_store, ConcurrentPutChunkFromThreads) {
  const Bytes data = random_blob(64 * 4096, 10);
  const BlobManifest manifest = make_manifest(data, 4096);
  BlobStore store;
  ASSERT_TRUE(store.begin(manifest).ok());
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      // Every thread offers every chunk (overlapping), some corrupt.
      for (uint32_t i = 0; i < manifest.chunk_count(); ++i) {
        const uint32_t index = (i + 16 * t) % manifest.chunk_count();
        Bytes chunk(data.begin() + index * 4096, data.begin() + (index + 1) * 4096);
        if ((index + t) % 5 == 0) {
          chunk[0] ^= 1;
          EXPECT_FALSE(store.put_chunk(manifest.id, index, chunk).ok());
        } else {
          EXPECT_TRUE(store.put_chunk(manifest.id, index, chunk).ok());
        }
        (void)store.missing_chunks(manifest.id);
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_TRUE(store.has(manifest.id));
  EXPECT_EQ(*store.get(manifest.id).value(), data);
}

}  // namespace
}  // namespace tern::net
