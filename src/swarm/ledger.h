// The coordinator's ledger: every accepted event, persisted to SQLite before
// the server acts on it, hash-chained and signed by the coordinator, so a
// coordinator killed with -9 restarts from the file (replay()) and anyone can
// check the run from the file alone (verify_ledger, `tern ledger verify`).
//
// File (SQLite, journal_mode=WAL, synchronous=FULL: a committed entry survives
// a crash of the process or the machine):
//   meta    one row: format_version (1), coordinator (32-byte Ed25519 key),
//           config (event_codec.h encoding), created_ms (wall clock, not
//           hashed), meta_signature (Ed25519 of the genesis hash)
//   entries seq (0, 1, 2, ...), event (event_codec.h encoding), snapshot_hash
//           (Snapshot::hash() after applying the event), prev_hash, entry_hash,
//           signature (Ed25519 of entry_hash by the coordinator)
// Hashes (BLAKE2b-256, integers u64 little-endian):
//   genesis    = H("tern-ledger-genesis-v1" || u64 format_version ||
//                  coordinator || u64 len(config) || config)
//   entry_hash = H("tern-ledger-entry-v1" || u64 seq || prev_hash ||
//                  u64 len(event) || event || snapshot_hash)
//   prev_hash of entry 0 is the genesis hash, of entry n the entry_hash of n-1.
// So the config and coordinator key are bound into the chain: changing either
// breaks entry 0 (and the meta signature).
//
// Verification replays the log through a fresh Coordinator built from the
// stored config and checks, per entry in order: the seq is the next one, the
// prev_hash links, the entry_hash matches the row, the signature verifies,
// the event decodes, the Coordinator accepts it and the resulting snapshot
// hash equals the stored one. The first entry that fails is reported; a log
// cut short (a prefix) verifies with fewer entries.
//
// Thread-safety: a Ledger is one SQLite connection, not synchronized; one
// owner drives it, and one Ledger writes a file at a time (a second writer's
// append fails instead of forking the chain). verify_ledger is thread-safe
// and opens the file read-only.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "core/hash.h"
#include "core/status.h"
#include "net/identity.h"
#include "swarm/coordinator.h"

struct sqlite3;

namespace tern::swarm {

inline constexpr uint64_t kLedgerFormatVersion = 1;

class Ledger {
 public:
  // Creates a new ledger file; refuses a path that already exists.
  static Result<Ledger> create(const std::string& path, const net::Identity& coordinator,
                               const CoordinatorConfig& config);
  // Opens an existing ledger for appending; the stored coordinator key must
  // be `coordinator`'s. Reads the meta row and the last entry (the tail);
  // replay() checks the whole log.
  static Result<Ledger> open(const std::string& path, const net::Identity& coordinator);

  Ledger(Ledger&&) noexcept;
  Ledger& operator=(Ledger&&) noexcept;
  ~Ledger();

  // Persists one accepted event and the snapshot after applying it, in one
  // transaction; returns once it is durable. `snapshot.event_count` must be
  // size() + 1 (CHECK: the caller appends every accepted event, in order).
  // On error nothing is written and the ledger is unchanged, but the caller's
  // Coordinator is now ahead of the log: it must not act on the event (stop,
  // and restart from replay()).
  Status append(const Event& event, const Snapshot& snapshot);

  // A Coordinator rebuilt by replaying and verifying the whole log; an error
  // names the first entry that does not reproduce.
  Result<Coordinator> replay() const;

  uint64_t size() const { return next_seq_; }  // number of entries
  const Blake2bDigest& last_hash() const { return last_hash_; }
  const CoordinatorConfig& config() const { return config_; }
  const std::string& path() const { return path_; }

 private:
  struct Db;
  Ledger(std::string path, std::unique_ptr<Db> db, net::Identity coordinator,
         CoordinatorConfig config);

  std::string path_;
  std::unique_ptr<Db> db_;
  net::Identity coordinator_;
  CoordinatorConfig config_;
  uint64_t next_seq_ = 0;
  Blake2bDigest last_hash_{};
};

struct VerifyOptions {
  // If set, the ledger must be signed by this key (otherwise any key in meta
  // is taken as the coordinator's).
  std::optional<net::NodeId> coordinator;
};

struct VerifyReport {
  bool ok = false;
  uint64_t entries = 0;            // entries that verified (all of them when ok)
  std::optional<uint64_t> failed;  // seq of the first failing entry
  std::string reason;              // why it failed (empty when ok)
  net::NodeId coordinator;         // the key in meta
  // State after the last verified entry.
  State state = State::kWaitingForMembers;
  uint64_t epoch = 0;
  uint64_t step = 0;
  Blake2bDigest snapshot_hash{};
};

// Checks a ledger file from the file alone (see above). A Status error means
// the file cannot be checked at all (missing, not SQLite, no or bad meta row,
// wrong coordinator); a failing entry is a report with ok = false.
Result<VerifyReport> verify_ledger(const std::string& path, const VerifyOptions& options = {});

}  // namespace tern::swarm
