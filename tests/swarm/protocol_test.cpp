// The swarm protocol codec: every message round-trips exactly, and the
// decoders are total (truncations and random mutations give an error naming
// the message, or a value that re-encodes to the same bytes).
#include "swarm/protocol.h"

#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "core/rng.h"

namespace tern::swarm {
namespace {

net::NodeId node(uint8_t seed) {
  net::NodeId id;
  for (size_t i = 0; i < id.key.size(); ++i) id.key[i] = static_cast<uint8_t>(seed * 31 + i);
  return id;
}

std::array<uint8_t, 32> digest(uint8_t seed) {
  return node(seed).key;
}

StatusMessage sample_status() {
  StatusMessage m;
  m.config_hash = digest(1);
  m.state = State::kRoundWitness;
  m.now_ms = 1'700'000'000'123;
  m.deadline_ms = 1'700'000'002'000;
  m.epoch = 2;
  m.step = 7;
  m.trained_batches = 56;
  m.schedule_batches = 96;
  m.members = {{node(2), "10.0.0.2:7401"}, {node(3), ""}, {node(4), "host.example:9"}};
  m.pending_joins = {node(5)};
  m.in_round = true;
  m.round = 9;
  m.round_in_epoch = 1;
  m.roster = {node(2), node(3), node(4)};
  m.batch_list = {{3, 5}, {56, 62}};
  m.trained = {1, 0, 1};
  m.attested = {1, 0};
  RoundResult r;
  r.round = 8;
  r.epoch = 2;
  r.round_in_epoch = 0;
  r.step_after = 7;
  r.accepted = {{node(2), {{48, 52}}, digest(9)}, {node(4), {{52, 56}}, digest(10)}};
  r.dropped = {{8, node(3), DropReason::kNotSeenByQuorum}};
  r.requeued = {{3, 5}};
  r.evidence = {{8, node(4), digest(11), digest(12)}};
  m.last_result = r;
  return m;
}

TEST(swarm_protocol, EveryMessageRoundTrips) {
  JoinMessage join{"127.0.0.1:7401"};
  EXPECT_EQ(decode_join(encode_join(join)).value(), join);
  EXPECT_TRUE(decode_leave(encode_leave()).ok());
  TrainedMessage trained{12, {{0, 4}, {9, 10}}, digest(3), {}};
  EXPECT_EQ(decode_trained(encode_trained(trained)).value(), trained);
  trained.inline_update.assign(kMaxInlineUpdateBytes, 0x5a);  // the largest inline update
  EXPECT_EQ(decode_trained(encode_trained(trained)).value(), trained);
  trained.inline_update.push_back(0);
  Status too_big = decode_trained(encode_trained(trained)).status();
  EXPECT_NE(too_big.message().find("inline_update"), std::string::npos) << too_big.message();
  AttestMessage attest{12, {0x05, 0x01}, digest(4)};
  EXPECT_EQ(decode_attest(encode_attest(attest)).value(), attest);
  WeightsMessage weights{40, digest(5)};
  EXPECT_EQ(decode_weights(encode_weights(weights)).value(), weights);
  const StatusMessage status = sample_status();
  EXPECT_EQ(decode_status(encode_status(status)).value(), status);
  StatusMessage idle;  // between rounds, nothing resolved yet
  idle.state = State::kWaitingForMembers;
  EXPECT_EQ(decode_status(encode_status(idle)).value(), idle);
}

TEST(swarm_protocol, ErrorsNameTheMessageAndField) {
  std::vector<uint8_t> bytes = encode_trained({1, {{0, 2}}, digest(1), {}});
  bytes[0] = 9;
  Status s = decode_trained(bytes).status();
  EXPECT_NE(s.message().find("swarm trained: version"), std::string::npos) << s.message();

  bytes = encode_trained({1, {{5, 5}}, digest(1), {}});  // an empty range
  s = decode_trained(bytes).status();
  EXPECT_NE(s.message().find("batches"), std::string::npos) << s.message();

  std::vector<uint8_t> join = encode_join({"bad address"});  // a space is not allowed
  s = decode_join(join).status();
  EXPECT_NE(s.message().find("address"), std::string::npos) << s.message();

  std::vector<uint8_t> status = encode_status(sample_status());
  status.push_back(0);
  s = decode_status(status).status();
  EXPECT_NE(s.message().find("trailing"), std::string::npos) << s.message();
}

TEST(swarm_protocol, StatusFlagsMustMatchTheRoster) {
  StatusMessage m = sample_status();
  m.trained = {1, 0};  // three roster slots
  Status s = decode_status(encode_status(m)).status();
  EXPECT_NE(s.message().find("trained"), std::string::npos) << s.message();
}

// Truncations and random byte mutations of every message kind: never a
// crash, and whatever decodes re-encodes to the bytes it came from.
TEST(swarm_protocol, DecodersAreTotalUnderMutation) {
  struct Kind {
    std::vector<uint8_t> bytes;
    std::function<std::optional<std::vector<uint8_t>>(const std::vector<uint8_t>&)> reencode;
  };
  std::vector<Kind> kinds;
  kinds.push_back({encode_join({"10.1.2.3:4"}), [](const auto& b) {
                     auto m = decode_join(b);
                     return m.ok() ? std::optional(encode_join(m.value())) : std::nullopt;
                   }});
  kinds.push_back(
      {encode_trained({3, {{0, 4}, {8, 9}}, digest(2), {1, 2, 3, 4, 5}}), [](const auto& b) {
         auto m = decode_trained(b);
         return m.ok() ? std::optional(encode_trained(m.value())) : std::nullopt;
       }});
  kinds.push_back({encode_attest({3, {0x3}, digest(2)}), [](const auto& b) {
                     auto m = decode_attest(b);
                     return m.ok() ? std::optional(encode_attest(m.value())) : std::nullopt;
                   }});
  kinds.push_back({encode_weights({3, digest(2)}), [](const auto& b) {
                     auto m = decode_weights(b);
                     return m.ok() ? std::optional(encode_weights(m.value())) : std::nullopt;
                   }});
  kinds.push_back({encode_status(sample_status()), [](const auto& b) {
                     auto m = decode_status(b);
                     return m.ok() ? std::optional(encode_status(m.value())) : std::nullopt;
                   }});
  Rng rng(42);
  int decoded = 0, rejected = 0;
  for (const Kind& kind : kinds) {
    for (size_t cut = 0; cut < kind.bytes.size(); ++cut) {
      std::vector<uint8_t> truncated(kind.bytes.begin(),
                                     kind.bytes.begin() + static_cast<std::ptrdiff_t>(cut));
      EXPECT_FALSE(kind.reencode(truncated)) << "a truncation at " << cut << " decoded";
    }
    for (int i = 0; i < 2500; ++i) {
      std::vector<uint8_t> mutated = kind.bytes;
      const int flips = 1 + static_cast<int>(rng.below(4));
      for (int f = 0; f < flips; ++f) {
        mutated[rng.below(mutated.size())] = static_cast<uint8_t>(rng.next_u64());
      }
      std::optional<std::vector<uint8_t>> again = kind.reencode(mutated);
      if (again) {
        EXPECT_EQ(*again, mutated);
        ++decoded;
      } else {
        ++rejected;
      }
    }
  }
  EXPECT_GT(decoded, 0);
  EXPECT_GT(rejected, 0);
}

}  // namespace
}  // namespace tern::swarm
