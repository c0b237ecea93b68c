#include "swarm/run_config.h"

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>

namespace tern::swarm {
namespace {

const std::string kExamplePath = std::string(TERN_SOURCE_DIR) + "/docs/examples/run.toml";

// The smallest valid file: every required key and nothing else.
const std::string kMinimal = R"([run]
name = "t"

[model]
preset = "tiny"

[data]
shards = "d"
seq_len = 128

[optimizer]
lr = 0.001
)";

net::NodeId node_from_seed(uint8_t n) {
  std::array<uint8_t, 32> seed{};
  seed[0] = n;
  return net::Identity::from_seed(seed).id();
}

// The error message of a text that must not parse.
std::string error_of(const std::string& text) {
  auto r = parse_run_config(text, "run.toml");
  EXPECT_FALSE(r.ok()) << "parsed unexpectedly:\n" << text;
  return r.ok() ? std::string() : r.status().message();
}

// kMinimal with `line` ("key = value") in section `section`: replacing the
// key's line if kMinimal has one, else added to the section (or a new section).
std::string with(const std::string& section, const std::string& line) {
  std::string text = kMinimal;
  const std::string key = "\n" + line.substr(0, line.find(" = ") + 3);
  if (const size_t at = text.find(key); at != std::string::npos) {
    return text.replace(at + 1, text.find('\n', at + 1) - at - 1, line);
  }
  const std::string header = "[" + section + "]\n";
  const size_t at = text.find(header);
  if (at == std::string::npos) return text + "\n" + header + line + "\n";
  text.insert(at + header.size(), line + "\n");
  return text;
}

// kMinimal with its first `from` replaced by `to`.
std::string replaced(const std::string& from, const std::string& to) {
  std::string text = kMinimal;
  const size_t at = text.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  return at == std::string::npos ? text : text.replace(at, from.size(), to);
}

TEST(swarm_run_config, ExampleFileParsesAndConverts) {
  auto r = load_run_config(kExamplePath);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const RunConfig& c = r.value();
  EXPECT_EQ(c.run.name, "bitnet-2b-lora-demo");
  EXPECT_EQ(c.run.seed, 42u);
  EXPECT_EQ(c.run.id, derive_run_id("bitnet-2b-lora-demo", 42));
  EXPECT_EQ(c.model.gguf, "models/bitnet-b1.58-2B-4T.gguf");
  EXPECT_TRUE(c.model.preset.empty());
  EXPECT_EQ(c.data.seq_len, 1024);
  EXPECT_EQ(c.optimizer.schedule, ScheduleKind::kWsd);
  ASSERT_TRUE(c.allowlist.has_value());
  EXPECT_EQ(c.allowlist->size(), 4u);
  EXPECT_EQ((*c.allowlist)[0], node_from_seed(1));

  const CoordinatorConfig cc = to_coordinator_config(c);
  EXPECT_TRUE(cc.validate().ok());
  EXPECT_EQ(cc.run_seed, 42u);
  EXPECT_EQ(cc.min_members, 4u);
  EXPECT_EQ(cc.max_members, 32u);
  EXPECT_EQ(cc.witnesses_per_round, 3u);
  EXPECT_EQ(cc.round_train_ms, 90'000u);
  EXPECT_EQ(cc.batches_per_round, 32u);
  EXPECT_EQ(cc.schedule_batches(), 5u * 40u * 32u);
  EXPECT_EQ(cc.allowlist, c.allowlist);
  EXPECT_TRUE(Coordinator::create(cc).ok());

  const DemoConfig demo = to_demo_config(c);
  EXPECT_TRUE(demo.validate().ok());
  EXPECT_EQ(demo.chunk, 64);
  EXPECT_EQ(demo.topk, 4);
  EXPECT_EQ(demo.values, DemoValues::kSign);

  const LrSchedule lr = to_lr_schedule(c);
  EXPECT_TRUE(lr.validate().ok());
  EXPECT_EQ(lr.kind, ScheduleKind::kWsd);
  EXPECT_DOUBLE_EQ(lr.peak_lr, 4e-4);
  EXPECT_DOUBLE_EQ(lr.min_lr, 4e-5);
  EXPECT_EQ(lr.warmup_steps, 20);
  EXPECT_EQ(lr.total_steps, 200);

  auto lora = to_lora_config(c);
  ASSERT_TRUE(lora.has_value());
  EXPECT_TRUE(lora->validate().ok());
  EXPECT_EQ(lora->rank, 16);
  EXPECT_FLOAT_EQ(lora->alpha, 32.0f);
  EXPECT_EQ(lora->targets.size(), 7u);
}

TEST(swarm_run_config, MinimalFileTakesDefaults) {
  auto r = parse_run_config(kMinimal, "min.toml");
  ASSERT_TRUE(r.ok()) << r.status().message();
  const RunConfig& c = r.value();
  EXPECT_EQ(c.run.seed, 0u);
  EXPECT_EQ(c.run.id, derive_run_id("t", 0));
  EXPECT_EQ(c.model.lora_rank, 0);
  EXPECT_FALSE(to_lora_config(c).has_value());
  EXPECT_EQ(c.optimizer.chunk, 64);
  EXPECT_EQ(c.optimizer.topk, 4);
  EXPECT_EQ(c.optimizer.values, DemoValues::kSign);
  EXPECT_DOUBLE_EQ(c.optimizer.beta, 0.999);
  EXPECT_DOUBLE_EQ(c.optimizer.min_lr, 0.0001);  // lr / 10
  EXPECT_EQ(c.optimizer.schedule, ScheduleKind::kCosine);
  EXPECT_EQ(c.optimizer.warmup_steps, 0);
  EXPECT_DOUBLE_EQ(c.optimizer.weight_decay, 0.0);
  EXPECT_TRUE(c.optimizer.overlap);
  EXPECT_EQ(c.batch.batches_per_round, 64u);
  EXPECT_EQ(c.batch.sequences_per_batch, 8u);
  EXPECT_EQ(c.timing.warmup_ms, 10'000u);
  EXPECT_EQ(c.timing.round_train_ms, 60'000u);
  EXPECT_EQ(c.timing.round_witness_ms, 10'000u);
  EXPECT_EQ(c.timing.cooldown_ms, 5'000u);
  EXPECT_EQ(c.membership.min_members, 1u);
  EXPECT_EQ(c.membership.max_members, 64u);
  EXPECT_EQ(c.membership.witnesses_per_round, 1u);  // min(3, min_members)
  EXPECT_EQ(c.membership.epochs, 1u);
  EXPECT_EQ(c.membership.rounds_per_epoch, 10u);
  EXPECT_EQ(c.membership.total_steps, 0u);
  EXPECT_EQ(effective_total_steps(c), 10u);
  EXPECT_FALSE(c.allowlist.has_value());
  EXPECT_FALSE(to_coordinator_config(c).allowlist.has_value());
  EXPECT_TRUE(to_coordinator_config(c).validate().ok());

  // The witness default follows min_members up to 3.
  auto five = parse_run_config(with("membership", "min_members = 5"), "x");
  ASSERT_TRUE(five.ok()) << five.status().message();
  EXPECT_EQ(five.value().membership.witnesses_per_round, 3u);
  // LoRA defaults: alpha = 2 * rank, targets q k v o.
  auto lora = parse_run_config(with("model", "lora_rank = 4"), "x");
  ASSERT_TRUE(lora.ok()) << lora.status().message();
  EXPECT_DOUBLE_EQ(lora.value().model.lora_alpha, 8.0);
  EXPECT_EQ(lora.value().model.lora_targets, LoraConfig{}.targets);
}

TEST(swarm_run_config, ExplicitRunIdAndProviderAndIntegerFloats) {
  std::string text = with("run", "id = \"00112233445566778899AABBCCDDEEFF\"");
  text.replace(text.find("shards = \"d\""), 12,
               "provider = \"https://data.example.org/x\"\nprovider_hash = "
               "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"");
  text.replace(text.find("lr = 0.001"), 10, "lr = 1");
  auto r = parse_run_config(text, "x");
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(run_id_hex(r.value().run.id), "00112233445566778899aabbccddeeff");
  EXPECT_EQ(r.value().data.provider, "https://data.example.org/x");
  EXPECT_EQ(r.value().data.provider_hash,
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
  EXPECT_TRUE(r.value().data.shards.empty());
  EXPECT_DOUBLE_EQ(r.value().optimizer.lr, 1.0);
}

TEST(swarm_run_config, ProviderHashIsRequiredWithAProviderAndChecked) {
  const std::string provider = "provider = \"http://h:1\"";
  const std::string missing = error_of(replaced("shards = \"d\"", provider));
  EXPECT_NE(missing.find("[data] provider_hash"), std::string::npos) << missing;
  const std::string short_hash =
      error_of(replaced("shards = \"d\"", provider + "\nprovider_hash = \"abc\""));
  EXPECT_NE(short_hash.find("[data] provider_hash = 'abc': must be 64 hex digits"),
            std::string::npos)
      << short_hash;
  // Either case is accepted and kept lowercase (the canonical form).
  Result<RunConfig> upper = parse_run_config(
      replaced("shards = \"d\"", provider + "\nprovider_hash = \"" + std::string(64, 'A') + "\""),
      "x");
  ASSERT_TRUE(upper.ok()) << upper.status().message();
  EXPECT_EQ(upper.value().data.provider_hash, std::string(64, 'a'));
  const std::string with_shards = error_of(replaced(
      "shards = \"d\"", "shards = \"d\"\nprovider_hash = \"" + std::string(64, 'a') + "\""));
  EXPECT_NE(with_shards.find("provider_hash"), std::string::npos) << with_shards;
  EXPECT_NE(with_shards.find("needs provider"), std::string::npos) << with_shards;
}

TEST(swarm_run_config, SyntaxErrorReportsLineAndColumn) {
  const std::string msg = error_of("[run]\nname = \"t\"\nseed = = 3\n");
  EXPECT_NE(msg.find("run.toml:3:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("TOML syntax error"), std::string::npos) << msg;
  // A key defined twice is a syntax error too.
  const std::string twice = error_of("[run]\nname = \"a\"\nname = \"b\"\n");
  EXPECT_NE(twice.find("run.toml:3:"), std::string::npos) << twice;
}

TEST(swarm_run_config, UnknownKeyIsAnErrorWithSuggestion) {
  const std::string msg = error_of(with("timing", "round_trian_ms = 5000"));
  EXPECT_NE(msg.find("[timing] unknown key 'round_trian_ms'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean round_train_ms?"), std::string::npos) << msg;
  EXPECT_NE(msg.find("run.toml:"), std::string::npos) << msg;
  // A key in the wrong section names the right one.
  const std::string moved = error_of(kMinimal + "\n[batch]\nseq_len = 5\n");
  EXPECT_NE(moved.find("[batch] unknown key 'seq_len' (it belongs in [data])"), std::string::npos)
      << moved;
  // Also when the right section is missing altogether.
  std::string no_optimizer = kMinimal.substr(0, kMinimal.find("[optimizer]"));
  const std::string absent = error_of(no_optimizer + "[batch]\nlr = 0.001\n");
  EXPECT_NE(absent.find("[batch] unknown key 'lr' (it belongs in [optimizer])"), std::string::npos)
      << absent;
  EXPECT_NE(absent.find("run.toml: [optimizer] lr is required"), std::string::npos) << absent;
  // No close match: no suggestion.
  const std::string far = error_of(with("run", "colour = 1"));
  EXPECT_NE(far.find("[run] unknown key 'colour'"), std::string::npos) << far;
  EXPECT_EQ(far.find("did you mean"), std::string::npos) << far;
}

TEST(swarm_run_config, UnknownSectionAndTopLevelKeyAreErrors) {
  const std::string msg = error_of(kMinimal + "\n[timeing]\nwarmup_ms = 5\n");
  EXPECT_NE(msg.find("unknown section 'timeing' (did you mean [timing]?)"), std::string::npos)
      << msg;
  const std::string top = error_of("seed = 3\n" + kMinimal);
  EXPECT_NE(top.find("run.toml:1:1: unknown top-level key 'seed' (it belongs in [run])"),
            std::string::npos)
      << top;
  // A subtable inside a section is an unknown key of that section.
  const std::string sub = error_of(kMinimal + "\n[model.lora]\nrank = 4\n");
  EXPECT_NE(sub.find("[model] unknown key 'lora'"), std::string::npos) << sub;
  // A section given as a value.
  const std::string flat = error_of("batch = 5\n" + kMinimal);
  EXPECT_NE(flat.find("[batch] = 5: must be a table"), std::string::npos) << flat;
}

TEST(swarm_run_config, WrongTypeNamesFieldAndTypes) {
  const std::string msg = error_of(with("timing", "round_train_ms = \"60s\""));
  EXPECT_NE(msg.find("[timing] round_train_ms = '60s': expected an integer, got a string"),
            std::string::npos)
      << msg;
  const std::string b = error_of(with("optimizer", "overlap = 1"));
  EXPECT_NE(b.find("[optimizer] overlap = 1: expected a boolean"), std::string::npos) << b;
  const std::string f = error_of(with("optimizer", "beta = \"high\""));
  EXPECT_NE(f.find("[optimizer] beta = 'high': expected a number, got a string"), std::string::npos)
      << f;
  const std::string a = error_of(with("model", "lora_targets = \"q\""));
  EXPECT_NE(a.find("[model] lora_targets = 'q': expected an array, got a string"),
            std::string::npos)
      << a;
}

TEST(swarm_run_config, OutOfRangeNamesFieldAndValue) {
  const std::string msg = error_of(with("timing", "round_train_ms = -5"));
  EXPECT_NE(msg.find("run.toml:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[timing] round_train_ms = -5: must be a positive integer"), std::string::npos)
      << msg;
  const struct {
    const char* section;
    const char* line;
    const char* expected;
  } cases[] = {
      {"optimizer", "beta = 1.0", "[optimizer] beta = 1.0: must be a number in [0, 1)"},
      {"optimizer", "lr = 0", "[optimizer] lr = 0: must be a number in (0, 1]"},
      {"optimizer", "lr = nan", "[optimizer] lr = nan: must be a number in (0, 1]"},
      {"optimizer", "chunk = 0", "[optimizer] chunk = 0: must be an integer in [1, 256]"},
      {"optimizer", "values = \"int8\"", "[optimizer] values = 'int8': must be \"sign\""},
      {"optimizer", "schedule = \"linear\"", "[optimizer] schedule = 'linear': must be"},
      {"membership", "max_members = 0", "[membership] max_members = 0: must be an integer"},
      {"membership", "epochs = 0", "[membership] epochs = 0: must be an integer in [1, "},
      {"batch", "batches_per_round = 20000000", "[batch] batches_per_round = 20000000"},
      {"run", "seed = -1", "[run] seed = -1: must be a non-negative integer"},
      {"run", "id = \"abc\"", "[run] id = 'abc': must be 32 hex digits"},
      {"model", "lora_rank = 0", "[model] lora_rank = 0: must be an integer in [1, 4096]"},
      {"model", "lora_targets = [\"q\", \"x\"]", "[model] lora_targets[1] = 'x': unknown"},
      {"model", "lora_targets = [\"q\", \"q\"]", "[model] lora_targets[1] = 'q': listed twice"},
      {"data", "seq_len = 0", "[data] seq_len = 0: must be an integer in [1, "},
  };
  for (const auto& c : cases) {
    const std::string m = error_of(with(c.section, c.line));
    EXPECT_NE(m.find(c.expected), std::string::npos) << c.line << "\n" << m;
  }
  const std::string p = error_of(replaced("\"tiny\"", "\"tinyy\""));
  EXPECT_NE(p.find("[model] preset = 'tinyy': unknown preset (one of tiny"), std::string::npos)
      << p;
  const std::string u = error_of(replaced("shards = \"d\"", "provider = \"ftp://x\""));
  EXPECT_NE(u.find("[data] provider = 'ftp://x': must be an http:// or https:// URL"),
            std::string::npos)
      << u;
  const std::string n = error_of(replaced("\"t\"", "\"a b\""));
  EXPECT_NE(n.find("[run] name = 'a b': must be 1 to 64 characters"), std::string::npos) << n;
}

TEST(swarm_run_config, MissingRequiredFieldsAreNamed) {
  const std::string all = error_of("");
  for (const char* needle : {"[run] name is required", "[model] preset is required",
                             "[data] seq_len is required", "[optimizer] lr is required"}) {
    EXPECT_NE(all.find(needle), std::string::npos) << needle << "\n" << all;
  }
  std::string no_lr = kMinimal;
  no_lr.erase(no_lr.find("lr = 0.001"));
  const std::string m = error_of(no_lr);
  EXPECT_NE(m.find("run.toml:11:1: [optimizer] lr is required"), std::string::npos) << m;
  const std::string both = error_of(with("model", "gguf = \"m.gguf\""));
  EXPECT_NE(both.find("[model] gguf = 'm.gguf': conflicts with preset = 'tiny'"), std::string::npos)
      << both;
  const std::string empty_allow = error_of(kMinimal + "[allowlist]\n");
  EXPECT_NE(empty_allow.find("[allowlist] members is required"), std::string::npos) << empty_allow;
}

TEST(swarm_run_config, EveryFieldErrorIsReportedInFileOrder) {
  const std::string text = with("run", "seed = -2") + "\n[batch]\nsequences_per_batch = \"x\"\n";
  const std::string msg = error_of(text);
  const size_t seed = msg.find("[run] seed = -2");
  const size_t seqs = msg.find("[batch] sequences_per_batch = 'x'");
  ASSERT_NE(seed, std::string::npos) << msg;
  ASSERT_NE(seqs, std::string::npos) << msg;
  EXPECT_LT(seed, seqs);
  EXPECT_NE(msg.find('\n'), std::string::npos) << msg;
}

TEST(swarm_run_config, CrossFieldChecks) {
  const struct {
    std::string text;
    const char* expected;
  } cases[] = {
      {with("membership", "min_members = 10\nmax_members = 5"),
       "[membership] min_members = 10: must be <= max_members = 5"},
      {with("membership", "min_members = 2\nwitnesses_per_round = 3"),
       "[membership] witnesses_per_round = 3: must be <= min_members = 2"},
      {with("optimizer", "chunk = 2\ntopk = 5"),
       "[optimizer] topk = 5: must be <= chunk * chunk = 4"},
      {with("optimizer", "min_lr = 0.01"), "[optimizer] min_lr = 0.01: must be <= lr = 0.001"},
      {with("optimizer", "warmup_steps = 11"),
       "[optimizer] warmup_steps = 11: must be <= the run's total steps = 10"},
      {with("optimizer", "decay_fraction = 0.5"),
       "[optimizer] decay_fraction = 0.5: only used by schedule = \"wsd\""},
      {replaced("seq_len = 128", "seq_len = 512"),
       "[data] seq_len = 512: exceeds the max_seq 256 of [model] preset 'tiny'"},
      {with("model", "lora_alpha = 8.0"), "[model] lora_alpha = 8.0: needs lora_rank"},
      {with("membership", "total_steps = 1099511627776") + "[batch]\nbatches_per_round = 2\n",
       "[membership] total_steps = 1099511627776: the schedule of 1099511627776 steps x 2"},
  };
  for (const auto& c : cases) {
    const std::string m = error_of(c.text);
    EXPECT_NE(m.find(c.expected), std::string::npos) << c.text << "\n" << m;
  }
}

TEST(swarm_run_config, AllowlistNodeIdsValidated) {
  const std::string good = node_from_seed(1).to_string();
  const std::string other = node_from_seed(2).to_string();
  auto ok = parse_run_config(
      kMinimal + "\n[allowlist]\nmembers = [\"" + good + "\", \"" + other + "\"]\n", "x");
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  ASSERT_TRUE(ok.value().allowlist.has_value());
  EXPECT_EQ(*ok.value().allowlist,
            (std::vector<net::NodeId>{node_from_seed(1), node_from_seed(2)}));

  std::string bad = good;
  bad[10] = '1';  // not base32
  const std::string m =
      error_of(kMinimal + "\n[allowlist]\nmembers = [\"" + good + "\", \"" + bad + "\"]\n");
  EXPECT_NE(m.find("[allowlist] members[1] = '" + bad + "': parse node id"), std::string::npos)
      << m;
  EXPECT_NE(m.find("not lowercase base32"), std::string::npos) << m;

  const std::string dup = error_of(kMinimal + "\n[allowlist]\nmembers = [\"" + good + "\", \"" +
                                   other + "\", \"" + good + "\"]\n");
  EXPECT_NE(dup.find("[allowlist] members[2] = '" + good + "': duplicate of members[0]"),
            std::string::npos)
      << dup;

  const std::string empty = error_of(kMinimal + "\n[allowlist]\nmembers = []\n");
  EXPECT_NE(empty.find("[allowlist] members = []: must list at least one node id"),
            std::string::npos)
      << empty;
  const std::string type = error_of(kMinimal + "\n[allowlist]\nmembers = [7]\n");
  EXPECT_NE(type.find("[allowlist] members[0] = 7: expected a node id string"), std::string::npos)
      << type;
}

TEST(swarm_run_config, RoundTripThroughCanonicalToml) {
  auto example = load_run_config(kExamplePath);
  ASSERT_TRUE(example.ok()) << example.status().message();
  std::vector<RunConfig> configs = {example.value()};
  auto minimal = parse_run_config(kMinimal, "x");
  ASSERT_TRUE(minimal.ok());
  configs.push_back(minimal.value());
  RunConfig odd = minimal.value();
  odd.run.name = "odd.name_1";
  odd.run.seed = (uint64_t{1} << 63) - 1;
  odd.run.id = derive_run_id("something else", 7);
  odd.model.preset.clear();
  odd.model.gguf = "dir with \"quotes\" and \\ and \xc3\xa9";
  odd.model.gguf_hash.emplace();
  for (size_t i = 0; i < odd.model.gguf_hash->size(); ++i) {
    (*odd.model.gguf_hash)[i] = static_cast<uint8_t>(0xf7 * i + 3);
  }
  odd.data.shards.clear();
  odd.data.provider = "http://host:8080/p?q=1";
  odd.data.provider_hash = std::string(64, 'e');
  odd.optimizer.lr = 0.1 + 0.2;  // not a short decimal
  odd.optimizer.min_lr = 1e-7;
  odd.optimizer.beta = 0.0;
  odd.optimizer.values = DemoValues::kFp16;
  odd.optimizer.schedule = ScheduleKind::kConstant;
  odd.optimizer.overlap = false;
  odd.membership.total_steps = 12345;
  configs.push_back(odd);
  for (const RunConfig& c : configs) {
    const std::string text = to_toml(c);
    auto back = parse_run_config(text, "canonical");
    ASSERT_TRUE(back.ok()) << back.status().message() << "\n" << text;
    EXPECT_TRUE(back.value() == c) << text;
    EXPECT_EQ(to_toml(back.value()), text);
  }
}

TEST(swarm_run_config, ConfigHashIsStableAndSensitive) {
  auto a = parse_run_config(kMinimal, "a");
  ASSERT_TRUE(a.ok());
  // Formatting, comments and key order do not change the hash.
  const std::string reformatted = R"(# same run, other layout
[optimizer]
lr = 1e-3   # peak
[data]
seq_len = 128
shards = 'd'
[model]
preset = "tiny"
[run]
name = "t"
seed = 0
)";
  auto b = parse_run_config(reformatted, "b");
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(config_hash(a.value()), config_hash(b.value()));
  // Pinned: the canonical encoding is a protocol; changing it must be deliberate.
  EXPECT_EQ(to_hex(config_hash(a.value())),
            "c89717f1a2b530a2a382d3b7a265921b62a15ac2f15f447e9add2d97e7d46105");

  const RunConfig base = a.value();
  std::vector<RunConfig> variants;
  auto vary = [&](auto change) {
    RunConfig c = base;
    change(c);
    variants.push_back(c);
  };
  vary([](RunConfig& c) { c.run.seed = 1; });
  vary([](RunConfig& c) { c.run.id[0] ^= 1; });
  vary([](RunConfig& c) { c.data.seq_len = 127; });
  vary([](RunConfig& c) { c.optimizer.lr = std::nextafter(c.optimizer.lr, 1.0); });
  vary([](RunConfig& c) { c.optimizer.overlap = false; });
  vary([](RunConfig& c) { c.timing.cooldown_ms += 1; });
  vary([](RunConfig& c) { c.membership.max_members = 63; });
  vary([](RunConfig& c) { c.batch.sequences_per_batch = 9; });
  vary([](RunConfig& c) { c.allowlist = std::vector<net::NodeId>{node_from_seed(1)}; });
  const Blake2bDigest h = config_hash(base);
  for (size_t i = 0; i < variants.size(); ++i) {
    EXPECT_NE(config_hash(variants[i]), h) << "variant " << i;
  }
}

TEST(swarm_run_config, GgufHashIsParsedCheckedAndWrittenLowercase) {
  const std::string gguf_model = replaced("preset = \"tiny\"", "gguf = \"m.gguf\"");
  const std::string hex = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff";
  auto no_hash = parse_run_config(gguf_model, "x");
  ASSERT_TRUE(no_hash.ok()) << no_hash.status().message();
  EXPECT_FALSE(no_hash.value().model.gguf_hash.has_value());

  std::string text = gguf_model;
  text.insert(text.find("gguf = ") + 16, "gguf_hash = \"" + hex + "\"\n");
  auto r = parse_run_config(text, "x");
  ASSERT_TRUE(r.ok()) << r.status().message() << "\n" << text;
  ASSERT_TRUE(r.value().model.gguf_hash.has_value());
  EXPECT_EQ((*r.value().model.gguf_hash)[0], 0x00);
  EXPECT_EQ((*r.value().model.gguf_hash)[10], 0xaa);
  EXPECT_EQ((*r.value().model.gguf_hash)[31], 0xff);
  const std::string canonical = to_toml(r.value());
  EXPECT_NE(canonical.find("gguf_hash = \"00112233445566778899aabbccddeeff0011"), std::string::npos)
      << canonical;
  // Part of the config hash: members compare their files with the operator's.
  RunConfig other = r.value();
  (*other.model.gguf_hash)[5] ^= 1;
  EXPECT_NE(config_hash(other), config_hash(r.value()));
  EXPECT_NE(config_hash(no_hash.value()), config_hash(r.value()));

  const struct {
    std::string value;
    const char* expected;
  } bad[] = {
      {"\"abc\"", "[model] gguf_hash = 'abc': must be 64 hex digits, the BLAKE2b-256 of the file"},
      {"\"" + std::string(63, '0') + "g\"", "must be 64 hex digits"},
      {"\"" + std::string(66, '0') + "\"", "must be 64 hex digits"},
      {"7", "[model] gguf_hash = 7: expected a string, got an integer"},
  };
  for (const auto& b : bad) {
    std::string t = gguf_model;
    t.insert(t.find("gguf = ") + 16, "gguf_hash = " + b.value + "\n");
    const std::string m = error_of(t);
    EXPECT_NE(m.find(b.expected), std::string::npos) << t << "\n" << m;
  }
  const std::string preset = error_of(with("model", "gguf_hash = \"" + hex + "\""));
  // (Long values are shortened in messages.)
  EXPECT_NE(preset.find("[model] gguf_hash = '" + hex.substr(0, 60) + "...': needs gguf"),
            std::string::npos)
      << preset;
}

TEST(swarm_run_config, LoadReportsMissingAndOversizedFiles) {
  auto missing = load_run_config("/nonexistent/run.toml");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("load run config '/nonexistent/run.toml'"),
            std::string::npos)
      << missing.status().message();

  const std::string path = ::testing::TempDir() + "run_config_big.toml";
  {
    std::ofstream out(path, std::ios::binary);
    out << kMinimal << std::string((1 << 20) + 10, '#') << "\n";
  }
  auto big = load_run_config(path);
  std::remove(path.c_str());
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("larger than"), std::string::npos)
      << big.status().message();
}

TEST(swarm_run_config, HostileInputNeverCrashes) {
  // Control bytes and invalid UTF-8 give errors, not crashes.
  const std::string inputs[] = {
      std::string("[run]\nname = \"\x01\"\n"),
      std::string("[run]\nname = \"\xff\xfe\"\n"),
      std::string("\0\0\0", 3),
      "[[run]]\nname = \"x\"\n",
      "[run]\nname = [[[[[[[[1]]]]]]]]\n",
      "[model]\npreset = { a = 1 }\n",
  };
  for (const std::string& in : inputs) {
    auto r = parse_run_config(in, "fuzz");
    EXPECT_FALSE(r.ok());
  }
}

}  // namespace
}  // namespace tern::swarm
