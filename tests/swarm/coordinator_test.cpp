#include "swarm/coordinator.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "swarm/swarm_test_util.h"

namespace tern::swarm {
namespace {

using testing::attest_all;
using testing::node;
using testing::train_all;
using testing::weights;

CoordinatorConfig base_config() {
  CoordinatorConfig c;
  c.run_seed = 42;
  c.min_members = 4;
  c.max_members = 8;
  c.witnesses_per_round = 3;
  c.warmup_ms = 100;
  c.round_train_ms = 1000;
  c.round_witness_ms = 500;
  c.cooldown_ms = 200;
  c.rounds_per_epoch = 3;
  c.epochs = 3;
  c.batches_per_round = 8;
  return c;
}

Coordinator make(const CoordinatorConfig& config) {
  auto c = Coordinator::create(config);
  TERN_CHECK(c.ok(), c.status().message());
  return std::move(c).value();
}

void expect_ok(Status s) {
  EXPECT_TRUE(s.ok()) << s.message();
}

// The event is rejected with a message containing `what`, and nothing changes.
void expect_rejected(Coordinator& c, const Event& e, const std::string& what) {
  const Snapshot before = c.snapshot();
  const size_t events = c.events().size();
  Status s = c.apply(e);
  ASSERT_FALSE(s.ok()) << "accepted; expected: " << what;
  EXPECT_NE(s.message().find(what), std::string::npos) << s.message();
  EXPECT_EQ(c.snapshot(), before);
  EXPECT_EQ(c.events().size(), events);
}

// Ticks to the current phase deadline.
void tick_to_deadline(Coordinator& c, uint64_t& now) {
  now = std::max(now, c.snapshot().deadline_ms);
  expect_ok(c.apply(Tick{now}));
}

void join_all(Coordinator& c, uint64_t& now, int first, int count) {
  for (int i = first; i < first + count; ++i) expect_ok(c.apply(Join{now++, node(i)}));
}

// One full honest round from RoundTrain.
void honest_round(Coordinator& c, uint64_t& now) {
  ASSERT_EQ(c.state(), State::kRoundTrain);
  train_all(c, now);
  ASSERT_EQ(c.state(), State::kRoundWitness);
  attest_all(c, now);
}

// Every accepted update over the run, checked to be disjoint; returns the union.
std::vector<BatchRange> accepted_union(const Coordinator& c) {
  std::vector<BatchRange> all;
  for (const RoundResult& r : c.round_results()) {
    for (const AcceptedUpdate& u : r.accepted) {
      EXPECT_FALSE(ranges_overlap(all, u.batches)) << "batch trained twice, round " << r.round;
      for (auto b : u.batches) insert_range(all, b);
    }
  }
  return all;
}

TEST(swarm_coordinator, HappyPathFourMembersThreeEpochs) {
  Coordinator c = make(base_config());
  uint64_t now = 0;
  EXPECT_EQ(c.state(), State::kWaitingForMembers);
  join_all(c, now, 1, 3);
  EXPECT_EQ(c.state(), State::kWaitingForMembers);
  join_all(c, now, 4, 1);
  EXPECT_EQ(c.state(), State::kWarmup);
  EXPECT_EQ(c.members().size(), 4u);
  for (uint64_t epoch = 0; epoch < 3; ++epoch) {
    ASSERT_EQ(c.state(), State::kWarmup);
    EXPECT_EQ(c.epoch(), epoch);
    tick_to_deadline(c, now);
    for (int r = 0; r < 3; ++r) {
      EXPECT_EQ(c.current_round()->round_in_epoch, static_cast<uint64_t>(r));
      const uint64_t step = c.step();
      honest_round(c, now);
      EXPECT_EQ(c.step(), step + 1);
    }
    ASSERT_EQ(c.state(), State::kCooldown);
    tick_to_deadline(c, now);
  }
  EXPECT_EQ(c.state(), State::kFinished);
  EXPECT_EQ(c.step(), 9u);
  EXPECT_EQ(c.trained_batches(), c.config().schedule_batches());
  EXPECT_EQ(accepted_union(c), (std::vector<BatchRange>{{0, 72}}));
  EXPECT_TRUE(c.dropped().empty());
  EXPECT_TRUE(c.evidence().empty());
  // Accepted updates come in canonical (batch id) order with 2 batches each.
  for (const RoundResult& r : c.round_results()) {
    ASSERT_EQ(r.accepted.size(), 4u);
    for (size_t i = 1; i < r.accepted.size(); ++i) {
      EXPECT_LT(r.accepted[i - 1].batches.front().begin, r.accepted[i].batches.front().begin);
    }
  }
  // Transition log: first and last entries, and each names its causing event.
  const auto& t = c.transitions();
  ASSERT_FALSE(t.empty());
  EXPECT_EQ(t.front().to, State::kWarmup);
  EXPECT_EQ(t.front().reason, TransitionReason::kEnoughMembers);
  EXPECT_EQ(t.back().to, State::kFinished);
  for (const Transition& x : t) EXPECT_LT(x.event_seq, c.events().size());
  EXPECT_TRUE(std::holds_alternative<Join>(c.events()[t.front().event_seq]));
  // Only Tick is accepted once finished.
  expect_ok(c.apply(Tick{now + 1}));
  expect_rejected(c, Join{now + 2, node(9)}, "run finished");
  expect_rejected(c, Pause{now + 2}, "pause: state is Finished");
}

TEST(swarm_coordinator, ReplayReproducesEverySnapshot) {
  Coordinator c = make(base_config());
  uint64_t now = 0;
  join_all(c, now, 1, 4);
  tick_to_deadline(c, now);
  honest_round(c, now);
  train_all(c, now, {c.current_round()->roster[0]});
  tick_to_deadline(c, now);
  attest_all(c, now);
  Coordinator replay = make(base_config());
  for (size_t i = 0; i < c.events().size(); ++i) expect_ok(replay.apply(c.events()[i]));
  EXPECT_EQ(replay.snapshot(), c.snapshot());
  EXPECT_EQ(replay.snapshot().hash(), c.snapshot().hash());
  EXPECT_EQ(replay.transitions(), c.transitions());
  EXPECT_EQ(replay.round_results(), c.round_results());
  // A different run seed gives a different state.
  auto other_config = base_config();
  other_config.run_seed = 43;
  Coordinator other = make(other_config);
  for (const Event& e : c.events()) (void)other.apply(e);
  EXPECT_NE(other.snapshot().hash(), c.snapshot().hash());
}

TEST(swarm_coordinator, JoinDuringEpochAdmittedAtNextBoundary) {
  Coordinator c = make(base_config());
  uint64_t now = 0;
  join_all(c, now, 1, 4);
  tick_to_deadline(c, now);
  expect_ok(c.apply(Join{now++, node(5)}));
  EXPECT_EQ(c.members().size(), 4u);
  EXPECT_EQ(c.pending_joins(), std::vector<net::NodeId>{node(5)});
  EXPECT_EQ(c.current_round()->roster.size(), 4u);
  for (int r = 0; r < 3; ++r) {
    honest_round(c, now);
    EXPECT_EQ(c.members().size(), 4u);
  }
  ASSERT_EQ(c.state(), State::kCooldown);
  EXPECT_EQ(c.members().size(), 4u);
  tick_to_deadline(c, now);
  EXPECT_EQ(c.state(), State::kWarmup);
  EXPECT_EQ(c.epoch(), 1u);
  EXPECT_EQ(c.members().size(), 5u);
  EXPECT_TRUE(c.pending_joins().empty());
  tick_to_deadline(c, now);
  EXPECT_EQ(c.current_round()->roster.size(), 5u);
  // A queued joiner may leave before admission.
  expect_ok(c.apply(Join{now++, node(6)}));
  expect_ok(c.apply(Leave{now++, node(6)}));
  EXPECT_TRUE(c.pending_joins().empty());
}

TEST(swarm_coordinator, MaxMembersCapsAdmission) {
  auto config = base_config();
  config.min_members = 2;
  config.max_members = 3;
  Coordinator c = make(config);
  uint64_t now = 0;
  join_all(c, now, 1, 5);  // 2 admitted at once (Warmup), 3 queued
  EXPECT_EQ(c.members().size(), 2u);
  EXPECT_EQ(c.pending_joins().size(), 3u);
  expect_rejected(c, Join{now, node(6)}, "join queue full");
  tick_to_deadline(c, now);
  for (int r = 0; r < 3; ++r) honest_round(c, now);
  tick_to_deadline(c, now);
  EXPECT_EQ(c.members().size(), 3u);  // capped
  EXPECT_EQ(c.pending_joins().size(), 2u);
}

TEST(swarm_coordinator, AllowlistAdmitsOnlyListedKeys) {
  auto config = base_config();
  config.min_members = 2;
  config.allowlist = std::vector<net::NodeId>{node(2), node(1), node(2)};
  Coordinator c = make(config);
  uint64_t now = 0;
  expect_rejected(c, Join{now, node(3)}, "not on the allowlist");
  expect_ok(c.apply(Join{now++, node(1)}));
  expect_ok(c.apply(Join{now++, node(2)}));
  EXPECT_EQ(c.state(), State::kWarmup);
}

TEST(swarm_coordinator, ConfigValidation) {
  auto expect_bad = [](CoordinatorConfig config, const std::string& what) {
    auto c = Coordinator::create(config);
    ASSERT_FALSE(c.ok()) << what;
    EXPECT_NE(c.status().message().find(what), std::string::npos) << c.status().message();
  };
  auto c = base_config();
  c.min_members = 0;
  expect_bad(c, "members must satisfy");
  c = base_config();
  c.min_members = 9;
  expect_bad(c, "members must satisfy");
  c = base_config();
  c.witnesses_per_round = 0;
  expect_bad(c, "witnesses_per_round 0");
  c = base_config();
  c.round_witness_ms = 0;
  expect_bad(c, "timeout");
  c = base_config();
  c.rounds_per_epoch = 0;
  expect_bad(c, "rounds_per_epoch");
  c = base_config();
  c.batches_per_round = 0;
  expect_bad(c, "batches_per_round 0");
  c = base_config();
  c.epochs = 0;
  expect_bad(c, "epochs must be");
  c = base_config();
  c.total_steps = uint64_t{1} << 39;
  expect_bad(c, "exceeds 2^40");
  c = base_config();
  c.allowlist = std::vector<net::NodeId>{};
  expect_bad(c, "allowlist is present but empty");
  c = base_config();
  c.total_steps = 5;
  EXPECT_EQ(c.schedule_batches(), 40u);
}

TEST(swarm_coordinator, InvalidEventsRejectedWithoutChange) {
  auto config = base_config();
  Coordinator c = make(config);
  uint64_t now = 10;
  join_all(c, now, 1, 4);
  expect_rejected(c, Join{now, node(1)}, "already a member");
  expect_rejected(c, Leave{now, node(9)}, "not a member");
  expect_rejected(c, Tick{now - 5}, "goes backwards");
  expect_rejected(c, Resume{now}, "resume: state is Warmup");
  expect_rejected(c, TrainDone{now, node(1), 0, {}, {}}, "state is Warmup");
  tick_to_deadline(c, now);
  ASSERT_EQ(c.state(), State::kRoundTrain);
  expect_ok(c.apply(Join{now++, node(5)}));
  expect_rejected(c, Join{now, node(5)}, "already queued");

  const RoundState r = *c.current_round();
  const auto& a0 = r.plan.assignment[0];
  expect_rejected(c, TrainDone{now, a0.member, r.round + 1, a0.batches, {}}, "wrong round");
  expect_rejected(c, TrainDone{now, node(5), r.round, a0.batches, {}},
                  "not a member of this round");
  expect_rejected(c, TrainDone{now, a0.member, r.round, r.plan.assignment[1].batches, {}},
                  "not assigned");
  expect_rejected(c, TrainDone{now, a0.member, r.round, {}, {}}, "not assigned");
  expect_rejected(c, TrainDone{c.snapshot().deadline_ms, a0.member, r.round, a0.batches, {}},
                  "after the train deadline");
  expect_rejected(c, Attest{now, r.plan.witnesses[0], r.round, {0}, {}}, "state is RoundTrain");
  expect_ok(c.apply(TrainDone{now++, a0.member, r.round, a0.batches, {}}));
  expect_rejected(c, TrainDone{now, a0.member, r.round, a0.batches, {}}, "duplicate");

  train_all(c, now, {a0.member});  // a0 already done
  ASSERT_EQ(c.state(), State::kRoundWitness);
  net::NodeId non_witness;
  for (const auto& m : r.roster) {
    if (std::find(r.plan.witnesses.begin(), r.plan.witnesses.end(), m) == r.plan.witnesses.end())
      non_witness = m;
  }
  const net::NodeId w = r.plan.witnesses[0];
  expect_rejected(c, Attest{now, non_witness, r.round, {0x0f}, {}}, "not a witness this round");
  expect_rejected(c, Attest{now, node(5), r.round, {0x0f}, {}}, "not a member of this round");
  expect_rejected(c, Attest{now, w, r.round + 1, {0x0f}, {}}, "wrong round");
  expect_rejected(c, Attest{now, w, r.round, {0x0f, 0}, {}}, "bitmap has 2 bytes");
  expect_rejected(c, Attest{now, w, r.round, {0x1f}, {}}, "beyond the roster");
  expect_rejected(c, Attest{c.snapshot().deadline_ms, w, r.round, {0x0f}, {}},
                  "after the witness deadline");
  expect_rejected(c, TrainDone{now, a0.member, r.round, a0.batches, {}}, "state is RoundWitness");
  expect_ok(c.apply(Attest{now++, w, r.round, {0x0f}, {}}));
  expect_rejected(c, Attest{now, w, r.round, {0x0f}, {}}, "duplicate");
  expect_ok(c.apply(Pause{now++}));
  expect_rejected(c, Pause{now}, "pause: state is Paused");
  expect_rejected(c, Attest{now, r.plan.witnesses[1], r.round, {0x0f}, {}}, "state is Paused");
}

TEST(swarm_coordinator, AttestOfIdleSlotRejected) {
  auto config = base_config();
  config.batches_per_round = 2;  // 4 members, 2 batches: two idle members
  Coordinator c = make(config);
  uint64_t now = 0;
  join_all(c, now, 1, 4);
  tick_to_deadline(c, now);
  const RoundState r = *c.current_round();
  size_t idle = 99;
  for (size_t i = 0; i < 4; ++i) {
    if (r.plan.assignment[i].batches.empty()) idle = i;
  }
  ASSERT_NE(idle, 99u);
  expect_rejected(c, TrainDone{now, r.roster[idle], r.round, {}, {}}, "no batches assigned");
  train_all(c, now);
  ASSERT_EQ(c.state(), State::kRoundWitness);
  const std::vector<size_t> slots = {idle};
  expect_rejected(c, Attest{now, r.plan.witnesses[0], r.round, make_slot_bitmap(4, slots), {}},
                  "trained nothing");
}

TEST(swarm_coordinator, MissingTrainDoneDroppedAndRangeTrainedLater) {
  auto config = base_config();
  config.min_members = 2;
  config.epochs = 2;
  Coordinator c = make(config);
  uint64_t now = 0;
  join_all(c, now, 1, 2);
  join_all(c, now, 3, 2);  // queued: min reached at 2
  ASSERT_EQ(c.state(), State::kWarmup);
  // Epoch 0 runs with 2 members.
  tick_to_deadline(c, now);
  honest_round(c, now);
  honest_round(c, now);
  honest_round(c, now);
  tick_to_deadline(c, now);  // epoch 1 admits 3 and 4
  ASSERT_EQ(c.members().size(), 4u);
  tick_to_deadline(c, now);
  const RoundState r = *c.current_round();
  // Pick a silent member that is not a witness, so attestations still reach quorum.
  net::NodeId silent;
  std::vector<BatchRange> silent_range;
  for (const auto& a : r.plan.assignment) {
    if (std::find(r.plan.witnesses.begin(), r.plan.witnesses.end(), a.member) ==
        r.plan.witnesses.end()) {
      silent = a.member;
      silent_range = a.batches;
    }
  }
  ASSERT_FALSE(silent_range.empty());
  train_all(c, now, {silent});
  EXPECT_EQ(c.state(), State::kRoundTrain);  // still waiting for the silent member
  tick_to_deadline(c, now);
  ASSERT_EQ(c.state(), State::kRoundWitness);
  attest_all(c, now);
  const RoundResult* result = c.round_result(r.round);
  ASSERT_NE(result, nullptr);
  EXPECT_EQ(result->accepted.size(), 3u);
  ASSERT_EQ(result->dropped.size(), 1u);
  EXPECT_EQ(result->dropped[0].member, silent);
  EXPECT_EQ(result->dropped[0].reason, DropReason::kNoTrainDone);
  EXPECT_EQ(result->requeued, silent_range);
  EXPECT_EQ(c.members().size(), 3u);
  // The next round trains the re-queued batches first.
  const RoundState next = *c.current_round();
  EXPECT_EQ(next.batch_list.front().begin, silent_range.front().begin);
  // Run to the end: every batch trained exactly once despite the drop.
  while (c.state() != State::kFinished) {
    if (c.state() == State::kRoundTrain) {
      honest_round(c, now);
    } else {
      tick_to_deadline(c, now);
    }
  }
  EXPECT_EQ(c.trained_batches(), config.schedule_batches());
  EXPECT_EQ(accepted_union(c), (std::vector<BatchRange>{{0, config.schedule_batches()}}));
  EXPECT_TRUE(c.requeued().empty());
  // One extra round was needed for the lost quarter-round.
  EXPECT_EQ(c.step(), 7u);
  // The dropped member may come back at the next epoch boundary.
  EXPECT_EQ(c.dropped().size(), 1u);
}

TEST(swarm_coordinator, QuorumIsTwoThirdsRoundedUp) {
  auto config = base_config();
  config.witnesses_per_round = 4;  // quorum 3
  config.min_members = 2;
  Coordinator c = make(config);
  uint64_t now = 0;
  join_all(c, now, 1, 2);  // min reached: epoch 0 starts with 2
  join_all(c, now, 3, 3);  // queued for epoch 1
  tick_to_deadline(c, now);
  for (int i = 0; i < 3; ++i) honest_round(c, now);
  tick_to_deadline(c, now);
  tick_to_deadline(c, now);
  ASSERT_EQ(c.members().size(), 5u);
  const RoundState r = *c.current_round();
  ASSERT_EQ(r.plan.witnesses.size(), 4u);
  train_all(c, now);
  // Slot 0 seen by 3 witnesses (accepted), slot 1 by 2 (not: 2 < ceil(8/3) = 3),
  // the rest by all 4.
  for (size_t i = 0; i < 4; ++i) {
    std::vector<size_t> slots = {2, 3, 4};
    if (i < 3) slots.push_back(0);
    if (i < 2) slots.push_back(1);
    expect_ok(c.apply(
        Attest{now++, r.plan.witnesses[i], r.round, make_slot_bitmap(5, slots), weights(1)}));
  }
  const RoundResult* result = c.round_result(r.round);
  ASSERT_NE(result, nullptr);
  EXPECT_FALSE(result->void_round);
  std::set<net::NodeId> accepted;
  for (const auto& u : result->accepted) accepted.insert(u.member);
  EXPECT_TRUE(accepted.count(r.roster[0]));
  EXPECT_FALSE(accepted.count(r.roster[1]));
  EXPECT_EQ(accepted.size(), 4u);
  ASSERT_EQ(result->dropped.size(), 1u);
  EXPECT_EQ(result->dropped[0].member, r.roster[1]);
  EXPECT_EQ(result->dropped[0].reason, DropReason::kNotSeenByQuorum);
  EXPECT_EQ(result->requeued, r.plan.assignment[1].batches);
}

TEST(swarm_coordinator, TooFewAttestationsMakeAVoidRound) {
  Coordinator c = make(base_config());  // 4 members, 3 witnesses, quorum 2
  uint64_t now = 0;
  join_all(c, now, 1, 4);
  tick_to_deadline(c, now);
  const RoundState r = *c.current_round();
  train_all(c, now);
  // Only one witness attests: below quorum, nothing counts, no trainer is blamed.
  attest_all(c, now, {r.plan.witnesses[1], r.plan.witnesses[2]});
  ASSERT_EQ(c.state(), State::kRoundWitness);
  tick_to_deadline(c, now);
  const RoundResult* result = c.round_result(r.round);
  ASSERT_NE(result, nullptr);
  EXPECT_TRUE(result->void_round);
  EXPECT_TRUE(result->accepted.empty());
  EXPECT_EQ(c.step(), 0u);
  EXPECT_EQ(result->requeued, (std::vector<BatchRange>{{0, 8}}));
  ASSERT_EQ(result->dropped.size(), 2u);
  for (const Drop& d : result->dropped) EXPECT_EQ(d.reason, DropReason::kWitnessSilent);
  // 2 members left < min 4: back to waiting, data position kept.
  EXPECT_EQ(c.state(), State::kWaitingForMembers);
  EXPECT_EQ(c.requeued(), (std::vector<BatchRange>{{0, 8}}));
  expect_ok(c.apply(Join{now++, r.plan.witnesses[1]}));
  expect_ok(c.apply(Join{now++, r.plan.witnesses[2]}));
  EXPECT_EQ(c.state(), State::kWarmup);
  EXPECT_EQ(c.epoch(), 1u);
  tick_to_deadline(c, now);
  EXPECT_EQ(c.current_round()->batch_list, (std::vector<BatchRange>{{0, 8}}));
  EXPECT_EQ(c.current_round()->round_in_epoch, 0u);
}

TEST(swarm_coordinator, WitnessDivergenceRecorded) {
  Coordinator c = make(base_config());
  uint64_t now = 0;
  join_all(c, now, 1, 4);
  tick_to_deadline(c, now);
  const RoundState r = *c.current_round();
  train_all(c, now);
  const std::vector<size_t> all = {0, 1, 2, 3};
  const uint8_t tags[3] = {5, 9, 5};
  for (size_t i = 0; i < 3; ++i) {
    expect_ok(c.apply(
        Attest{now++, r.plan.witnesses[i], r.round, make_slot_bitmap(4, all), weights(tags[i])}));
  }
  ASSERT_EQ(c.evidence().size(), 1u);
  EXPECT_EQ(c.evidence()[0].witness, r.plan.witnesses[1]);
  EXPECT_EQ(c.evidence()[0].reported, weights(9));
  EXPECT_EQ(c.evidence()[0].majority, weights(5));
  EXPECT_EQ(c.evidence()[0].round, r.round);
  EXPECT_EQ(c.round_result(r.round)->accepted.size(), 4u);

  // No strict majority (one each of three hashes): nothing recorded.
  const RoundState r2 = *c.current_round();
  train_all(c, now);
  const uint8_t tags2[3] = {1, 2, 3};
  for (size_t i = 0; i < 3; ++i) {
    expect_ok(c.apply(Attest{now++, r2.plan.witnesses[i], r2.round, make_slot_bitmap(4, all),
                             weights(tags2[i])}));
  }
  EXPECT_EQ(c.evidence().size(), 1u);
}

TEST(swarm_coordinator, PauseFreezesThePhaseClock) {
  Coordinator c = make(base_config());
  uint64_t now = 0;
  join_all(c, now, 1, 4);
  tick_to_deadline(c, now);
  ASSERT_EQ(c.state(), State::kRoundTrain);
  const uint64_t deadline = c.snapshot().deadline_ms;
  now = deadline - 300;
  expect_ok(c.apply(Pause{now}));
  EXPECT_EQ(c.state(), State::kPaused);
  expect_ok(c.apply(Tick{now + 100'000}));  // no timeout while paused
  EXPECT_EQ(c.state(), State::kPaused);
  expect_ok(c.apply(Join{now + 100'001, node(5)}));  // queued
  EXPECT_EQ(c.pending_joins().size(), 1u);
  now += 200'000;
  expect_ok(c.apply(Resume{now}));
  EXPECT_EQ(c.state(), State::kRoundTrain);
  EXPECT_EQ(c.snapshot().deadline_ms, now + 300);
  EXPECT_EQ(c.transitions().back().reason, TransitionReason::kResumed);
  now += 250;  // 50 ms left: enough for the four TrainDone events below
  expect_ok(c.apply(Tick{now}));
  EXPECT_EQ(c.state(), State::kRoundTrain);
  honest_round(c, now);
  EXPECT_EQ(c.step(), 1u);
  // Pause in WaitingForMembers: joins are admitted on resume.
  Coordinator w = make(base_config());
  uint64_t t = 0;
  expect_ok(w.apply(Pause{t++}));
  join_all(w, t, 1, 4);
  EXPECT_EQ(w.state(), State::kPaused);
  EXPECT_TRUE(w.members().empty());
  expect_ok(w.apply(Resume{t++}));
  EXPECT_EQ(w.state(), State::kWarmup);
}

TEST(swarm_coordinator, LeavesDuringRoundEndInWaitingWithoutLosingData) {
  Coordinator c = make(base_config());
  uint64_t now = 0;
  join_all(c, now, 1, 4);
  tick_to_deadline(c, now);
  honest_round(c, now);
  const RoundState r = *c.current_round();
  // Member of slot 0 leaves before training; the others finish.
  expect_ok(c.apply(Leave{now++, r.roster[0]}));
  train_all(c, now);
  ASSERT_EQ(c.state(), State::kRoundWitness);
  attest_all(c, now);
  const RoundResult* result = c.round_result(r.round);
  EXPECT_TRUE(result->dropped.empty());  // it left; not a drop
  EXPECT_EQ(result->requeued, r.plan.assignment[0].batches);
  EXPECT_EQ(c.state(), State::kWaitingForMembers);
  EXPECT_EQ(c.snapshot().cursor, 16u);
  join_all(c, now, 9, 1);
  EXPECT_EQ(c.state(), State::kWarmup);
  tick_to_deadline(c, now);
  // The re-queued batches lead the list (merged with the adjacent fresh ones).
  EXPECT_EQ(c.current_round()->batch_list.front().begin,
            r.plan.assignment[0].batches.front().begin);
}

TEST(swarm_coordinator, AssignmentReproducibleFromPublicStateAndVaries) {
  Coordinator c = make(base_config());
  uint64_t now = 0;
  join_all(c, now, 1, 4);
  tick_to_deadline(c, now);
  std::set<std::vector<net::NodeId>> witness_sets;
  std::set<std::vector<BatchRange>> first_slot_batches;
  for (int i = 0; i < 3; ++i) {
    const Snapshot s = c.snapshot();
    const RoundState& r = s.round;
    // A client recomputes the round from published state alone.
    const RoundPlan plan = plan_round(c.config().run_seed, s.epoch, r.round_in_epoch, r.roster,
                                      r.batch_list, c.config().witnesses_per_round);
    EXPECT_EQ(plan, r.plan);
    EXPECT_EQ(c.assignment(r.round), plan);
    witness_sets.insert(plan.witnesses);
    first_slot_batches.insert(plan.assignment[0].batches);
    honest_round(c, now);
    EXPECT_EQ(c.assignment(r.round), plan);  // still queryable once resolved
  }
  EXPECT_FALSE(c.assignment(99).has_value());
  EXPECT_GT(witness_sets.size(), 1u);
  EXPECT_EQ(first_slot_batches.size(), 3u);  // fresh batches each round
}

TEST(swarm_coordinator, SnapshotHashIsSensitiveToState) {
  Coordinator a = make(base_config());
  Coordinator b = make(base_config());
  EXPECT_EQ(a.snapshot().hash(), b.snapshot().hash());
  expect_ok(a.apply(Join{0, node(1)}));
  EXPECT_NE(a.snapshot().hash(), b.snapshot().hash());
  expect_ok(b.apply(Join{0, node(2)}));
  EXPECT_NE(a.snapshot().hash(), b.snapshot().hash());
  expect_ok(b.apply(Leave{0, node(2)}));
  expect_ok(b.apply(Join{0, node(1)}));
  // Same members, different event history.
  EXPECT_NE(a.snapshot(), b.snapshot());
}

}  // namespace
}  // namespace tern::swarm
