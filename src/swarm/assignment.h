// Public, verifiable derivations of one swarm round: the round seeds, the
// round's batch list, which member trains which batches, and who witnesses.
// Every function here is a pure function of public coordinator state, so any
// client (or `tern ledger verify`) recomputes the coordinator's choices.
//
// Round seed (purpose p = 0 for data assignment, 1 for witness election):
//   digest = BLAKE2b-256("tern-swarm-round-seed-v1" || u64le(run_seed) ||
//                        u64le(epoch) || u64le(round_in_epoch) || u8(p))
//   seed   = u64le(digest[0..8))
// Seeded shuffle of a list x[0..n): rng = tern::Rng(seed) (xoshiro256** seeded
// through splitmix64, core/rng.h); for i = n-1 down to 1: j = rng.below(i+1),
// swap(x[i], x[j]) (Fisher-Yates). The roster is sorted by NodeId (bytewise)
// before shuffling.
//
// Round batch list: the re-queued batch ranges in ascending order (taken from
// the lowest id up), then fresh batches from the cursor, until the list holds
// batches_per_round batches or the schedule is exhausted.
//
// Data assignment: with B batches in the round list and the roster shuffled by
// the data seed into order m[0..n), member m[k] trains list positions
// [floor(k*B/n), floor((k+1)*B/n)), i.e. contiguous slices of the list (which
// may map to several id ranges when re-queued fragments are in the list). A
// member whose slice is empty does not train this round.
//
// Witness election: the roster shuffled by the witness seed; the first
// min(witnesses_per_round, n) members are the witnesses, in that order.
//
// Pure functions; thread-safe.
#pragma once

#include <compare>
#include <cstdint>
#include <span>
#include <vector>

#include "net/identity.h"

namespace tern::swarm {

// Half-open range of global batch ids [begin, end).
struct BatchRange {
  uint64_t begin = 0;
  uint64_t end = 0;

  uint64_t size() const { return end - begin; }
  auto operator<=>(const BatchRange&) const = default;
};

uint64_t total_batches(std::span<const BatchRange> ranges);

enum class SeedPurpose : uint8_t { kData = 0, kWitness = 1 };

uint64_t round_seed(uint64_t run_seed, uint64_t epoch, uint64_t round_in_epoch,
                    SeedPurpose purpose);

// Fisher-Yates shuffle with tern::Rng(seed), as documented above.
void seeded_shuffle(std::vector<net::NodeId>& items, uint64_t seed);

// The round's batch list from the re-queued ranges (sorted, disjoint), the
// fresh-batch cursor and the schedule size.
std::vector<BatchRange> round_batch_list(std::span<const BatchRange> requeued, uint64_t cursor,
                                         uint64_t schedule_batches, uint64_t batches_per_round);

// List positions [first, last) of `list`, as id ranges.
std::vector<BatchRange> slice_batch_list(std::span<const BatchRange> list, uint64_t first,
                                         uint64_t last);

struct MemberAssignment {
  net::NodeId member;
  std::vector<BatchRange> batches;  // empty: not a trainer this round

  bool operator==(const MemberAssignment&) const = default;
};

struct RoundPlan {
  uint64_t data_seed = 0;
  uint64_t witness_seed = 0;
  // One entry per roster member, in roster (sorted NodeId) order.
  std::vector<MemberAssignment> assignment;
  std::vector<net::NodeId> witnesses;  // election order

  bool operator==(const RoundPlan&) const = default;
};

// `roster` must be sorted and free of duplicates, and non-empty (CHECKed).
RoundPlan plan_round(uint64_t run_seed, uint64_t epoch, uint64_t round_in_epoch,
                     std::span<const net::NodeId> roster, std::span<const BatchRange> batch_list,
                     uint32_t witnesses_per_round);

// Witness attestations carry a bitmap over roster slots: bit i (byte i/8, bit
// i%8, least significant first) says slot i's update was received and
// verified. Length ceil(n/8) bytes; unused high bits are zero.
std::vector<uint8_t> make_slot_bitmap(size_t roster_size, std::span<const size_t> slots);
bool slot_bit(std::span<const uint8_t> bitmap, size_t slot);

// Interval-set helpers over sorted, disjoint, non-adjacent ranges.
void insert_range(std::vector<BatchRange>& set, BatchRange range);
// Removes the lowest `count` batches from `set` and returns them.
std::vector<BatchRange> take_lowest(std::vector<BatchRange>& set, uint64_t count);
bool ranges_overlap(std::span<const BatchRange> a, std::span<const BatchRange> b);

}  // namespace tern::swarm
