#include "swarm/protocol.h"

#include <algorithm>
#include <string>
#include <utility>

#include "core/le_reader.h"
#include "core/le_writer.h"

namespace tern::swarm {
namespace {

// Generous caps on list lengths beyond the byte-count check, so a Status of a
// huge but well-formed swarm still decodes while a forged one stays bounded.
constexpr uint32_t kMaxListItems = 1u << 20;

LeWriter start() {
  LeWriter w;
  w.u8(kProtocolVersion);
  return w;
}

Status read_version(LeReader& r) {
  TERN_ASSIGN_OR_RETURN(uint8_t version, r.u8("version"));
  if (version != kProtocolVersion) {
    return r.error(
        "version", 0,
        "is " + std::to_string(version) + " (expected " + std::to_string(kProtocolVersion) + ")");
  }
  return Status::Ok();
}

void put_ranges(LeWriter& w, const std::vector<BatchRange>& ranges) {
  w.count(ranges.size());
  for (const BatchRange& r : ranges) {
    w.u64(r.begin);
    w.u64(r.end);
  }
}

Result<std::vector<BatchRange>> read_ranges(LeReader& r, const char* field) {
  TERN_ASSIGN_OR_RETURN(uint32_t n, r.count(field, 16));
  std::vector<BatchRange> ranges(n);
  for (BatchRange& range : ranges) {
    const size_t at = r.pos();
    TERN_ASSIGN_OR_RETURN(range.begin, r.u64(field));
    TERN_ASSIGN_OR_RETURN(range.end, r.u64(field));
    if (range.end <= range.begin) {
      return r.error(field, at,
                     "is [" + std::to_string(range.begin) + ", " + std::to_string(range.end) +
                         ") (must be non-empty)");
    }
  }
  return ranges;
}

void put_ids(LeWriter& w, const std::vector<net::NodeId>& ids) {
  w.count(ids.size());
  for (const net::NodeId& id : ids) w.bytes(id.key);
}

Result<std::vector<net::NodeId>> read_ids(LeReader& r, const char* field) {
  TERN_ASSIGN_OR_RETURN(uint32_t n, r.count(field, 32));
  std::vector<net::NodeId> ids(n);
  for (net::NodeId& id : ids) {
    TERN_ASSIGN_OR_RETURN(id.key, r.bytes32(field));
  }
  return ids;
}

Result<std::vector<uint8_t>> read_flags(LeReader& r, const char* field) {
  TERN_ASSIGN_OR_RETURN(std::vector<uint8_t> flags, r.byte_string(field, kMaxListItems));
  for (size_t i = 0; i < flags.size(); ++i) {
    if (flags[i] > 1) {
      return r.error(field, r.pos() - flags.size() + i,
                     "is " + std::to_string(flags[i]) + " (expected 0 or 1)");
    }
  }
  return flags;
}

Result<std::string> read_address(LeReader& r) {
  TERN_ASSIGN_OR_RETURN(std::vector<uint8_t> bytes, r.byte_string("address", kMaxAddressBytes));
  for (size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] < 0x21 || bytes[i] > 0x7e) {
      return r.error("address", r.pos() - bytes.size() + i,
                     "holds byte " + std::to_string(bytes[i]) + " (printable ASCII only)");
    }
  }
  return std::string(bytes.begin(), bytes.end());
}

void put_result(LeWriter& w, const RoundResult& res) {
  w.u64(res.round);
  w.u64(res.epoch);
  w.u64(res.round_in_epoch);
  w.u64(res.step_after);
  w.u8(res.void_round ? 1 : 0);
  w.count(res.accepted.size());
  for (const AcceptedUpdate& a : res.accepted) {
    w.bytes(a.member.key);
    put_ranges(w, a.batches);
    w.bytes(a.update_hash);
  }
  w.count(res.dropped.size());
  for (const Drop& d : res.dropped) {
    w.u64(d.round);
    w.bytes(d.member.key);
    w.u8(static_cast<uint8_t>(d.reason));
  }
  put_ranges(w, res.requeued);
  w.count(res.evidence.size());
  for (const DivergenceEvidence& e : res.evidence) {
    w.u64(e.round);
    w.bytes(e.witness.key);
    w.bytes(e.reported);
    w.bytes(e.majority);
  }
}

Result<RoundResult> read_result(LeReader& r) {
  RoundResult res;
  TERN_ASSIGN_OR_RETURN(res.round, r.u64("result round"));
  TERN_ASSIGN_OR_RETURN(res.epoch, r.u64("result epoch"));
  TERN_ASSIGN_OR_RETURN(res.round_in_epoch, r.u64("result round_in_epoch"));
  TERN_ASSIGN_OR_RETURN(res.step_after, r.u64("result step_after"));
  TERN_ASSIGN_OR_RETURN(res.void_round, r.boolean("result void_round"));
  TERN_ASSIGN_OR_RETURN(uint32_t n_accepted, r.count("accepted count", 32 + 4 + 32));
  res.accepted.resize(n_accepted);
  for (AcceptedUpdate& a : res.accepted) {
    TERN_ASSIGN_OR_RETURN(a.member.key, r.bytes32("accepted member"));
    TERN_ASSIGN_OR_RETURN(a.batches, read_ranges(r, "accepted batches"));
    TERN_ASSIGN_OR_RETURN(a.update_hash, r.bytes32("accepted update_hash"));
  }
  TERN_ASSIGN_OR_RETURN(uint32_t n_dropped, r.count("dropped count", 8 + 32 + 1));
  res.dropped.resize(n_dropped);
  for (Drop& d : res.dropped) {
    TERN_ASSIGN_OR_RETURN(d.round, r.u64("drop round"));
    TERN_ASSIGN_OR_RETURN(d.member.key, r.bytes32("drop member"));
    const size_t at = r.pos();
    TERN_ASSIGN_OR_RETURN(uint8_t reason, r.u8("drop reason"));
    if (reason > static_cast<uint8_t>(DropReason::kWitnessSilent)) {
      return r.error("drop reason", at, "is " + std::to_string(reason) + " (0..2)");
    }
    d.reason = static_cast<DropReason>(reason);
  }
  TERN_ASSIGN_OR_RETURN(res.requeued, read_ranges(r, "requeued"));
  TERN_ASSIGN_OR_RETURN(uint32_t n_evidence, r.count("evidence count", 8 + 3 * 32));
  res.evidence.resize(n_evidence);
  for (DivergenceEvidence& e : res.evidence) {
    TERN_ASSIGN_OR_RETURN(e.round, r.u64("evidence round"));
    TERN_ASSIGN_OR_RETURN(e.witness.key, r.bytes32("evidence witness"));
    TERN_ASSIGN_OR_RETURN(e.reported, r.bytes32("evidence reported"));
    TERN_ASSIGN_OR_RETURN(e.majority, r.bytes32("evidence majority"));
  }
  return res;
}

}  // namespace

std::vector<uint8_t> encode_join(const JoinMessage& m) {
  LeWriter w = start();
  w.byte_string(m.address);
  return std::move(w.out());
}

Result<JoinMessage> decode_join(std::span<const uint8_t> bytes) {
  LeReader r(bytes, "swarm join");
  TERN_RETURN_IF_ERROR(read_version(r));
  JoinMessage m;
  TERN_ASSIGN_OR_RETURN(m.address, read_address(r));
  TERN_RETURN_IF_ERROR(r.finish());
  return m;
}

std::vector<uint8_t> encode_leave() {
  return std::move(start().out());
}

Status decode_leave(std::span<const uint8_t> bytes) {
  LeReader r(bytes, "swarm leave");
  TERN_RETURN_IF_ERROR(read_version(r));
  return r.finish();
}

std::vector<uint8_t> encode_trained(const TrainedMessage& m) {
  LeWriter w = start();
  w.u64(m.round);
  put_ranges(w, m.batches);
  w.bytes(m.update_blob);
  w.byte_string(m.inline_update);
  return std::move(w.out());
}

Result<TrainedMessage> decode_trained(std::span<const uint8_t> bytes) {
  LeReader r(bytes, "swarm trained");
  TERN_RETURN_IF_ERROR(read_version(r));
  TrainedMessage m;
  TERN_ASSIGN_OR_RETURN(m.round, r.u64("round"));
  TERN_ASSIGN_OR_RETURN(m.batches, read_ranges(r, "batches"));
  TERN_ASSIGN_OR_RETURN(m.update_blob, r.bytes32("update_blob"));
  TERN_ASSIGN_OR_RETURN(m.inline_update, r.byte_string("inline_update", kMaxInlineUpdateBytes));
  TERN_RETURN_IF_ERROR(r.finish());
  return m;
}

std::vector<uint8_t> encode_attest(const AttestMessage& m) {
  LeWriter w = start();
  w.u64(m.round);
  w.byte_string(m.received);
  w.bytes(m.weight_hash);
  return std::move(w.out());
}

Result<AttestMessage> decode_attest(std::span<const uint8_t> bytes) {
  LeReader r(bytes, "swarm attest");
  TERN_RETURN_IF_ERROR(read_version(r));
  AttestMessage m;
  TERN_ASSIGN_OR_RETURN(m.round, r.u64("round"));
  TERN_ASSIGN_OR_RETURN(m.received, r.byte_string("received", kMaxListItems / 8));
  TERN_ASSIGN_OR_RETURN(m.weight_hash, r.bytes32("weight_hash"));
  TERN_RETURN_IF_ERROR(r.finish());
  return m;
}

std::vector<uint8_t> encode_weights(const WeightsMessage& m) {
  LeWriter w = start();
  w.u64(m.step);
  w.bytes(m.weights_blob);
  return std::move(w.out());
}

Result<WeightsMessage> decode_weights(std::span<const uint8_t> bytes) {
  LeReader r(bytes, "swarm weights");
  TERN_RETURN_IF_ERROR(read_version(r));
  WeightsMessage m;
  TERN_ASSIGN_OR_RETURN(m.step, r.u64("step"));
  TERN_ASSIGN_OR_RETURN(m.weights_blob, r.bytes32("weights_blob"));
  TERN_RETURN_IF_ERROR(r.finish());
  return m;
}

std::vector<uint8_t> encode_status(const StatusMessage& m) {
  LeWriter w = start();
  w.bytes(m.config_hash);
  w.u8(static_cast<uint8_t>(m.state));
  w.u64(m.now_ms);
  w.u64(m.deadline_ms);
  w.u64(m.epoch);
  w.u64(m.step);
  w.u64(m.trained_batches);
  w.u64(m.schedule_batches);
  w.count(m.members.size());
  for (const MemberInfo& member : m.members) {
    w.bytes(member.id.key);
    w.byte_string(member.address);
  }
  put_ids(w, m.pending_joins);
  w.u8(m.in_round ? 1 : 0);
  if (m.in_round) {
    w.u64(m.round);
    w.u64(m.round_in_epoch);
    put_ids(w, m.roster);
    put_ranges(w, m.batch_list);
    w.byte_string(m.trained);
    w.byte_string(m.attested);
  }
  w.u8(m.last_result ? 1 : 0);
  if (m.last_result) put_result(w, *m.last_result);
  return std::move(w.out());
}

Result<StatusMessage> decode_status(std::span<const uint8_t> bytes) {
  LeReader r(bytes, "swarm status");
  TERN_RETURN_IF_ERROR(read_version(r));
  StatusMessage m;
  TERN_ASSIGN_OR_RETURN(m.config_hash, r.bytes32("config_hash"));
  const size_t state_at = r.pos();
  TERN_ASSIGN_OR_RETURN(uint8_t state, r.u8("state"));
  if (state > static_cast<uint8_t>(State::kPaused)) {
    return r.error("state", state_at, "is " + std::to_string(state) + " (0..6)");
  }
  m.state = static_cast<State>(state);
  TERN_ASSIGN_OR_RETURN(m.now_ms, r.u64("now_ms"));
  TERN_ASSIGN_OR_RETURN(m.deadline_ms, r.u64("deadline_ms"));
  TERN_ASSIGN_OR_RETURN(m.epoch, r.u64("epoch"));
  TERN_ASSIGN_OR_RETURN(m.step, r.u64("step"));
  TERN_ASSIGN_OR_RETURN(m.trained_batches, r.u64("trained_batches"));
  TERN_ASSIGN_OR_RETURN(m.schedule_batches, r.u64("schedule_batches"));
  TERN_ASSIGN_OR_RETURN(uint32_t n_members, r.count("member count", 32 + 4));
  m.members.resize(n_members);
  for (MemberInfo& member : m.members) {
    TERN_ASSIGN_OR_RETURN(member.id.key, r.bytes32("member id"));
    TERN_ASSIGN_OR_RETURN(member.address, read_address(r));
  }
  TERN_ASSIGN_OR_RETURN(m.pending_joins, read_ids(r, "pending_joins"));
  TERN_ASSIGN_OR_RETURN(m.in_round, r.boolean("in_round"));
  if (m.in_round) {
    TERN_ASSIGN_OR_RETURN(m.round, r.u64("round"));
    TERN_ASSIGN_OR_RETURN(m.round_in_epoch, r.u64("round_in_epoch"));
    TERN_ASSIGN_OR_RETURN(m.roster, read_ids(r, "roster"));
    TERN_ASSIGN_OR_RETURN(m.batch_list, read_ranges(r, "batch_list"));
    const size_t trained_at = r.pos();
    TERN_ASSIGN_OR_RETURN(m.trained, read_flags(r, "trained"));
    if (m.trained.size() != m.roster.size()) {
      return r.error("trained", trained_at,
                     "has " + std::to_string(m.trained.size()) + " flags for a roster of " +
                         std::to_string(m.roster.size()));
    }
    TERN_ASSIGN_OR_RETURN(m.attested, read_flags(r, "attested"));
  }
  TERN_ASSIGN_OR_RETURN(bool has_result, r.boolean("has_result"));
  if (has_result) {
    TERN_ASSIGN_OR_RETURN(RoundResult res, read_result(r));
    m.last_result = std::move(res);
  }
  TERN_RETURN_IF_ERROR(r.finish());
  return m;
}

Result<RoundPlan> plan_from_status(const StatusMessage& st, uint64_t run_seed,
                                   uint32_t witnesses_per_round) {
  if (st.roster.empty())
    return Status::Error("status: round " + std::to_string(st.round) + " has an empty roster");
  for (size_t i = 1; i < st.roster.size(); ++i) {
    if (!(st.roster[i - 1] < st.roster[i])) {
      return Status::Error("status: round " + std::to_string(st.round) +
                           " roster is not sorted and unique at slot " + std::to_string(i));
    }
  }
  return plan_round(run_seed, st.epoch, st.round_in_epoch, st.roster, st.batch_list,
                    witnesses_per_round);
}

std::optional<RoundPlan> predict_next_plan(const StatusMessage& st, uint64_t run_seed,
                                           uint32_t batches_per_round, uint32_t witnesses_per_round,
                                           uint32_t rounds_per_epoch) {
  if (!st.in_round || st.members.empty() || st.round_in_epoch + 1 >= rounds_per_epoch) {
    return std::nullopt;
  }
  uint64_t cursor = 0;
  for (const BatchRange& r : st.batch_list) cursor = std::max(cursor, r.end);
  const uint64_t end = std::min(cursor + batches_per_round, st.schedule_batches);
  if (cursor >= end) return std::nullopt;
  std::vector<net::NodeId> roster;
  for (const MemberInfo& m : st.members) roster.push_back(m.id);
  const std::vector<BatchRange> next_batches = {{cursor, end}};
  return plan_round(run_seed, st.epoch, st.round_in_epoch + 1, roster, next_batches,
                    witnesses_per_round);
}

}  // namespace tern::swarm
