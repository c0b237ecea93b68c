// The swarm coordinator's state machine (DESIGN.md section 4): admits members,
// runs epochs and rounds, assigns data, elects witnesses, decides which
// updates count, drops the silent and re-queues their batches. It does no I/O:
// a server feeds it events (each carrying its own time, now_ms) and persists
// the accepted-event log; `tern ledger verify` replays that log through a
// fresh Coordinator and must reproduce every snapshot hash.
//
// States and transitions (checked after every accepted event, looping until
// nothing changes; timeouts fire only on Tick, so any other event arriving at
// or after its phase's deadline is rejected as late):
//   WaitingForMembers: queued joins are admitted at once (up to max_members);
//       members >= min_members -> Warmup (a new epoch starts).
//   Warmup: members < min_members -> WaitingForMembers (epoch aborted);
//       warmup_ms elapsed -> RoundTrain.
//   RoundTrain: every trainer sent TrainDone (or left), or round_train_ms
//       elapsed -> RoundWitness.
//   RoundWitness: every elected witness attested (or left), or round_witness_ms
//       elapsed -> the round is resolved (below), then:
//         no batch left in the schedule       -> Cooldown (then Finished)
//         members < min_members               -> WaitingForMembers (epoch ends;
//                                                data position is kept)
//         rounds_per_epoch rounds done        -> Cooldown
//         otherwise                           -> RoundTrain (next round)
//   Cooldown: cooldown_ms elapsed -> Finished if no batch is left, otherwise a
//       new epoch: queued joins admitted (FIFO, up to max_members), then Warmup
//       if members >= min_members, else WaitingForMembers.
//   Paused (Pause event, from any state but Finished): the phase clock stops;
//       Resume returns to the interrupted state with the remaining phase time.
//       Joins and Leaves are accepted while paused; TrainDone/Attest are not.
//   Finished: only Tick is accepted.
// Epoch = Warmup + rounds + Cooldown; joins arriving during an epoch are queued
// (at most max_members of them) and admitted when the next epoch starts.
// Round ids (`round`) are global and start at 0; round_in_epoch restarts at 0.
// Step = number of rounds that accepted at least one update (an empty round
// has nothing to apply, so all clients skip it alike).
//
// Schedule: schedule_batches = total_steps * batches_per_round (total_steps 0:
// epochs * rounds_per_epoch), batch ids 0..schedule_batches-1. The run ends
// only when every scheduled batch is accepted exactly once, so drops cost extra
// rounds (and possibly epochs) but never data.
//
// Round resolution. W = elected witnesses, quorum Q = ceil(2W/3) = (2W+2)/3
// (W=1:1, 2:2, 3:2, 4:3, 5:4, 6:4). If at least Q witnesses attested:
//   a trainer's update is accepted iff it sent TrainDone and >= Q attestations
//   set its slot; a trainer that sent TrainDone but was seen by < Q witnesses is
//   dropped (kNotSeenByQuorum).
// Otherwise the round is void (witness failure is not the trainers' fault):
//   nothing is accepted and no trainer is dropped for it.
// In both cases a trainer without TrainDone is dropped (kNoTrainDone) and an
// elected witness that did not attest is dropped (kWitnessSilent); members
// that left are not "dropped". Every batch of the round not accepted goes back
// to the re-queue. Divergence: if more than half of the attestations carry the
// same weight hash, every attestation with another hash is recorded as
// evidence (no majority: nothing recorded; evidence is only recorded, not
// acted on). In an Attest bitmap, bits for trainers that sent no TrainDone are
// ignored (their update cannot count); bits for members that trained nothing
// this round make the Attest invalid.
//
// Derivations of seeds, batch lists, assignments and witnesses: assignment.h.
//
// Thread-safety: not synchronized; one owner drives it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "core/hash.h"
#include "core/status.h"
#include "net/identity.h"
#include "swarm/assignment.h"

namespace tern::swarm {

using UpdateHash = std::array<uint8_t, 32>;
using WeightHash = std::array<uint8_t, 32>;

struct CoordinatorConfig {
  uint64_t run_seed = 0;
  uint32_t min_members = 1;
  uint32_t max_members = 64;
  uint32_t witnesses_per_round = 3;
  uint64_t warmup_ms = 10'000;
  uint64_t round_train_ms = 60'000;
  uint64_t round_witness_ms = 10'000;
  uint64_t cooldown_ms = 5'000;
  uint32_t rounds_per_epoch = 10;
  uint32_t epochs = 1;
  uint64_t total_steps = 0;  // 0: epochs * rounds_per_epoch
  uint32_t batches_per_round = 64;
  // Admitted keys; nullopt: anyone may join.
  std::optional<std::vector<net::NodeId>> allowlist;

  uint64_t schedule_batches() const;
  // Checks ranges (untrusted: operator config). Limits: 1 <= min <= max <=
  // 100000, 1 <= witnesses <= 1000, every timeout >= 1 ms, rounds_per_epoch >=
  // 1, batches_per_round in [1, 2^24], schedule_batches in [1, 2^40].
  Status validate() const;
};

enum class State : uint8_t {
  kWaitingForMembers = 0,
  kWarmup = 1,
  kRoundTrain = 2,
  kRoundWitness = 3,
  kCooldown = 4,
  kFinished = 5,
  kPaused = 6,
};
const char* state_name(State state);

// ---- Events (inputs). Every event carries the time it is applied at. ----
struct Join {
  uint64_t now_ms = 0;
  net::NodeId member;
};
struct Leave {
  uint64_t now_ms = 0;
  net::NodeId member;
};
struct TrainDone {
  uint64_t now_ms = 0;
  net::NodeId member;
  uint64_t round = 0;               // global round id
  std::vector<BatchRange> batches;  // must equal the member's assignment
  UpdateHash update_hash{};         // BLAKE2b-256 of the update blob
};
struct Attest {
  uint64_t now_ms = 0;
  net::NodeId witness;
  uint64_t round = 0;
  std::vector<uint8_t> received;  // slot bitmap over the round roster (assignment.h)
  WeightHash weight_hash{};       // weights after applying the previous round
};
struct Tick {
  uint64_t now_ms = 0;
};
struct Pause {
  uint64_t now_ms = 0;
};
struct Resume {
  uint64_t now_ms = 0;
};
using Event = std::variant<Join, Leave, TrainDone, Attest, Tick, Pause, Resume>;

uint64_t event_time(const Event& event);

// ---- Records (outputs). ----
enum class TransitionReason : uint8_t {
  kEnoughMembers,
  kTooFewMembers,
  kWarmupElapsed,
  kAllTrainersDone,
  kTrainTimeout,
  kAllWitnessesIn,
  kWitnessTimeout,
  kEpochComplete,
  kScheduleComplete,
  kCooldownElapsed,
  kPaused,
  kResumed,
};

struct Transition {
  uint64_t event_seq = 0;  // index of the causing event in events()
  State from = State::kWaitingForMembers;
  State to = State::kWaitingForMembers;
  TransitionReason reason = TransitionReason::kEnoughMembers;
  uint64_t now_ms = 0;
  uint64_t epoch = 0;
  uint64_t round = 0;  // global id of the current / next round
  uint64_t step = 0;

  bool operator==(const Transition&) const = default;
};

enum class DropReason : uint8_t { kNoTrainDone, kNotSeenByQuorum, kWitnessSilent };

struct Drop {
  uint64_t round = 0;
  net::NodeId member;
  DropReason reason = DropReason::kNoTrainDone;

  bool operator==(const Drop&) const = default;
};

struct AcceptedUpdate {
  net::NodeId member;
  std::vector<BatchRange> batches;
  UpdateHash update_hash{};

  bool operator==(const AcceptedUpdate&) const = default;
};

struct DivergenceEvidence {
  uint64_t round = 0;
  net::NodeId witness;
  WeightHash reported{};
  WeightHash majority{};

  bool operator==(const DivergenceEvidence&) const = default;
};

struct RoundResult {
  uint64_t round = 0;
  uint64_t epoch = 0;
  uint64_t round_in_epoch = 0;
  uint64_t step_after = 0;
  bool void_round = false;               // fewer than quorum attestations
  std::vector<AcceptedUpdate> accepted;  // canonical order: by first batch id
  std::vector<Drop> dropped;
  std::vector<BatchRange> requeued;  // this round's batches sent back
  std::vector<DivergenceEvidence> evidence;

  bool operator==(const RoundResult&) const = default;
};

// ---- Snapshot: the complete state the machine's future depends on. ----
struct TrainerReport {
  bool done = false;
  UpdateHash update_hash{};

  bool operator==(const TrainerReport&) const = default;
};
struct WitnessReport {
  bool attested = false;
  std::vector<uint8_t> received;
  WeightHash weight_hash{};

  bool operator==(const WitnessReport&) const = default;
};

struct RoundState {
  uint64_t round = 0;
  uint64_t round_in_epoch = 0;
  std::vector<net::NodeId> roster;  // sorted; slot = index
  std::vector<uint8_t> left;        // per slot: 1 if the member left mid-round
  std::vector<BatchRange> batch_list;
  RoundPlan plan;
  std::vector<TrainerReport> trainers;   // per slot
  std::vector<WitnessReport> witnesses;  // per plan.witnesses index

  bool operator==(const RoundState&) const = default;
};

struct Snapshot {
  State state = State::kWaitingForMembers;
  State paused_from = State::kWaitingForMembers;
  uint64_t now_ms = 0;
  uint64_t deadline_ms = 0;          // of the current phase (if it has one)
  uint64_t paused_remaining_ms = 0;  // phase time left when paused
  bool epoch_started = false;        // has any epoch started yet
  uint64_t epoch = 0;
  uint64_t next_round = 0;           // global id the next round will get
  uint64_t next_round_in_epoch = 0;  // its index within the current epoch
  uint64_t step = 0;
  std::vector<net::NodeId> members;        // sorted
  std::vector<net::NodeId> pending_joins;  // FIFO
  uint64_t cursor = 0;                     // next fresh batch id
  std::vector<BatchRange> requeued;        // sorted interval set
  std::vector<BatchRange> done;            // sorted interval set (accepted)
  // The round in progress (RoundTrain/RoundWitness, or paused there); when
  // in_round is false, `round` is default-constructed. (A flag, not
  // std::optional: GCC 12 reports false maybe-uninitialized on moving it.)
  bool in_round = false;
  RoundState round;
  uint64_t event_count = 0;
  uint64_t transition_count = 0;
  Blake2bDigest history_hash{};  // chain over RoundResults (see .cpp)

  bool operator==(const Snapshot&) const = default;
  // Canonical little-endian encoding and its BLAKE2b-256.
  std::vector<uint8_t> encode() const;
  Blake2bDigest hash() const;
};

class Coordinator {
 public:
  static Result<Coordinator> create(CoordinatorConfig config);

  // Validates and applies one event. An invalid event returns an error naming
  // the problem and changes nothing (it is not logged).
  Status apply(const Event& event);

  const CoordinatorConfig& config() const { return config_; }
  const Snapshot& snapshot() const { return s_; }
  State state() const { return s_.state; }
  uint64_t epoch() const { return s_.epoch; }
  // Global id of the round in progress (or of the next round outside rounds).
  uint64_t round() const;
  uint64_t step() const { return s_.step; }
  const std::vector<net::NodeId>& members() const { return s_.members; }
  const std::vector<net::NodeId>& pending_joins() const { return s_.pending_joins; }
  const std::vector<BatchRange>& requeued() const { return s_.requeued; }
  const std::vector<BatchRange>& done_batches() const { return s_.done; }
  uint64_t trained_batches() const { return total_batches(s_.done); }
  // The round in progress (nullptr outside rounds).
  const RoundState* current_round() const { return s_.in_round ? &s_.round : nullptr; }
  // The assignment of a global round (in progress or finished); nullopt if unknown.
  std::optional<RoundPlan> assignment(uint64_t round) const;
  // Resolved rounds, oldest first; result(round) or nullptr.
  const std::vector<RoundResult>& round_results() const { return results_; }
  const RoundResult* round_result(uint64_t round) const;
  const std::vector<Drop>& dropped() const { return drops_; }
  const std::vector<DivergenceEvidence>& evidence() const { return evidence_; }
  const std::vector<Transition>& transitions() const { return transitions_; }
  // Accepted events in order: replaying them into a fresh Coordinator with the
  // same config reproduces every snapshot.
  const std::vector<Event>& events() const { return events_; }

 private:
  explicit Coordinator(CoordinatorConfig config);

  Status validate(const Event& event) const;
  void execute(const Event& event);
  void settle();
  void transition(State to, TransitionReason reason);
  bool work_remains() const;
  void admit_pending();
  void start_epoch();
  void start_round();
  void resolve_round();
  void remove_member(const net::NodeId& member);

  CoordinatorConfig config_;
  Snapshot s_;
  std::vector<Event> events_;
  std::vector<Transition> transitions_;
  std::vector<RoundResult> results_;
  std::vector<RoundPlan> plans_;  // per resolved round, parallel to results_
  std::vector<Drop> drops_;
  std::vector<DivergenceEvidence> evidence_;
};

}  // namespace tern::swarm
