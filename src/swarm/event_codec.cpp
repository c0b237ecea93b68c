#include "swarm/event_codec.h"

#include <string>
#include <type_traits>
#include <utility>

#include "core/check.h"
#include "core/le_reader.h"
#include "core/le_writer.h"

namespace tern::swarm {
namespace {

enum class EventTag : uint8_t {
  kJoin = 0,
  kLeave = 1,
  kTrainDone = 2,
  kAttest = 3,
  kTick = 4,
  kPause = 5,
  kResume = 6,
};

Result<std::vector<BatchRange>> read_ranges(LeReader& r) {
  TERN_ASSIGN_OR_RETURN(uint32_t n, r.count("batch count", 16));
  std::vector<BatchRange> ranges(n);
  for (BatchRange& range : ranges) {
    TERN_ASSIGN_OR_RETURN(range.begin, r.u64("batch begin"));
    TERN_ASSIGN_OR_RETURN(range.end, r.u64("batch end"));
  }
  return ranges;
}

Result<Event> read_event_body(LeReader& r, EventTag tag) {
  switch (tag) {
    case EventTag::kJoin: {
      Join e;
      TERN_ASSIGN_OR_RETURN(e.now_ms, r.u64("now_ms"));
      TERN_ASSIGN_OR_RETURN(e.member.key, r.bytes32("member"));
      return Event{e};
    }
    case EventTag::kLeave: {
      Leave e;
      TERN_ASSIGN_OR_RETURN(e.now_ms, r.u64("now_ms"));
      TERN_ASSIGN_OR_RETURN(e.member.key, r.bytes32("member"));
      return Event{e};
    }
    case EventTag::kTrainDone: {
      TrainDone e;
      TERN_ASSIGN_OR_RETURN(e.now_ms, r.u64("now_ms"));
      TERN_ASSIGN_OR_RETURN(e.member.key, r.bytes32("member"));
      TERN_ASSIGN_OR_RETURN(e.round, r.u64("round"));
      TERN_ASSIGN_OR_RETURN(e.batches, read_ranges(r));
      TERN_ASSIGN_OR_RETURN(e.update_hash, r.bytes32("update_hash"));
      return Event{std::move(e)};
    }
    case EventTag::kAttest: {
      Attest e;
      TERN_ASSIGN_OR_RETURN(e.now_ms, r.u64("now_ms"));
      TERN_ASSIGN_OR_RETURN(e.witness.key, r.bytes32("witness"));
      TERN_ASSIGN_OR_RETURN(e.round, r.u64("round"));
      TERN_ASSIGN_OR_RETURN(uint32_t n, r.count("bitmap length", 1));
      e.received.resize(n);
      for (uint8_t& b : e.received) {
        TERN_ASSIGN_OR_RETURN(b, r.u8("bitmap"));
      }
      TERN_ASSIGN_OR_RETURN(e.weight_hash, r.bytes32("weight_hash"));
      return Event{std::move(e)};
    }
    case EventTag::kTick: {
      Tick e;
      TERN_ASSIGN_OR_RETURN(e.now_ms, r.u64("now_ms"));
      return Event{e};
    }
    case EventTag::kPause: {
      Pause e;
      TERN_ASSIGN_OR_RETURN(e.now_ms, r.u64("now_ms"));
      return Event{e};
    }
    case EventTag::kResume: {
      Resume e;
      TERN_ASSIGN_OR_RETURN(e.now_ms, r.u64("now_ms"));
      return Event{e};
    }
  }
  TERN_CHECK(false, "unreachable event tag ", static_cast<int>(tag));
  return Status::Error("unreachable");
}

}  // namespace

std::vector<uint8_t> encode_event(const Event& event) {
  LeWriter w;
  w.u8(kEventCodecVersion);
  std::visit(
      [&w](const auto& e) {
        using T = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<T, Join>) {
          w.u8(static_cast<uint8_t>(EventTag::kJoin));
          w.u64(e.now_ms);
          w.bytes(e.member.key);
        } else if constexpr (std::is_same_v<T, Leave>) {
          w.u8(static_cast<uint8_t>(EventTag::kLeave));
          w.u64(e.now_ms);
          w.bytes(e.member.key);
        } else if constexpr (std::is_same_v<T, TrainDone>) {
          w.u8(static_cast<uint8_t>(EventTag::kTrainDone));
          w.u64(e.now_ms);
          w.bytes(e.member.key);
          w.u64(e.round);
          w.count(e.batches.size());
          for (const BatchRange& range : e.batches) {
            w.u64(range.begin);
            w.u64(range.end);
          }
          w.bytes(e.update_hash);
        } else if constexpr (std::is_same_v<T, Attest>) {
          w.u8(static_cast<uint8_t>(EventTag::kAttest));
          w.u64(e.now_ms);
          w.bytes(e.witness.key);
          w.u64(e.round);
          w.count(e.received.size());
          w.out().insert(w.out().end(), e.received.begin(), e.received.end());
          w.bytes(e.weight_hash);
        } else if constexpr (std::is_same_v<T, Tick>) {
          w.u8(static_cast<uint8_t>(EventTag::kTick));
          w.u64(e.now_ms);
        } else if constexpr (std::is_same_v<T, Pause>) {
          w.u8(static_cast<uint8_t>(EventTag::kPause));
          w.u64(e.now_ms);
        } else {
          static_assert(std::is_same_v<T, Resume>);
          w.u8(static_cast<uint8_t>(EventTag::kResume));
          w.u64(e.now_ms);
        }
      },
      event);
  return std::move(w.out());
}

Result<Event> decode_event(std::span<const uint8_t> bytes) {
  LeReader r(bytes, "event");
  TERN_ASSIGN_OR_RETURN(uint8_t version, r.u8("version"));
  if (version != kEventCodecVersion) {
    return r.error(
        "version", 0,
        "is " + std::to_string(version) + " (expected " + std::to_string(kEventCodecVersion) + ")");
  }
  TERN_ASSIGN_OR_RETURN(uint8_t tag, r.u8("tag"));
  if (tag > static_cast<uint8_t>(EventTag::kResume)) {
    return r.error("tag", 1, "is " + std::to_string(tag) + " (no such event kind; 0..6)");
  }
  TERN_ASSIGN_OR_RETURN(Event event, read_event_body(r, static_cast<EventTag>(tag)));
  TERN_RETURN_IF_ERROR(r.finish());
  return event;
}

std::vector<uint8_t> encode_config(const CoordinatorConfig& c) {
  LeWriter w;
  w.u8(kConfigCodecVersion);
  w.u64(c.run_seed);
  w.u32(c.min_members);
  w.u32(c.max_members);
  w.u32(c.witnesses_per_round);
  w.u64(c.warmup_ms);
  w.u64(c.round_train_ms);
  w.u64(c.round_witness_ms);
  w.u64(c.cooldown_ms);
  w.u32(c.rounds_per_epoch);
  w.u32(c.epochs);
  w.u64(c.total_steps);
  w.u32(c.batches_per_round);
  w.u8(c.allowlist ? 1 : 0);
  if (c.allowlist) {
    w.count(c.allowlist->size());
    for (const net::NodeId& id : *c.allowlist) w.bytes(id.key);
  }
  return std::move(w.out());
}

Result<CoordinatorConfig> decode_config(std::span<const uint8_t> bytes) {
  LeReader r(bytes, "coordinator config");
  CoordinatorConfig c;
  TERN_ASSIGN_OR_RETURN(uint8_t version, r.u8("version"));
  if (version != kConfigCodecVersion) {
    return r.error("version", 0,
                   "is " + std::to_string(version) + " (expected " +
                       std::to_string(kConfigCodecVersion) + ")");
  }
  TERN_ASSIGN_OR_RETURN(c.run_seed, r.u64("run_seed"));
  TERN_ASSIGN_OR_RETURN(c.min_members, r.u32("min_members"));
  TERN_ASSIGN_OR_RETURN(c.max_members, r.u32("max_members"));
  TERN_ASSIGN_OR_RETURN(c.witnesses_per_round, r.u32("witnesses_per_round"));
  TERN_ASSIGN_OR_RETURN(c.warmup_ms, r.u64("warmup_ms"));
  TERN_ASSIGN_OR_RETURN(c.round_train_ms, r.u64("round_train_ms"));
  TERN_ASSIGN_OR_RETURN(c.round_witness_ms, r.u64("round_witness_ms"));
  TERN_ASSIGN_OR_RETURN(c.cooldown_ms, r.u64("cooldown_ms"));
  TERN_ASSIGN_OR_RETURN(c.rounds_per_epoch, r.u32("rounds_per_epoch"));
  TERN_ASSIGN_OR_RETURN(c.epochs, r.u32("epochs"));
  TERN_ASSIGN_OR_RETURN(c.total_steps, r.u64("total_steps"));
  TERN_ASSIGN_OR_RETURN(c.batches_per_round, r.u32("batches_per_round"));
  TERN_ASSIGN_OR_RETURN(bool has_allowlist, r.boolean("has_allowlist"));
  if (has_allowlist) {
    TERN_ASSIGN_OR_RETURN(uint32_t n, r.count("allowlist count", 32));
    std::vector<net::NodeId> ids(n);
    for (net::NodeId& id : ids) {
      TERN_ASSIGN_OR_RETURN(id.key, r.bytes32("allowlist key"));
    }
    c.allowlist = std::move(ids);
  }
  TERN_RETURN_IF_ERROR(r.finish());
  return c;
}

bool events_equal(const Event& a, const Event& b) {
  if (a.index() != b.index()) return false;
  return std::visit(
      [&b](const auto& x) -> bool {
        using T = std::decay_t<decltype(x)>;
        const T& y = std::get<T>(b);
        if constexpr (std::is_same_v<T, Join> || std::is_same_v<T, Leave>) {
          return x.now_ms == y.now_ms && x.member == y.member;
        } else if constexpr (std::is_same_v<T, TrainDone>) {
          return x.now_ms == y.now_ms && x.member == y.member && x.round == y.round &&
                 x.batches == y.batches && x.update_hash == y.update_hash;
        } else if constexpr (std::is_same_v<T, Attest>) {
          return x.now_ms == y.now_ms && x.witness == y.witness && x.round == y.round &&
                 x.received == y.received && x.weight_hash == y.weight_hash;
        } else {
          return x.now_ms == y.now_ms;
        }
      },
      a);
}

bool configs_equal(const CoordinatorConfig& a, const CoordinatorConfig& b) {
  return a.run_seed == b.run_seed && a.min_members == b.min_members &&
         a.max_members == b.max_members && a.witnesses_per_round == b.witnesses_per_round &&
         a.warmup_ms == b.warmup_ms && a.round_train_ms == b.round_train_ms &&
         a.round_witness_ms == b.round_witness_ms && a.cooldown_ms == b.cooldown_ms &&
         a.rounds_per_epoch == b.rounds_per_epoch && a.epochs == b.epochs &&
         a.total_steps == b.total_steps && a.batches_per_round == b.batches_per_round &&
         a.allowlist == b.allowlist;
}

}  // namespace tern::swarm
