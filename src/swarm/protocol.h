// The swarm protocol: what members and the coordinator say to each other.
// Every message travels as a signed broadcast (net/broadcast.h) whose kind is
// one of SwarmKind and whose body is the canonical encoding below, so the
// sender of every message is authenticated by its signature, bound to the run
// id, and protected against replay. The coordinator relays members'
// broadcasts to every other member (it is the hub of a star), and members open
// direct links to each other only to fetch blobs (updates and weights).
//
//   member -> all    Join      "admit me"; carries the address where this
//                              member serves blobs to its peers
//   member -> all    Leave     "I am leaving" (graceful)
//   member -> all    Trained   "my update for round r, batches B, is blob U"
//   member -> all    Attest    witness report: which round-r updates it
//                              fetched and verified, and its weight hash
//   member -> all    Weights   "my weights after step s are blob W"
//                              (for members that join mid-run)
//   coordinator -> all  Status the coordinator's public state: phase,
//                              epoch/round/step, members and addresses, the
//                              current round's roster, batch list and
//                              reports, and the last resolved round
//
// A client checks every Status against what it can recompute: the round plan
// (assignment.h) from roster, batch list and run seed, and every Trained
// message against that plan (an update for batches the sender was not
// assigned is ignored, never fetched).
//
// Encoding: LeWriter/LeReader (u8 version = 1 first; integers little-endian;
// lists are a u32 count then the items; strings a u32 length then bytes).
// Decoders are total: any byte string gives a Status naming the message, the
// field and the byte offset, or a value. Pure functions; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "net/identity.h"
#include "swarm/coordinator.h"

namespace tern::swarm {

inline constexpr uint8_t kProtocolVersion = 1;
inline constexpr size_t kMaxAddressBytes = 256;

enum class SwarmKind : uint16_t {
  kJoin = 0x5301,
  kLeave = 0x5302,
  kTrained = 0x5303,
  kAttest = 0x5304,
  kWeights = 0x5305,
  kStatus = 0x5306,
};

struct JoinMessage {
  std::string address;  // where this member serves blobs ("host:port")
  bool operator==(const JoinMessage&) const = default;
};

// Updates up to this size travel inside their Trained message (no blob
// fetch, no request overhead); larger ones are fetched as blobs.
constexpr size_t kMaxInlineUpdateBytes = 32 * 1024;

struct TrainedMessage {
  uint64_t round = 0;
  std::vector<BatchRange> batches;
  std::array<uint8_t, 32> update_blob{};  // net::BlobId of the DeMo update
  // The update's bytes when it is at most kMaxInlineUpdateBytes (receivers
  // check that they hash to update_blob); empty: fetch the blob.
  std::vector<uint8_t> inline_update;
  bool operator==(const TrainedMessage&) const = default;
};

struct AttestMessage {
  uint64_t round = 0;
  std::vector<uint8_t> received;  // slot bitmap (assignment.h)
  WeightHash weight_hash{};
  bool operator==(const AttestMessage&) const = default;
};

struct WeightsMessage {
  uint64_t step = 0;
  std::array<uint8_t, 32> weights_blob{};  // net::BlobId of the weights
  bool operator==(const WeightsMessage&) const = default;
};

struct MemberInfo {
  net::NodeId id;
  std::string address;  // empty until its Join (with address) was seen
  bool operator==(const MemberInfo&) const = default;
};

struct StatusMessage {
  std::array<uint8_t, 32> config_hash{};  // run_config.h config_hash
  State state = State::kWaitingForMembers;
  uint64_t now_ms = 0;
  uint64_t deadline_ms = 0;
  uint64_t epoch = 0;
  uint64_t step = 0;
  uint64_t trained_batches = 0;
  uint64_t schedule_batches = 0;
  std::vector<MemberInfo> members;         // sorted by id
  std::vector<net::NodeId> pending_joins;  // admitted at the next epoch
  // The round in progress (RoundTrain / RoundWitness, or paused there).
  bool in_round = false;
  uint64_t round = 0;
  uint64_t round_in_epoch = 0;
  std::vector<net::NodeId> roster;
  std::vector<BatchRange> batch_list;
  std::vector<uint8_t> trained;   // per roster slot: 1 if its Trained was accepted
  std::vector<uint8_t> attested;  // per elected witness: 1 if it attested
  // The last resolved round, if any.
  std::optional<RoundResult> last_result;
  bool operator==(const StatusMessage&) const = default;
};

// The plan of the Status's round (it must be in_round), once its roster and
// batch list pass the checks plan_round() relies on (a Status is untrusted).
Result<RoundPlan> plan_from_status(const StatusMessage& st, uint64_t run_seed,
                                   uint32_t witnesses_per_round);

// The plan the next round will have if the Status's round resolves cleanly
// and the epoch goes on: the same members, the next batches of the schedule
// (from the highest batch id in this round's list). nullopt when there is no
// such round (the epoch or the schedule ends, or the Status is not in a round).
// Members train this plan ahead (overlap); the data provider serves its
// batches ahead.
std::optional<RoundPlan> predict_next_plan(const StatusMessage& st, uint64_t run_seed,
                                           uint32_t batches_per_round, uint32_t witnesses_per_round,
                                           uint32_t rounds_per_epoch);

std::vector<uint8_t> encode_join(const JoinMessage& m);
Result<JoinMessage> decode_join(std::span<const uint8_t> bytes);
std::vector<uint8_t> encode_leave();
Status decode_leave(std::span<const uint8_t> bytes);
std::vector<uint8_t> encode_trained(const TrainedMessage& m);
Result<TrainedMessage> decode_trained(std::span<const uint8_t> bytes);
std::vector<uint8_t> encode_attest(const AttestMessage& m);
Result<AttestMessage> decode_attest(std::span<const uint8_t> bytes);
std::vector<uint8_t> encode_weights(const WeightsMessage& m);
Result<WeightsMessage> decode_weights(std::span<const uint8_t> bytes);
std::vector<uint8_t> encode_status(const StatusMessage& m);
Result<StatusMessage> decode_status(std::span<const uint8_t> bytes);

}  // namespace tern::swarm
