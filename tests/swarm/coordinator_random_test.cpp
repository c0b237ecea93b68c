// Drives thousands of seeded random event sequences (valid and invalid) through
// the coordinator and checks its invariants after every event, then replays
// each accepted-event log and compares the snapshot hash at every step.
#include <gtest/gtest.h>

#include <algorithm>

#include "core/rng.h"
#include "swarm/coordinator.h"
#include "swarm/swarm_test_util.h"

namespace tern::swarm {
namespace {

using testing::node;
using testing::weights;

constexpr int kPool = 8;  // candidate node ids 1..kPool

CoordinatorConfig random_config(Rng& rng) {
  CoordinatorConfig c;
  c.run_seed = rng.next_u64();
  c.min_members = 1 + static_cast<uint32_t>(rng.below(3));
  c.max_members = c.min_members + static_cast<uint32_t>(rng.below(4));
  c.witnesses_per_round = 1 + static_cast<uint32_t>(rng.below(4));
  c.warmup_ms = 1 + rng.below(200);
  c.round_train_ms = 1 + rng.below(800);
  c.round_witness_ms = 1 + rng.below(400);
  c.cooldown_ms = 1 + rng.below(200);
  c.rounds_per_epoch = 1 + static_cast<uint32_t>(rng.below(3));
  c.epochs = 1 + static_cast<uint32_t>(rng.below(3));
  c.batches_per_round = 1 + static_cast<uint32_t>(rng.below(7));
  if (rng.below(4) == 0) {
    std::vector<net::NodeId> allow;
    for (int i = 1; i <= kPool; ++i) {
      if (rng.below(3) != 0) allow.push_back(node(i));
    }
    if (allow.empty()) allow.push_back(node(1));
    c.allowlist = allow;
  }
  return c;
}

// One random event: mostly plausible ones so that runs make progress.
Event random_event(Rng& rng, const Coordinator& c, uint64_t& now) {
  if (rng.below(40) == 0) return Tick{now > 0 ? now - 1 : 0};  // may go backwards
  now += rng.below(4) == 0 ? rng.below(600) : rng.below(3);
  const RoundState* r = c.current_round();
  const uint64_t pick = rng.below(100);
  if (pick < 10) return Join{now, node(1 + static_cast<int>(rng.below(kPool)))};
  if (pick < 14) return Leave{now, node(1 + static_cast<int>(rng.below(kPool)))};
  if (pick < 17) return Pause{now};
  if (pick < 22) return Resume{now};
  if (pick < 45 && r != nullptr) {
    const size_t slot = rng.below(r->roster.size());
    TrainDone e{now, r->roster[slot], r->round, r->plan.assignment[slot].batches,
                testing::update_hash_of(r->roster[slot], r->round)};
    switch (rng.below(8)) {
      case 0:
        e.round += 1;
        break;
      case 1:
        e.batches = r->plan.assignment[(slot + 1) % r->roster.size()].batches;
        break;
      case 2:
        e.member = node(1 + static_cast<int>(rng.below(kPool)));
        break;
      default:
        break;
    }
    return e;
  }
  if (pick < 70 && r != nullptr) {
    const size_t w = rng.below(r->roster.size());
    std::vector<size_t> slots;
    for (size_t i = 0; i < r->roster.size(); ++i) {
      // Mostly honest: attest what was delivered; sometimes miss or invent.
      const bool delivered = r->trainers[i].done;
      const bool flip = rng.below(10) == 0;
      if (delivered != flip && !r->plan.assignment[i].batches.empty()) slots.push_back(i);
    }
    Attest e{now, r->roster[w], r->round, make_slot_bitmap(r->roster.size(), slots),
             weights(rng.below(6) == 0 ? 2 : 1)};
    if (rng.below(10) == 0) e.received.push_back(0);
    return e;
  }
  return Tick{now};
}

void check_invariants(const Coordinator& c, const Snapshot& prev) {
  const Snapshot& s = c.snapshot();
  const CoordinatorConfig& cfg = c.config();
  ASSERT_LE(s.members.size(), cfg.max_members);
  ASSERT_TRUE(std::is_sorted(s.members.begin(), s.members.end()));
  ASSERT_EQ(std::adjacent_find(s.members.begin(), s.members.end()), s.members.end());
  for (const auto& p : s.pending_joins) {
    ASSERT_EQ(std::count(s.members.begin(), s.members.end(), p), 0);
    ASSERT_EQ(std::count(s.pending_joins.begin(), s.pending_joins.end(), p), 1);
  }
  ASSERT_LE(s.pending_joins.size(), cfg.max_members);
  if (cfg.allowlist) {
    for (const auto& m : s.members) {
      ASSERT_TRUE(std::count(cfg.allowlist->begin(), cfg.allowlist->end(), m));
    }
  }
  // Monotonic counters.
  ASSERT_GE(s.step, prev.step);
  ASSERT_GE(s.epoch, prev.epoch);
  ASSERT_GE(s.now_ms, prev.now_ms);
  ASSERT_GE(s.next_round, prev.next_round);
  ASSERT_LE(s.step, c.round_results().size());
  // Round presence matches the state.
  const State effective = s.state == State::kPaused ? s.paused_from : s.state;
  const bool in_round_state = effective == State::kRoundTrain || effective == State::kRoundWitness;
  ASSERT_EQ(s.in_round, in_round_state) << state_name(s.state);
  // Batches: done, re-queued, in flight and not yet issued partition the schedule.
  const uint64_t schedule = cfg.schedule_batches();
  ASSERT_LE(s.cursor, schedule);
  ASSERT_FALSE(ranges_overlap(s.done, s.requeued));
  uint64_t in_flight = 0;
  if (s.in_round) {
    const RoundState& r = s.round;
    ASSERT_FALSE(ranges_overlap(r.batch_list, s.done));
    ASSERT_FALSE(ranges_overlap(r.batch_list, s.requeued));
    in_flight = total_batches(r.batch_list);
    ASSERT_LE(in_flight, cfg.batches_per_round);
    ASSERT_GT(in_flight, 0u);
    // The assignment partitions the round's batch list.
    std::vector<BatchRange> covered;
    uint64_t assigned = 0;
    for (const auto& a : r.plan.assignment) {
      ASSERT_FALSE(ranges_overlap(covered, a.batches));
      for (auto b : a.batches) insert_range(covered, b);
      assigned += total_batches(a.batches);
    }
    ASSERT_EQ(assigned, in_flight);
    std::vector<BatchRange> list_set;
    for (auto b : r.batch_list) insert_range(list_set, b);
    ASSERT_EQ(covered, list_set);
    ASSERT_EQ(r.plan.witnesses.size(), std::min<size_t>(cfg.witnesses_per_round, r.roster.size()));
  }
  const std::vector<BatchRange> fresh = {{s.cursor, schedule}};
  ASSERT_FALSE(ranges_overlap(fresh, s.done));
  ASSERT_FALSE(ranges_overlap(fresh, s.requeued));
  ASSERT_EQ(total_batches(s.done) + total_batches(s.requeued) + in_flight + (schedule - s.cursor),
            schedule);
  if (s.state == State::kFinished) {
    ASSERT_EQ(total_batches(s.done), schedule);
  }
}

TEST(swarm_coordinator_random, InvariantsAndReplayOverSeededSequences) {
#if defined(__SANITIZE_ADDRESS__)
  constexpr int kSequences = 600;  // ~3 s under ASan+UBSan
#else
  constexpr int kSequences = 2000;  // ~1.3 s in release
#endif
  constexpr int kEvents = 160;
  int finished = 0;
  int accepted_events = 0;
  int rejected_events = 0;
  for (int seq = 0; seq < kSequences; ++seq) {
    Rng rng(derive_seed(1234, "swarm-random-" + std::to_string(seq)));
    const CoordinatorConfig config = random_config(rng);
    auto created = Coordinator::create(config);
    ASSERT_TRUE(created.ok()) << created.status().message();
    Coordinator c = std::move(created).value();
    std::vector<Blake2bDigest> hashes;  // after each accepted event
    uint64_t now = 0;
    for (int i = 0; i < kEvents; ++i) {
      const Event e = random_event(rng, c, now);
      const Snapshot before = c.snapshot();
      const Status s = c.apply(e);
      if (s.ok()) {
        ++accepted_events;
        hashes.push_back(c.snapshot().hash());
      } else {
        ++rejected_events;
        ASSERT_FALSE(s.message().empty());
        ASSERT_EQ(c.snapshot(), before) << "rejected event changed state: " << s.message();
      }
      check_invariants(c, before);
      if (::testing::Test::HasFatalFailure()) {
        FAIL() << "sequence " << seq << " event " << i;
      }
    }
    finished += c.state() == State::kFinished ? 1 : 0;
    // Replay the accepted log: same snapshot hash after every event.
    Coordinator replay = std::move(Coordinator::create(config)).value();
    ASSERT_EQ(c.events().size(), hashes.size());
    for (size_t i = 0; i < c.events().size(); ++i) {
      const Status s = replay.apply(c.events()[i]);
      ASSERT_TRUE(s.ok()) << "sequence " << seq << " replay " << i << ": " << s.message();
      ASSERT_EQ(replay.snapshot().hash(), hashes[i]) << "sequence " << seq << " event " << i;
    }
    ASSERT_EQ(replay.transitions(), c.transitions());
    ASSERT_EQ(replay.round_results(), c.round_results());
  }
  // The generator must actually exercise the machine.
  EXPECT_GT(finished, kSequences / 20);
  EXPECT_GT(rejected_events, kSequences * 10);
  EXPECT_GT(accepted_events, kSequences * 50);
}

}  // namespace
}  // namespace tern::swarm
