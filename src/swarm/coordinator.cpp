#include "swarm/coordinator.h"

#include <algorithm>
#include <map>
#include <utility>

#include "core/check.h"
#include "core/le_writer.h"

namespace tern::swarm {
namespace {

constexpr uint64_t kMaxScheduleBatches = uint64_t{1} << 40;
constexpr uint64_t kMaxBatchesPerRound = uint64_t{1} << 24;
constexpr uint32_t kMaxMembers = 100'000;
constexpr uint32_t kMaxWitnesses = 1'000;

// Canonical little-endian writer for snapshot and history hashing.
class Writer : public LeWriter {
 public:
  void boolean(bool v) { u8(v ? 1 : 0); }
  void blob(const std::vector<uint8_t>& v) {
    u64(v.size());
    bytes(v);
  }
  void id(const net::NodeId& n) { bytes(n.key); }
  void ids(const std::vector<net::NodeId>& v) {
    u64(v.size());
    for (const auto& n : v) id(n);
  }
  void ranges(const std::vector<BatchRange>& v) {
    u64(v.size());
    for (const auto& r : v) {
      u64(r.begin);
      u64(r.end);
    }
  }
};

void encode_plan(Writer& w, const RoundPlan& plan) {
  w.u64(plan.data_seed);
  w.u64(plan.witness_seed);
  w.u64(plan.assignment.size());
  for (const auto& a : plan.assignment) {
    w.id(a.member);
    w.ranges(a.batches);
  }
  w.ids(plan.witnesses);
}

void encode_result(Writer& w, const RoundResult& r) {
  w.u64(r.round);
  w.u64(r.epoch);
  w.u64(r.round_in_epoch);
  w.u64(r.step_after);
  w.boolean(r.void_round);
  w.u64(r.accepted.size());
  for (const auto& a : r.accepted) {
    w.id(a.member);
    w.ranges(a.batches);
    w.bytes(a.update_hash);
  }
  w.u64(r.dropped.size());
  for (const auto& d : r.dropped) {
    w.u64(d.round);
    w.id(d.member);
    w.u8(static_cast<uint8_t>(d.reason));
  }
  w.ranges(r.requeued);
  w.u64(r.evidence.size());
  for (const auto& e : r.evidence) {
    w.u64(e.round);
    w.id(e.witness);
    w.bytes(e.reported);
    w.bytes(e.majority);
  }
}

bool contains(const std::vector<net::NodeId>& v, const net::NodeId& n) {
  return std::find(v.begin(), v.end(), n) != v.end();
}

// Slot of `n` in a sorted roster, or -1.
std::ptrdiff_t slot_of(const std::vector<net::NodeId>& roster, const net::NodeId& n) {
  auto it = std::lower_bound(roster.begin(), roster.end(), n);
  if (it == roster.end() || *it != n) return -1;
  return it - roster.begin();
}

std::string who(const net::NodeId& n) {
  return n.short_string();
}

std::string range_text(const std::vector<BatchRange>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(v[i].begin) + ".." + std::to_string(v[i].end);
  }
  return s + "]";
}

// The checks a trainer's and a witness's round reports share: the run is in the
// report's phase, the report names the round in progress, and its sender holds
// a slot of that round it has not left. Returns the sender's slot.
Result<size_t> round_report_slot(const Snapshot& s, State phase, uint64_t round,
                                 const net::NodeId& sender, const std::string& op) {
  if (s.state != phase) return Status::Error(op + "state is " + state_name(s.state));
  if (round != s.round.round) {
    return Status::Error(op + "wrong round (current " + std::to_string(s.round.round) + ")");
  }
  const std::ptrdiff_t slot = slot_of(s.round.roster, sender);
  if (slot < 0 || s.round.left[slot]) return Status::Error(op + "not a member of this round");
  return static_cast<size_t>(slot);
}

}  // namespace

const char* state_name(State state) {
  switch (state) {
    case State::kWaitingForMembers:
      return "WaitingForMembers";
    case State::kWarmup:
      return "Warmup";
    case State::kRoundTrain:
      return "RoundTrain";
    case State::kRoundWitness:
      return "RoundWitness";
    case State::kCooldown:
      return "Cooldown";
    case State::kFinished:
      return "Finished";
    case State::kPaused:
      return "Paused";
  }
  return "?";
}

uint64_t event_time(const Event& event) {
  return std::visit([](const auto& e) { return e.now_ms; }, event);
}

uint64_t CoordinatorConfig::schedule_batches() const {
  const uint64_t steps =
      total_steps != 0 ? total_steps : uint64_t{epochs} * uint64_t{rounds_per_epoch};
  // validate() bounds steps before this can overflow in a validated config.
  return steps * batches_per_round;
}

Status CoordinatorConfig::validate() const {
  const std::string op = "coordinator config: ";
  if (min_members < 1 || min_members > max_members || max_members > kMaxMembers) {
    return Status::Error(op + "members must satisfy 1 <= min (" + std::to_string(min_members) +
                         ") <= max (" + std::to_string(max_members) +
                         ") <= " + std::to_string(kMaxMembers));
  }
  if (witnesses_per_round < 1 || witnesses_per_round > kMaxWitnesses) {
    return Status::Error(op + "witnesses_per_round " + std::to_string(witnesses_per_round) +
                         " outside [1, " + std::to_string(kMaxWitnesses) + "]");
  }
  if (warmup_ms == 0 || round_train_ms == 0 || round_witness_ms == 0 || cooldown_ms == 0) {
    return Status::Error(op + "every timeout must be >= 1 ms");
  }
  if (rounds_per_epoch < 1) return Status::Error(op + "rounds_per_epoch must be >= 1");
  if (batches_per_round < 1 || batches_per_round > kMaxBatchesPerRound) {
    return Status::Error(op + "batches_per_round " + std::to_string(batches_per_round) +
                         " outside [1, 2^24]");
  }
  if (total_steps == 0 && epochs < 1) {
    return Status::Error(op + "epochs must be >= 1 when total_steps is 0");
  }
  if (total_steps > kMaxScheduleBatches || schedule_batches() > kMaxScheduleBatches) {
    return Status::Error(op + "schedule of " + std::to_string(total_steps) + " steps x " +
                         std::to_string(batches_per_round) + " batches exceeds 2^40 batches");
  }
  if (allowlist && allowlist->empty()) {
    return Status::Error(op + "allowlist is present but empty (nobody could join)");
  }
  return Status::Ok();
}

std::vector<uint8_t> Snapshot::encode() const {
  Writer w;
  w.u8(1);  // encoding version
  w.u8(static_cast<uint8_t>(state));
  w.u8(static_cast<uint8_t>(paused_from));
  w.u64(now_ms);
  w.u64(deadline_ms);
  w.u64(paused_remaining_ms);
  w.boolean(epoch_started);
  w.u64(epoch);
  w.u64(next_round);
  w.u64(next_round_in_epoch);
  w.u64(step);
  w.ids(members);
  w.ids(pending_joins);
  w.u64(cursor);
  w.ranges(requeued);
  w.ranges(done);
  w.boolean(in_round);
  if (in_round) {
    const RoundState& r = round;
    w.u64(r.round);
    w.u64(r.round_in_epoch);
    w.ids(r.roster);
    w.blob(r.left);
    w.ranges(r.batch_list);
    encode_plan(w, r.plan);
    w.u64(r.trainers.size());
    for (const auto& t : r.trainers) {
      w.boolean(t.done);
      w.bytes(t.update_hash);
    }
    w.u64(r.witnesses.size());
    for (const auto& x : r.witnesses) {
      w.boolean(x.attested);
      w.blob(x.received);
      w.bytes(x.weight_hash);
    }
  }
  w.u64(event_count);
  w.u64(transition_count);
  w.bytes(history_hash);
  return std::move(w.out());
}

Blake2bDigest Snapshot::hash() const {
  Blake2bHasher hasher;
  hasher.update(std::string_view("tern-swarm-snapshot-v1"));
  hasher.update(encode());
  return hasher.finish();
}

Result<Coordinator> Coordinator::create(CoordinatorConfig config) {
  TERN_RETURN_IF_ERROR(config.validate());
  if (config.allowlist) {
    std::sort(config.allowlist->begin(), config.allowlist->end());
    config.allowlist->erase(std::unique(config.allowlist->begin(), config.allowlist->end()),
                            config.allowlist->end());
  }
  return Coordinator(std::move(config));
}

Coordinator::Coordinator(CoordinatorConfig config) : config_(std::move(config)) {}

uint64_t Coordinator::round() const {
  return s_.in_round ? s_.round.round : s_.next_round;
}

std::optional<RoundPlan> Coordinator::assignment(uint64_t round) const {
  if (s_.in_round && s_.round.round == round) return s_.round.plan;
  if (round < plans_.size()) return plans_[round];
  return std::nullopt;
}

const RoundResult* Coordinator::round_result(uint64_t round) const {
  // Rounds resolve in id order, so results_[i].round == i.
  return round < results_.size() ? &results_[round] : nullptr;
}

Status Coordinator::apply(const Event& event) {
  TERN_RETURN_IF_ERROR(validate(event));
  s_.now_ms = event_time(event);
  events_.push_back(event);
  ++s_.event_count;
  execute(event);
  settle();
  return Status::Ok();
}

Status Coordinator::validate(const Event& event) const {
  const uint64_t now = event_time(event);
  if (now < s_.now_ms) {
    return Status::Error("coordinator event: time " + std::to_string(now) +
                         " ms goes backwards (last " + std::to_string(s_.now_ms) + " ms)");
  }
  const bool finished = s_.state == State::kFinished;
  const std::string state = state_name(s_.state);

  if (const auto* e = std::get_if<Join>(&event)) {
    const std::string op = "join " + who(e->member) + ": ";
    if (finished) return Status::Error(op + "run finished");
    if (config_.allowlist &&
        !std::binary_search(config_.allowlist->begin(), config_.allowlist->end(), e->member)) {
      return Status::Error(op + "key not on the allowlist");
    }
    if (contains(s_.members, e->member)) return Status::Error(op + "already a member");
    if (contains(s_.pending_joins, e->member)) return Status::Error(op + "already queued");
    if (s_.pending_joins.size() >= config_.max_members) {
      return Status::Error(op + "join queue full (" + std::to_string(s_.pending_joins.size()) +
                           ")");
    }
    return Status::Ok();
  }
  if (const auto* e = std::get_if<Leave>(&event)) {
    const std::string op = "leave " + who(e->member) + ": ";
    if (finished) return Status::Error(op + "run finished");
    if (!contains(s_.members, e->member) && !contains(s_.pending_joins, e->member)) {
      return Status::Error(op + "not a member");
    }
    return Status::Ok();
  }
  if (const auto* e = std::get_if<TrainDone>(&event)) {
    const std::string op =
        "train-done " + who(e->member) + " round " + std::to_string(e->round) + ": ";
    TERN_ASSIGN_OR_RETURN(const size_t slot,
                          round_report_slot(s_, State::kRoundTrain, e->round, e->member, op));
    const RoundState& r = s_.round;
    const auto& assigned = r.plan.assignment[slot].batches;
    if (assigned.empty()) return Status::Error(op + "no batches assigned this round");
    if (e->batches != assigned) {
      return Status::Error(op + "not assigned " + range_text(e->batches) + " (assigned " +
                           range_text(assigned) + ")");
    }
    if (r.trainers[slot].done) return Status::Error(op + "duplicate");
    if (now >= s_.deadline_ms) return Status::Error(op + "after the train deadline");
    return Status::Ok();
  }
  if (const auto* e = std::get_if<Attest>(&event)) {
    const std::string op =
        "attest " + who(e->witness) + " round " + std::to_string(e->round) + ": ";
    TERN_RETURN_IF_ERROR(
        round_report_slot(s_, State::kRoundWitness, e->round, e->witness, op).status());
    const RoundState& r = s_.round;
    const auto w = std::find(r.plan.witnesses.begin(), r.plan.witnesses.end(), e->witness);
    if (w == r.plan.witnesses.end()) return Status::Error(op + "not a witness this round");
    if (r.witnesses[w - r.plan.witnesses.begin()].attested) {
      return Status::Error(op + "duplicate");
    }
    const size_t n = r.roster.size();
    if (e->received.size() != (n + 7) / 8) {
      return Status::Error(op + "bitmap has " + std::to_string(e->received.size()) +
                           " bytes, roster of " + std::to_string(n) + " needs " +
                           std::to_string((n + 7) / 8));
    }
    for (size_t bit = n; bit < e->received.size() * 8; ++bit) {
      if (slot_bit(e->received, bit)) {
        return Status::Error(op + "bitmap sets bit " + std::to_string(bit) +
                             " beyond the roster of " + std::to_string(n));
      }
    }
    for (size_t i = 0; i < n; ++i) {
      if (slot_bit(e->received, i) && r.plan.assignment[i].batches.empty()) {
        return Status::Error(op + "bitmap sets slot " + std::to_string(i) +
                             ", which trained nothing this round");
      }
    }
    if (now >= s_.deadline_ms) return Status::Error(op + "after the witness deadline");
    return Status::Ok();
  }
  if (std::holds_alternative<Tick>(event)) return Status::Ok();
  if (std::holds_alternative<Pause>(event)) {
    if (finished || s_.state == State::kPaused) {
      return Status::Error("pause: state is " + state);
    }
    return Status::Ok();
  }
  if (std::holds_alternative<Resume>(event)) {
    if (s_.state != State::kPaused) return Status::Error("resume: state is " + state);
    return Status::Ok();
  }
  TERN_CHECK(false, "unhandled event alternative");
  return Status::Ok();
}

void Coordinator::execute(const Event& event) {
  if (const auto* e = std::get_if<Join>(&event)) {
    s_.pending_joins.push_back(e->member);
  } else if (const auto* e = std::get_if<Leave>(&event)) {
    auto it = std::find(s_.pending_joins.begin(), s_.pending_joins.end(), e->member);
    if (it != s_.pending_joins.end()) {
      s_.pending_joins.erase(it);
    } else {
      remove_member(e->member);
    }
  } else if (const auto* e = std::get_if<TrainDone>(&event)) {
    RoundState& r = s_.round;
    TrainerReport& t = r.trainers[slot_of(r.roster, e->member)];
    t.done = true;
    t.update_hash = e->update_hash;
  } else if (const auto* e = std::get_if<Attest>(&event)) {
    RoundState& r = s_.round;
    const auto w = std::find(r.plan.witnesses.begin(), r.plan.witnesses.end(), e->witness);
    WitnessReport& report = r.witnesses[w - r.plan.witnesses.begin()];
    report.attested = true;
    report.received = e->received;
    report.weight_hash = e->weight_hash;
  } else if (std::holds_alternative<Pause>(event)) {
    s_.paused_from = s_.state;
    s_.paused_remaining_ms = s_.deadline_ms > s_.now_ms ? s_.deadline_ms - s_.now_ms : 0;
    transition(State::kPaused, TransitionReason::kPaused);
  } else if (std::holds_alternative<Resume>(event)) {
    s_.deadline_ms = s_.now_ms + s_.paused_remaining_ms;
    s_.paused_remaining_ms = 0;
    const State back = s_.paused_from;
    s_.paused_from = State::kWaitingForMembers;
    transition(back, TransitionReason::kResumed);
  }
  // Tick: only time moves; settle() fires what is due.
}

void Coordinator::remove_member(const net::NodeId& member) {
  auto it = std::lower_bound(s_.members.begin(), s_.members.end(), member);
  TERN_CHECK(it != s_.members.end() && *it == member, "remove_member: not a member");
  s_.members.erase(it);
  if (s_.in_round) {
    const std::ptrdiff_t slot = slot_of(s_.round.roster, member);
    if (slot >= 0) s_.round.left[slot] = 1;
  }
}

void Coordinator::transition(State to, TransitionReason reason) {
  Transition t;
  t.event_seq = s_.event_count - 1;
  t.from = s_.state;
  t.to = to;
  t.reason = reason;
  t.now_ms = s_.now_ms;
  t.epoch = s_.epoch;
  t.round = round();
  t.step = s_.step;
  transitions_.push_back(t);
  ++s_.transition_count;
  s_.state = to;
}

bool Coordinator::work_remains() const {
  return s_.cursor < config_.schedule_batches() || !s_.requeued.empty();
}

void Coordinator::admit_pending() {
  size_t admitted = 0;
  while (admitted < s_.pending_joins.size() && s_.members.size() < config_.max_members) {
    const net::NodeId& id = s_.pending_joins[admitted++];
    s_.members.insert(std::lower_bound(s_.members.begin(), s_.members.end(), id), id);
  }
  s_.pending_joins.erase(s_.pending_joins.begin(),
                         s_.pending_joins.begin() + static_cast<std::ptrdiff_t>(admitted));
}

void Coordinator::start_epoch() {
  if (s_.epoch_started) ++s_.epoch;
  s_.epoch_started = true;
  s_.next_round_in_epoch = 0;
}

void Coordinator::start_round() {
  TERN_CHECK(!s_.members.empty() && work_remains(), "start_round without members or work");
  RoundState r;
  r.round = s_.next_round++;
  r.round_in_epoch = s_.next_round_in_epoch++;
  r.roster = s_.members;
  r.left.assign(r.roster.size(), 0);
  r.batch_list = round_batch_list(s_.requeued, s_.cursor, config_.schedule_batches(),
                                  config_.batches_per_round);
  // Consume what the list took: re-queued batches first, then fresh ones.
  const uint64_t listed = total_batches(r.batch_list);
  const uint64_t from_queue = total_batches(take_lowest(s_.requeued, listed));
  s_.cursor += listed - from_queue;
  r.plan = plan_round(config_.run_seed, s_.epoch, r.round_in_epoch, r.roster, r.batch_list,
                      config_.witnesses_per_round);
  r.trainers.assign(r.roster.size(), TrainerReport{});
  r.witnesses.assign(r.plan.witnesses.size(), WitnessReport{});
  s_.round = std::move(r);
  s_.in_round = true;
  s_.deadline_ms = s_.now_ms + config_.round_train_ms;
}

void Coordinator::resolve_round() {
  RoundState& r = s_.round;
  RoundResult result;
  result.round = r.round;
  result.epoch = s_.epoch;
  result.round_in_epoch = r.round_in_epoch;

  const size_t n = r.roster.size();
  const size_t witness_count = r.plan.witnesses.size();
  const size_t quorum = (2 * witness_count + 2) / 3;
  size_t attestations = 0;
  for (const auto& w : r.witnesses) attestations += w.attested ? 1 : 0;
  result.void_round = attestations < quorum;

  std::vector<uint8_t> dropped(n, 0);
  auto drop = [&](size_t slot, DropReason reason) {
    if (r.left[slot] || dropped[slot]) return;  // gone already / one reason is enough
    dropped[slot] = 1;
    result.dropped.push_back({r.round, r.roster[slot], reason});
  };

  for (size_t slot = 0; slot < n; ++slot) {
    const auto& batches = r.plan.assignment[slot].batches;
    if (batches.empty()) continue;
    const TrainerReport& t = r.trainers[slot];
    bool accepted = false;
    if (!t.done) {
      drop(slot, DropReason::kNoTrainDone);
    } else if (!result.void_round) {
      size_t seen = 0;
      for (const auto& w : r.witnesses) seen += (w.attested && slot_bit(w.received, slot)) ? 1 : 0;
      if (seen >= quorum) {
        accepted = true;
      } else {
        drop(slot, DropReason::kNotSeenByQuorum);
      }
    }
    if (accepted) {
      result.accepted.push_back({r.roster[slot], batches, t.update_hash});
      for (const BatchRange& b : batches) insert_range(s_.done, b);
    } else {
      for (const BatchRange& b : batches) {
        insert_range(s_.requeued, b);
        insert_range(result.requeued, b);
      }
    }
  }
  for (size_t i = 0; i < witness_count; ++i) {
    if (!r.witnesses[i].attested)
      drop(slot_of(r.roster, r.plan.witnesses[i]), DropReason::kWitnessSilent);
  }
  std::sort(result.accepted.begin(), result.accepted.end(),
            [](const AcceptedUpdate& a, const AcceptedUpdate& b) {
              return a.batches.front().begin < b.batches.front().begin;
            });

  // Divergence: a strict majority weight hash among the attestations.
  std::map<WeightHash, size_t> votes;
  for (const auto& w : r.witnesses) {
    if (w.attested) ++votes[w.weight_hash];
  }
  for (const auto& [hash, count] : votes) {
    if (2 * count <= attestations) continue;
    for (size_t i = 0; i < witness_count; ++i) {
      const WitnessReport& w = r.witnesses[i];
      if (w.attested && w.weight_hash != hash) {
        result.evidence.push_back({r.round, r.plan.witnesses[i], w.weight_hash, hash});
      }
    }
  }

  if (!result.accepted.empty()) ++s_.step;
  result.step_after = s_.step;

  for (size_t slot = 0; slot < n; ++slot) {
    if (dropped[slot]) {
      auto it = std::lower_bound(s_.members.begin(), s_.members.end(), r.roster[slot]);
      TERN_CHECK(it != s_.members.end() && *it == r.roster[slot], "dropped non-member");
      s_.members.erase(it);
    }
  }

  // Chain: history = BLAKE2b("tern-swarm-round-v1" || previous history || result).
  Writer w;
  encode_result(w, result);
  Blake2bHasher hasher;
  hasher.update(std::string_view("tern-swarm-round-v1"));
  hasher.update(s_.history_hash);
  hasher.update(w.out());
  s_.history_hash = hasher.finish();

  drops_.insert(drops_.end(), result.dropped.begin(), result.dropped.end());
  evidence_.insert(evidence_.end(), result.evidence.begin(), result.evidence.end());
  plans_.push_back(std::move(r.plan));
  results_.push_back(std::move(result));
  s_.round = RoundState{};
  s_.in_round = false;
}

void Coordinator::settle() {
  for (;;) {
    const uint64_t now = s_.now_ms;
    switch (s_.state) {
      case State::kWaitingForMembers:
        admit_pending();
        if (s_.members.size() >= config_.min_members && work_remains()) {
          start_epoch();
          s_.deadline_ms = now + config_.warmup_ms;
          transition(State::kWarmup, TransitionReason::kEnoughMembers);
          continue;
        }
        return;
      case State::kWarmup:
        if (s_.members.size() < config_.min_members) {
          transition(State::kWaitingForMembers, TransitionReason::kTooFewMembers);
          continue;
        }
        if (now >= s_.deadline_ms) {
          start_round();
          transition(State::kRoundTrain, TransitionReason::kWarmupElapsed);
          continue;
        }
        return;
      case State::kRoundTrain: {
        const RoundState& r = s_.round;
        bool all_done = true;
        for (size_t slot = 0; slot < r.roster.size(); ++slot) {
          if (!r.plan.assignment[slot].batches.empty() && !r.trainers[slot].done && !r.left[slot]) {
            all_done = false;
          }
        }
        if (all_done || now >= s_.deadline_ms) {
          s_.deadline_ms = now + config_.round_witness_ms;
          transition(State::kRoundWitness, all_done ? TransitionReason::kAllTrainersDone
                                                    : TransitionReason::kTrainTimeout);
          continue;
        }
        return;
      }
      case State::kRoundWitness: {
        const RoundState& r = s_.round;
        bool all_in = true;
        for (size_t i = 0; i < r.plan.witnesses.size(); ++i) {
          if (!r.witnesses[i].attested && !r.left[slot_of(r.roster, r.plan.witnesses[i])]) {
            all_in = false;
          }
        }
        if (!all_in && now < s_.deadline_ms) return;
        const TransitionReason trigger =
            all_in ? TransitionReason::kAllWitnessesIn : TransitionReason::kWitnessTimeout;
        const uint64_t resolved_in_epoch = s_.round.round_in_epoch + 1;
        resolve_round();
        if (!work_remains()) {
          s_.deadline_ms = now + config_.cooldown_ms;
          transition(State::kCooldown, TransitionReason::kScheduleComplete);
        } else if (s_.members.size() < config_.min_members) {
          transition(State::kWaitingForMembers, TransitionReason::kTooFewMembers);
        } else if (resolved_in_epoch >= config_.rounds_per_epoch) {
          s_.deadline_ms = now + config_.cooldown_ms;
          transition(State::kCooldown, TransitionReason::kEpochComplete);
        } else {
          start_round();
          transition(State::kRoundTrain, trigger);
        }
        continue;
      }
      case State::kCooldown:
        if (now < s_.deadline_ms) return;
        if (!work_remains()) {
          transition(State::kFinished, TransitionReason::kScheduleComplete);
          return;
        }
        admit_pending();
        if (s_.members.size() >= config_.min_members) {
          start_epoch();
          s_.deadline_ms = now + config_.warmup_ms;
          transition(State::kWarmup, TransitionReason::kCooldownElapsed);
        } else {
          transition(State::kWaitingForMembers, TransitionReason::kTooFewMembers);
        }
        continue;
      case State::kFinished:
      case State::kPaused:
        return;
    }
  }
}

}  // namespace tern::swarm
