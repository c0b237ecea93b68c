// Fetching a blob by id from several untrusted holders at once.
//
// fetch_blob takes the manifest from the first holder whose manifest verifies
// against the id (a holder whose manifest lies is dropped), then requests the
// missing chunks with up to FetchOptions::parallel requests in flight, each
// sent to the least-loaded usable holder (ties broken round-robin), preferring
// holders that have not already failed that chunk. Every chunk is verified on
// arrival (BlobStore::put_chunk); a failed or corrupt chunk goes back to the
// queue for another holder. A holder with max_holder_failures failures is
// dropped for this fetch (logged). The fetch fails with a Status naming the
// blob and the number of chunks still missing when no usable holder remains
// or a chunk has been tried max_attempts times. Verified chunks stay in the
// store, so a later fetch resumes where this one stopped.
//
// Threading: fetch_blob and its workers run on the caller's executor, which
// must be single-threaded (an io_context run by one thread, or a strand).
// Given the same holder outcomes, the schedule is the same. The holders and
// the store must outlive the fetch. If the fetch is cancelled, it stops
// issuing requests, waits for those in flight, and returns an error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <asio/awaitable.hpp>

#include "core/status.h"
#include "net/blob.h"

namespace tern::net {

// One peer that may hold blobs: a remote node, or a fake in tests.
class BlobHolder {
 public:
  virtual ~BlobHolder() = default;
  virtual std::string name() const = 0;  // for logs
  virtual asio::awaitable<Result<BlobManifest>> get_manifest(const BlobId& id) = 0;
  virtual asio::awaitable<Result<Bytes>> get_chunk(const BlobId& id, uint32_t index) = 0;
};

struct FetchOptions {
  int parallel = 8;             // chunk requests in flight, over all holders
  int max_attempts = 5;         // requests per chunk before the fetch gives up
  int max_holder_failures = 3;  // failed or corrupt chunks before a holder is dropped
};

struct FetchReport {
  uint32_t chunk_count = 0;                 // chunks in the blob
  uint32_t chunks_already_present = 0;      // verified in the store before this fetch
  std::vector<uint32_t> chunks_per_holder;  // verified chunks served, indexed like `holders`
  uint32_t corrupt_chunks = 0;              // chunks that failed verification
  uint32_t failed_requests = 0;             // get_chunk calls that returned an error
  uint32_t retries = 0;                     // requests for a chunk after its first
  std::vector<size_t> dropped_holders;      // indices into `holders`, in drop order
  std::optional<size_t> manifest_from;      // holder index; empty if the store had it

  uint32_t chunks_fetched() const;
};

asio::awaitable<Result<FetchReport>> fetch_blob(const BlobId& id,
                                                std::span<BlobHolder* const> holders,
                                                BlobStore& store, const FetchOptions& options);

}  // namespace tern::net
