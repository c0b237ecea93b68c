#include "swarm/event_codec.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/rng.h"
#include "swarm/swarm_test_util.h"

namespace tern::swarm {
namespace {

using testing::node;
using testing::weights;

std::vector<Event> sample_events() {
  UpdateHash update{};
  for (size_t i = 0; i < update.size(); ++i) update[i] = static_cast<uint8_t>(3 * i + 1);
  return {
      Join{1, node(1)},
      Leave{0xFFFF'FFFF'FFFF'FFFFull, node(2)},
      TrainDone{5, node(3), 7, {{0, 4}, {9, 12}}, update},
      TrainDone{6, node(4), 0, {}, UpdateHash{}},
      Attest{8, node(4), 7, {0x0F, 0x01}, weights(9)},
      Attest{9, node(5), 1ull << 40, {}, weights(0)},
      Tick{0},
      Pause{123},
      Resume{456},
  };
}

CoordinatorConfig sample_config(bool allowlist) {
  CoordinatorConfig c;
  c.run_seed = 0x0123'4567'89AB'CDEFull;
  c.min_members = 2;
  c.max_members = 9;
  c.witnesses_per_round = 4;
  c.warmup_ms = 11;
  c.round_train_ms = 22;
  c.round_witness_ms = 33;
  c.cooldown_ms = 44;
  c.rounds_per_epoch = 5;
  c.epochs = 6;
  c.total_steps = 77;
  c.batches_per_round = 88;
  if (allowlist) c.allowlist = std::vector<net::NodeId>{node(3), node(1)};
  return c;
}

TEST(swarm_event_codec, EveryEventKindRoundTrips) {
  std::vector<uint8_t> tags;
  for (const Event& e : sample_events()) {
    const std::vector<uint8_t> bytes = encode_event(e);
    ASSERT_GE(bytes.size(), 2u);
    EXPECT_EQ(bytes[0], kEventCodecVersion);
    tags.push_back(bytes[1]);
    Result<Event> back = decode_event(bytes);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_TRUE(events_equal(back.value(), e)) << "tag " << int(bytes[1]);
    EXPECT_EQ(encode_event(back.value()), bytes);
  }
  EXPECT_EQ(tags, (std::vector<uint8_t>{0, 1, 2, 2, 3, 3, 4, 5, 6}));
}

TEST(swarm_event_codec, LayoutIsLittleEndianAndFixed) {
  // Tick{0x0102...08}: version, tag 4, u64 little-endian.
  EXPECT_EQ(encode_event(Tick{0x0102030405060708ull}),
            (std::vector<uint8_t>{1, 4, 8, 7, 6, 5, 4, 3, 2, 1}));
  // Join: version, tag, u64 now, 32-byte key.
  const std::vector<uint8_t> join = encode_event(Join{2, node(7)});
  ASSERT_EQ(join.size(), 2u + 8 + 32);
  EXPECT_EQ(join[2], 2);
  EXPECT_EQ(join[10], 7);
  EXPECT_EQ(join[41], 0xA5);
  // TrainDone with one range: the u32 count sits after now, member, round.
  const std::vector<uint8_t> td = encode_event(TrainDone{0, node(1), 0, {{1, 2}}, {}});
  ASSERT_EQ(td.size(), 2u + 8 + 32 + 8 + 4 + 16 + 32);
  EXPECT_EQ(td[50], 1);
  EXPECT_EQ(td[51], 0);
}

TEST(swarm_event_codec, EventsEqualSeesEveryField) {
  const Event a = TrainDone{5, node(3), 7, {{0, 4}}, weights(1)};
  EXPECT_TRUE(events_equal(a, a));
  EXPECT_FALSE(events_equal(a, TrainDone{6, node(3), 7, {{0, 4}}, weights(1)}));
  EXPECT_FALSE(events_equal(a, TrainDone{5, node(4), 7, {{0, 4}}, weights(1)}));
  EXPECT_FALSE(events_equal(a, TrainDone{5, node(3), 8, {{0, 4}}, weights(1)}));
  EXPECT_FALSE(events_equal(a, TrainDone{5, node(3), 7, {{0, 5}}, weights(1)}));
  EXPECT_FALSE(events_equal(a, TrainDone{5, node(3), 7, {{0, 4}}, weights(2)}));
  EXPECT_FALSE(events_equal(Tick{1}, Pause{1}));
  EXPECT_FALSE(events_equal(Attest{1, node(1), 1, {1}, {}}, Attest{1, node(1), 1, {2}, {}}));
}

TEST(swarm_event_codec, ConfigRoundTripsWithAndWithoutAllowlist) {
  for (bool allowlist : {false, true}) {
    const CoordinatorConfig c = sample_config(allowlist);
    const std::vector<uint8_t> bytes = encode_config(c);
    EXPECT_EQ(bytes[0], kConfigCodecVersion);
    Result<CoordinatorConfig> back = decode_config(bytes);
    ASSERT_TRUE(back.ok()) << back.status().message();
    EXPECT_TRUE(configs_equal(back.value(), c));
    EXPECT_EQ(encode_config(back.value()), bytes);
  }
  // An empty allowlist is not the same as none.
  CoordinatorConfig empty = sample_config(false);
  empty.allowlist = std::vector<net::NodeId>{};
  EXPECT_NE(encode_config(empty), encode_config(sample_config(false)));
  Result<CoordinatorConfig> back = decode_config(encode_config(empty));
  ASSERT_TRUE(back.ok());
  EXPECT_TRUE(back.value().allowlist.has_value());
  EXPECT_FALSE(configs_equal(back.value(), sample_config(false)));
}

void expect_error(Result<Event> r, const std::string& what) {
  ASSERT_FALSE(r.ok()) << "accepted; expected " << what;
  EXPECT_NE(r.status().message().find(what), std::string::npos) << r.status().message();
}

TEST(swarm_event_codec, BadEventsNameFieldAndOffset) {
  expect_error(decode_event({}), "truncated at version (offset 0");
  expect_error(decode_event(std::vector<uint8_t>{2, 4}), "version at offset 0 is 2");
  expect_error(decode_event(std::vector<uint8_t>{1}), "truncated at tag (offset 1");
  expect_error(decode_event(std::vector<uint8_t>{1, 7}), "tag at offset 1 is 7");
  expect_error(decode_event(std::vector<uint8_t>{1, 4, 1, 2, 3}), "truncated at now_ms (offset 2");
  std::vector<uint8_t> tick = encode_event(Tick{5});
  tick.push_back(0);
  expect_error(decode_event(tick), "1 trailing bytes at offset 10");
  std::vector<uint8_t> join = encode_event(Join{1, node(1)});
  join.pop_back();
  expect_error(decode_event(join), "truncated at member (offset 10, needs 32 bytes, 31 left)");
  // A forged count larger than what follows is refused before allocating.
  std::vector<uint8_t> td = encode_event(TrainDone{0, node(1), 0, {{1, 2}}, {}});
  td[50] = 0xFF;
  td[51] = 0xFF;
  td[52] = 0xFF;
  td[53] = 0xFF;
  expect_error(decode_event(td), "batch count at offset 50 is 4294967295 items of 16 bytes");
  std::vector<uint8_t> at = encode_event(Attest{0, node(1), 0, {1, 2, 3}, {}});
  at[50] = 200;
  expect_error(decode_event(at), "bitmap length at offset 50 is 200 items");
  std::vector<uint8_t> at2 = encode_event(Attest{0, node(1), 0, {1, 2, 3}, {}});
  at2.resize(60);
  expect_error(decode_event(at2), "truncated at weight_hash");
}

TEST(swarm_event_codec, BadConfigsNameFieldAndOffset) {
  std::vector<uint8_t> bytes = encode_config(sample_config(true));
  std::vector<uint8_t> bad = bytes;
  bad[0] = 9;
  EXPECT_NE(decode_config(bad).status().message().find("version at offset 0 is 9"),
            std::string::npos);
  const size_t flag = 1 + 8 + 4 * 3 + 8 * 4 + 4 * 2 + 8 + 4;
  bad = bytes;
  bad[flag] = 2;
  EXPECT_NE(decode_config(bad).status().message().find("has_allowlist at offset 73 is 2"),
            std::string::npos)
      << decode_config(bad).status().message();
  bad = bytes;
  bad.resize(15);
  EXPECT_NE(decode_config(bad).status().message().find("truncated at max_members"),
            std::string::npos);
  bad = bytes;
  bad.push_back(1);
  EXPECT_NE(decode_config(bad).status().message().find("trailing"), std::string::npos);
  bad = bytes;
  bad[flag + 1] = 3;  // three keys announced, two present
  EXPECT_NE(decode_config(bad).status().message().find("allowlist count"), std::string::npos);
}

// Mutates valid encodings (bit flips, byte sets, truncation, insertion,
// deletion) and random strings: the decoder never crashes, and whatever it
// accepts re-encodes to exactly the input.
TEST(swarm_event_codec, FuzzedInputsDecodeCleanlyOrCanonically) {
  std::vector<std::vector<uint8_t>> seeds;
  for (const Event& e : sample_events()) seeds.push_back(encode_event(e));
  std::vector<std::vector<uint8_t>> config_seeds = {encode_config(sample_config(false)),
                                                    encode_config(sample_config(true))};
  Rng rng(20240808);
  auto mutate = [&rng](std::vector<uint8_t> b) {
    const int edits = 1 + static_cast<int>(rng.below(3));
    for (int k = 0; k < edits; ++k) {
      switch (rng.below(6)) {
        case 0:
          if (!b.empty()) b[rng.below(b.size())] ^= static_cast<uint8_t>(1u << rng.below(8));
          break;
        case 1:
          if (!b.empty()) b[rng.below(b.size())] = static_cast<uint8_t>(rng.below(256));
          break;
        case 2:
          if (!b.empty()) b.resize(rng.below(b.size()));
          break;
        case 3:
          b.insert(b.begin() + static_cast<std::ptrdiff_t>(rng.below(b.size() + 1)),
                   static_cast<uint8_t>(rng.below(256)));
          break;
        case 4:
          if (!b.empty()) b.erase(b.begin() + static_cast<std::ptrdiff_t>(rng.below(b.size())));
          break;
        default: {  // small values in count fields are the interesting ones
          if (!b.empty()) b[rng.below(b.size())] = static_cast<uint8_t>(rng.below(4));
          break;
        }
      }
    }
    return b;
  };
  int accepted_events = 0;
  int accepted_configs = 0;
  for (int i = 0; i < 12000; ++i) {
    std::vector<uint8_t> input;
    if (i % 10 == 9) {
      input.resize(rng.below(80));
      for (uint8_t& x : input) x = static_cast<uint8_t>(rng.below(256));
    } else {
      input = mutate(seeds[rng.below(seeds.size())]);
    }
    Result<Event> e = decode_event(input);
    if (e.ok()) {
      ++accepted_events;
      ASSERT_EQ(encode_event(e.value()), input) << "input " << i;
    } else {
      EXPECT_EQ(e.status().message().rfind("decode event: ", 0), 0u) << e.status().message();
    }
    Result<CoordinatorConfig> c = decode_config(mutate(config_seeds[i % 2]));
    if (c.ok()) ++accepted_configs;
    std::vector<uint8_t> cin = mutate(config_seeds[rng.below(2)]);
    Result<CoordinatorConfig> c2 = decode_config(cin);
    if (c2.ok()) {
      ASSERT_EQ(encode_config(c2.value()), cin) << "config input " << i;
    }
  }
  // Single-byte value changes keep many inputs valid: the accept path is exercised.
  EXPECT_GT(accepted_events, 1000);
  EXPECT_GT(accepted_configs, 100);
}

}  // namespace
}  // namespace tern::swarm
