#include "swarm/assignment.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "swarm/swarm_test_util.h"

namespace tern::swarm {
namespace {

using testing::node;

std::vector<net::NodeId> roster_of(int n) {
  std::vector<net::NodeId> r;
  for (int i = 0; i < n; ++i) r.push_back(node(i + 1));
  return r;
}

TEST(swarm_assignment, RoundSeedIsDeterministicAndSeparatesInputs) {
  const uint64_t a = round_seed(42, 1, 2, SeedPurpose::kData);
  EXPECT_EQ(a, round_seed(42, 1, 2, SeedPurpose::kData));
  std::set<uint64_t> seen{a,
                          round_seed(43, 1, 2, SeedPurpose::kData),
                          round_seed(42, 2, 2, SeedPurpose::kData),
                          round_seed(42, 1, 3, SeedPurpose::kData),
                          round_seed(42, 1, 2, SeedPurpose::kWitness),
                          round_seed(42, 2, 1, SeedPurpose::kData)};
  EXPECT_EQ(seen.size(), 6u);
}

TEST(swarm_assignment, ShuffleIsASeededPermutation) {
  auto items = roster_of(10);
  auto a = items, b = items, c = items;
  seeded_shuffle(a, 7);
  seeded_shuffle(b, 7);
  seeded_shuffle(c, 8);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::sort(a.begin(), a.end());
  EXPECT_EQ(a, items);
}

TEST(swarm_assignment, BatchListTakesRequeuedFirstThenFresh) {
  const std::vector<BatchRange> requeued = {{3, 5}, {9, 10}};
  auto list = round_batch_list(requeued, 20, 100, 6);
  EXPECT_EQ(list, (std::vector<BatchRange>{{3, 5}, {9, 10}, {20, 23}}));
  list = round_batch_list(requeued, 20, 100, 2);
  EXPECT_EQ(list, (std::vector<BatchRange>{{3, 5}}));
  // Schedule end caps fresh batches.
  list = round_batch_list({}, 98, 100, 6);
  EXPECT_EQ(list, (std::vector<BatchRange>{{98, 100}}));
  // A re-queued range ending at the cursor merges with the fresh run.
  list = round_batch_list(std::vector<BatchRange>{{18, 20}}, 20, 100, 4);
  EXPECT_EQ(list, (std::vector<BatchRange>{{18, 22}}));
}

TEST(swarm_assignment, SliceMapsPositionsAcrossFragments) {
  const std::vector<BatchRange> list = {{3, 5}, {9, 10}, {20, 23}};
  EXPECT_EQ(slice_batch_list(list, 0, 2), (std::vector<BatchRange>{{3, 5}}));
  EXPECT_EQ(slice_batch_list(list, 1, 4), (std::vector<BatchRange>{{4, 5}, {9, 10}, {20, 21}}));
  EXPECT_EQ(slice_batch_list(list, 5, 6), (std::vector<BatchRange>{{22, 23}}));
  EXPECT_TRUE(slice_batch_list(list, 2, 2).empty());
}

TEST(swarm_assignment, PlanPartitionsTheListAndElectsWitnesses) {
  const auto roster = roster_of(5);
  const std::vector<BatchRange> list = {{0, 3}, {10, 20}};  // 13 batches
  const RoundPlan plan = plan_round(1, 0, 0, roster, list, 3);
  ASSERT_EQ(plan.assignment.size(), 5u);
  std::vector<BatchRange> covered;
  uint64_t total = 0;
  for (size_t i = 0; i < 5; ++i) {
    EXPECT_EQ(plan.assignment[i].member, roster[i]);
    const uint64_t n = total_batches(plan.assignment[i].batches);
    EXPECT_TRUE(n == 2 || n == 3) << n;  // floor split of 13 over 5
    EXPECT_FALSE(ranges_overlap(covered, plan.assignment[i].batches));
    for (auto r : plan.assignment[i].batches) insert_range(covered, r);
    total += n;
  }
  EXPECT_EQ(total, 13u);
  EXPECT_EQ(covered, list);
  ASSERT_EQ(plan.witnesses.size(), 3u);
  std::set<net::NodeId> w(plan.witnesses.begin(), plan.witnesses.end());
  EXPECT_EQ(w.size(), 3u);
  // Reproducible, and another round differs.
  EXPECT_EQ(plan, plan_round(1, 0, 0, roster, list, 3));
  EXPECT_NE(plan, plan_round(1, 0, 1, roster, list, 3));
  // More witnesses than members: everyone witnesses.
  EXPECT_EQ(plan_round(1, 0, 0, roster, list, 9).witnesses.size(), 5u);
}

TEST(swarm_assignment, FewerBatchesThanMembersLeavesSomeIdle) {
  const auto roster = roster_of(4);
  const RoundPlan plan = plan_round(3, 0, 0, roster, std::vector<BatchRange>{{0, 2}}, 2);
  int idle = 0;
  for (const auto& a : plan.assignment) idle += a.batches.empty() ? 1 : 0;
  EXPECT_EQ(idle, 2);
}

TEST(swarm_assignment, IntervalSetMergesAndTakes) {
  std::vector<BatchRange> set;
  insert_range(set, {5, 7});
  insert_range(set, {1, 2});
  insert_range(set, {2, 5});  // bridges both
  insert_range(set, {10, 12});
  insert_range(set, {11, 11});  // empty: ignored
  EXPECT_EQ(set, (std::vector<BatchRange>{{1, 7}, {10, 12}}));
  auto taken = take_lowest(set, 7);
  EXPECT_EQ(taken, (std::vector<BatchRange>{{1, 7}, {10, 11}}));
  EXPECT_EQ(set, (std::vector<BatchRange>{{11, 12}}));
  EXPECT_TRUE(ranges_overlap(std::vector<BatchRange>{{0, 12}}, set));
  EXPECT_FALSE(ranges_overlap(std::vector<BatchRange>{{0, 11}}, set));
}

TEST(swarm_assignment, SlotBitmapLayout) {
  const std::vector<size_t> slots = {0, 3, 9};
  const auto bitmap = make_slot_bitmap(10, slots);
  ASSERT_EQ(bitmap.size(), 2u);
  EXPECT_EQ(bitmap[0], 0x09);
  EXPECT_EQ(bitmap[1], 0x02);
  EXPECT_TRUE(slot_bit(bitmap, 9));
  EXPECT_FALSE(slot_bit(bitmap, 8));
  EXPECT_FALSE(slot_bit(bitmap, 100));
}

}  // namespace
}  // namespace tern::swarm
