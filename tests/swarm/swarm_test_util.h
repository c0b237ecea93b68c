// Helpers shared by the swarm tests: deterministic node ids and a driver that
// plays honest trainers and witnesses for the round in progress.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <vector>

#include "swarm/coordinator.h"

namespace tern::swarm::testing {

// Distinct ids that sort by `i`.
inline net::NodeId node(int i) {
  net::NodeId id;
  id.key[0] = static_cast<uint8_t>(i);
  id.key[31] = 0xA5;
  return id;
}

inline UpdateHash update_hash_of(const net::NodeId& member, uint64_t round) {
  UpdateHash h{};
  h[0] = member.key[0];
  h[1] = static_cast<uint8_t>(round);
  h[2] = static_cast<uint8_t>(round >> 8);
  return h;
}

inline WeightHash weights(uint8_t tag) {
  WeightHash h{};
  h.fill(tag);
  return h;
}

// Sends TrainDone for every trainer of the current round except `silent`.
inline void train_all(Coordinator& c, uint64_t& now, const std::vector<net::NodeId>& silent = {}) {
  const RoundState* r = c.current_round();
  ASSERT_NE(r, nullptr);
  const RoundState round = *r;  // copy: apply() may end the round
  for (size_t slot = 0; slot < round.roster.size(); ++slot) {
    const auto& a = round.plan.assignment[slot];
    if (a.batches.empty() || round.left[slot]) continue;
    if (std::find(silent.begin(), silent.end(), a.member) != silent.end()) continue;
    Status s = c.apply(
        TrainDone{now++, a.member, round.round, a.batches, update_hash_of(a.member, round.round)});
    ASSERT_TRUE(s.ok()) << s.message();
  }
}

// Slots of the current round that sent TrainDone.
inline std::vector<size_t> done_slots(const RoundState& r) {
  std::vector<size_t> slots;
  for (size_t i = 0; i < r.roster.size(); ++i) {
    if (r.trainers[i].done) slots.push_back(i);
  }
  return slots;
}

// Every elected witness except `silent` attests all trainers that sent
// TrainDone, with weight hash `tag`.
inline void attest_all(Coordinator& c, uint64_t& now, const std::vector<net::NodeId>& silent = {},
                       uint8_t tag = 7) {
  const RoundState* r = c.current_round();
  ASSERT_NE(r, nullptr);
  const RoundState round = *r;
  const std::vector<size_t> slots = done_slots(round);
  for (const net::NodeId& w : round.plan.witnesses) {
    if (std::find(silent.begin(), silent.end(), w) != silent.end()) continue;
    const auto slot =
        std::lower_bound(round.roster.begin(), round.roster.end(), w) - round.roster.begin();
    if (round.left[slot]) continue;
    Status s = c.apply(
        Attest{now++, w, round.round, make_slot_bitmap(round.roster.size(), slots), weights(tag)});
    ASSERT_TRUE(s.ok()) << s.message();
  }
}

}  // namespace tern::swarm::testing
