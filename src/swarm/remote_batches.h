// RemoteBatches: a member's view of the training data when the run reads it
// from a data provider ([data] provider; data_provider.h) instead of local
// shards.
//
// open() downloads the provider manifest, checks its hash against
// [data] provider_hash and its shape against the run, and fetches the chunks
// of the fixed validation windows. The data then looks like a TokenDataset of
// the full size, backed by lazily committed anonymous memory: only fetched
// chunks occupy memory, and fetch_batches() brings in (and checks against the
// manifest's digests) the chunks of the batches a round assigns to this
// member, authorised by the coordinator's signed Status of that round. Token
// values are range-checked on arrival, so the dataset stays valid.
// Chunks of earlier rounds are dropped once more than kResidentTrainBytes
// of training data is held.
//
// Errors (unreachable provider, refused grant, a chunk whose digest differs)
// are Status values naming the provider, the file and the chunk; the HTTP
// client times out rather than hangs.
//
// Thread-safety: none; one thread at a time (the member's worker thread, which
// also reads dataset()).
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "core/status.h"
#include "data/token_dataset.h"
#include "net/broadcast.h"
#include "net/identity.h"
#include "swarm/assignment.h"
#include "swarm/run_config.h"

namespace tern::swarm {

inline constexpr uint64_t kResidentTrainBytes = 256u << 20;

class RemoteBatches {
 public:
  // eval_windows: the number of fixed validation windows the member evaluates
  // (eval batches * sequences per batch).
  static Result<std::unique_ptr<RemoteBatches>> open(const RunConfig& config,
                                                     const net::Identity& identity,
                                                     int64_t eval_windows);
  ~RemoteBatches();

  const TokenDataset& dataset() const;
  // Fetches every chunk that the windows of `batches` touch and that is not
  // held yet. `status` is the coordinator's signed Status of a round in which
  // the batches are this member's (or of the round before, for batches the
  // next round is predicted to assign).
  Status fetch_batches(std::span<const BatchRange> batches, const net::SignedMessage& status);
  // Bytes received from the provider (chunk payloads, grants and the
  // manifest). Unlike the rest, safe to call from any thread (a meter).
  uint64_t bytes_received() const;

  class Impl;

 private:
  explicit RemoteBatches(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::swarm
