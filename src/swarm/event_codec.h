// Canonical binary encoding of the coordinator's inputs: every Event and the
// CoordinatorConfig (version 1). The ledger (ledger.h) stores these bytes and
// hashes them, so one value has exactly one byte string.
//
// All integers are little-endian and fixed-width; lists are a u32 count then
// the items; booleans and tags are one byte. Event:
//   u8 version = 1, u8 tag, then by tag:
//     0 Join       u64 now_ms, 32 member
//     1 Leave      u64 now_ms, 32 member
//     2 TrainDone  u64 now_ms, 32 member, u64 round,
//                  u32 n, n x (u64 begin, u64 end), 32 update_hash
//     3 Attest     u64 now_ms, 32 witness, u64 round,
//                  u32 n, n x u8 received, 32 weight_hash
//     4 Tick, 5 Pause, 6 Resume   u64 now_ms
// CoordinatorConfig:
//   u8 version = 1, u64 run_seed, u32 min_members, u32 max_members,
//   u32 witnesses_per_round, u64 warmup_ms, u64 round_train_ms,
//   u64 round_witness_ms, u64 cooldown_ms, u32 rounds_per_epoch, u32 epochs,
//   u64 total_steps, u32 batches_per_round,
//   u8 has_allowlist (0 or 1), [u32 n, n x 32 key]
//
// The encoding is structural: it carries any value, valid for a Coordinator
// or not (the Coordinator judges events; CoordinatorConfig::validate judges
// configs). Decoders are total: any byte string gives either a Status naming
// the field and byte offset at fault (unknown version or tag, truncation, a
// boolean other than 0/1, trailing bytes) or a value with
// encode(decode(b)) == b. Counts are checked against the bytes left before
// anything is allocated. Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "swarm/coordinator.h"

namespace tern::swarm {

inline constexpr uint8_t kEventCodecVersion = 1;
inline constexpr uint8_t kConfigCodecVersion = 1;

std::vector<uint8_t> encode_event(const Event& event);
Result<Event> decode_event(std::span<const uint8_t> bytes);

std::vector<uint8_t> encode_config(const CoordinatorConfig& config);
Result<CoordinatorConfig> decode_config(std::span<const uint8_t> bytes);

// Equality of events (the event structs declare no operator==).
bool events_equal(const Event& a, const Event& b);
bool configs_equal(const CoordinatorConfig& a, const CoordinatorConfig& b);

}  // namespace tern::swarm
