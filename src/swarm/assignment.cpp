#include "swarm/assignment.h"

#include <algorithm>
#include <utility>

#include "core/check.h"
#include "core/hash.h"
#include "core/rng.h"

namespace tern::swarm {
namespace {

void append_u64le(uint8_t* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out[i] = static_cast<uint8_t>(value >> (8 * i));
}

}  // namespace

uint64_t total_batches(std::span<const BatchRange> ranges) {
  uint64_t total = 0;
  for (const BatchRange& r : ranges) total += r.size();
  return total;
}

uint64_t round_seed(uint64_t run_seed, uint64_t epoch, uint64_t round_in_epoch,
                    SeedPurpose purpose) {
  Blake2bHasher hasher;
  hasher.update(std::string_view("tern-swarm-round-seed-v1"));
  uint8_t fields[25];
  append_u64le(fields, run_seed);
  append_u64le(fields + 8, epoch);
  append_u64le(fields + 16, round_in_epoch);
  fields[24] = static_cast<uint8_t>(purpose);
  hasher.update(std::span<const uint8_t>(fields, sizeof(fields)));
  const Blake2bDigest digest = hasher.finish();
  uint64_t seed = 0;
  for (int i = 0; i < 8; ++i) seed |= static_cast<uint64_t>(digest[i]) << (8 * i);
  return seed;
}

void seeded_shuffle(std::vector<net::NodeId>& items, uint64_t seed) {
  Rng rng(seed);
  for (size_t i = items.size(); i > 1; --i) {
    const size_t j = static_cast<size_t>(rng.below(i));
    std::swap(items[i - 1], items[j]);
  }
}

std::vector<BatchRange> round_batch_list(std::span<const BatchRange> requeued, uint64_t cursor,
                                         uint64_t schedule_batches, uint64_t batches_per_round) {
  std::vector<BatchRange> pending(requeued.begin(), requeued.end());
  std::vector<BatchRange> list = take_lowest(pending, batches_per_round);
  const uint64_t have = total_batches(list);
  if (have < batches_per_round && cursor < schedule_batches) {
    const uint64_t fresh = std::min(batches_per_round - have, schedule_batches - cursor);
    // Appended, not merged: the list order is "re-queued first", which matters
    // for the position-based slicing.
    if (!list.empty() && list.back().end == cursor) {
      list.back().end += fresh;
    } else {
      list.push_back({cursor, cursor + fresh});
    }
  }
  return list;
}

std::vector<BatchRange> slice_batch_list(std::span<const BatchRange> list, uint64_t first,
                                         uint64_t last) {
  std::vector<BatchRange> out;
  uint64_t position = 0;  // list position of the current range's first batch
  for (const BatchRange& r : list) {
    const uint64_t lo = std::max(first, position);
    const uint64_t hi = std::min(last, position + r.size());
    if (lo < hi) out.push_back({r.begin + (lo - position), r.begin + (hi - position)});
    position += r.size();
    if (position >= last) break;
  }
  return out;
}

RoundPlan plan_round(uint64_t run_seed, uint64_t epoch, uint64_t round_in_epoch,
                     std::span<const net::NodeId> roster, std::span<const BatchRange> batch_list,
                     uint32_t witnesses_per_round) {
  TERN_CHECK(!roster.empty(), "plan_round: empty roster");
  for (size_t i = 1; i < roster.size(); ++i) {
    TERN_CHECK(roster[i - 1] < roster[i], "plan_round: roster not sorted/unique");
  }
  RoundPlan plan;
  plan.data_seed = round_seed(run_seed, epoch, round_in_epoch, SeedPurpose::kData);
  plan.witness_seed = round_seed(run_seed, epoch, round_in_epoch, SeedPurpose::kWitness);

  std::vector<net::NodeId> order(roster.begin(), roster.end());
  seeded_shuffle(order, plan.data_seed);
  const uint64_t n = order.size();
  const uint64_t b = total_batches(batch_list);
  plan.assignment.reserve(n);
  for (const net::NodeId& id : roster) plan.assignment.push_back({id, {}});
  for (uint64_t k = 0; k < n; ++k) {
    // Slot of order[k] in the sorted roster.
    const size_t slot = static_cast<size_t>(
        std::lower_bound(roster.begin(), roster.end(), order[k]) - roster.begin());
    // k*b fits easily: both are bounded by config limits far below 2^32.
    plan.assignment[slot].batches = slice_batch_list(batch_list, k * b / n, (k + 1) * b / n);
  }

  std::vector<net::NodeId> electorate(roster.begin(), roster.end());
  seeded_shuffle(electorate, plan.witness_seed);
  electorate.resize(std::min<size_t>(electorate.size(), witnesses_per_round));
  plan.witnesses = std::move(electorate);
  return plan;
}

std::vector<uint8_t> make_slot_bitmap(size_t roster_size, std::span<const size_t> slots) {
  std::vector<uint8_t> bitmap((roster_size + 7) / 8, 0);
  for (size_t slot : slots) {
    TERN_CHECK(slot < roster_size, "make_slot_bitmap: slot ", slot, " >= ", roster_size);
    bitmap[slot / 8] |= static_cast<uint8_t>(1u << (slot % 8));
  }
  return bitmap;
}

bool slot_bit(std::span<const uint8_t> bitmap, size_t slot) {
  if (slot / 8 >= bitmap.size()) return false;
  return (bitmap[slot / 8] >> (slot % 8)) & 1u;
}

void insert_range(std::vector<BatchRange>& set, BatchRange range) {
  if (range.size() == 0) return;
  // First range that ends at or after range.begin (touching ranges merge).
  auto it = std::lower_bound(set.begin(), set.end(), range.begin,
                             [](const BatchRange& r, uint64_t v) { return r.end < v; });
  auto last = it;
  while (last != set.end() && last->begin <= range.end) {
    range.begin = std::min(range.begin, last->begin);
    range.end = std::max(range.end, last->end);
    ++last;
  }
  it = set.erase(it, last);
  set.insert(it, range);
}

std::vector<BatchRange> take_lowest(std::vector<BatchRange>& set, uint64_t count) {
  std::vector<BatchRange> taken;
  size_t consumed = 0;
  while (count > 0 && consumed < set.size()) {
    BatchRange& r = set[consumed];
    if (r.size() <= count) {
      taken.push_back(r);
      count -= r.size();
      ++consumed;
    } else {
      taken.push_back({r.begin, r.begin + count});
      r.begin += count;
      count = 0;
    }
  }
  set.erase(set.begin(), set.begin() + static_cast<std::ptrdiff_t>(consumed));
  return taken;
}

bool ranges_overlap(std::span<const BatchRange> a, std::span<const BatchRange> b) {
  for (const BatchRange& x : a) {
    for (const BatchRange& y : b) {
      if (x.begin < y.end && y.begin < x.end) return true;
    }
  }
  return false;
}

}  // namespace tern::swarm
