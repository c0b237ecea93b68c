// The swarm run config: one TOML file (`tern coordinator --config run.toml`)
// that names the run, the model, the data, the DeMo optimizer and its learning
// rate schedule, the batch shape, the phase timeouts, the membership limits and
// an optional allowlist. docs/run-config.md lists every key, its type, default
// and constraints; docs/examples/run.toml is a complete example.
//
// The file is operator input, hence untrusted: parse_run_config never throws
// or aborts on any text. TOML syntax errors are reported as
// "source:line:column: TOML syntax error: ..."; every other error names the
// section, the key and the bad value, e.g.
//   run.toml:12:18: [timing] round_train_ms = -5: must be a positive integer ...
// Unknown sections and keys are errors (a typo must not silently fall back to
// a default), with a "did you mean" suggestion when one is close. All field
// errors of a file are reported at once, one per line, in file order;
// cross-field checks (min_members <= max_members, ...) run once every field is
// valid on its own.
//
// Canonical form: to_toml() writes every field in a fixed order and format,
// and parse_run_config(to_toml(c)) == c for every config parse_run_config
// returns. config_hash() is BLAKE2b-256 over "tern-run-config-v1\n" followed
// by that canonical text, so a client holding the same config computes the
// same hash as the coordinator however the file was formatted.
//
// Run id: 16 bytes, written as 32 lowercase hex digits. Given as [run] id, or
// derived: the first 16 bytes of BLAKE2b-256("tern-run-id-v1" ||
// u32le(len(name)) || name || u64le(seed)).
//
// Plain value types and pure functions (load_run_config reads one file);
// thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/hash.h"
#include "core/status.h"
#include "model/config.h"
#include "net/identity.h"
#include "optim/demo.h"
#include "optim/schedule.h"
#include "swarm/coordinator.h"

namespace tern::swarm {

using RunId = std::array<uint8_t, 16>;

struct RunConfig {
  struct Run {
    std::string name;   // required: 1-64 of [A-Za-z0-9._-]
    RunId id{};         // [run] id, or derive_run_id(name, seed)
    uint64_t seed = 0;  // < 2^63 (TOML integers are signed 64-bit)
    bool operator==(const Run&) const = default;
  } run;

  struct Model {
    // Exactly one of preset (a preset_names() entry) and gguf (a file path).
    std::string preset;
    std::string gguf;
    // BLAKE2b-256 of the gguf file's bytes (what `b2sum -l 256 FILE` prints):
    // every member checks its copy against it, since members must start from
    // identical bits. Optional, gguf only; written as 64 lowercase hex digits.
    std::optional<Blake2bDigest> gguf_hash;
    int64_t vocab = 0;  // preset only: overrides the preset's vocabulary size (0: keep it)
    // LoRA fine-tuning: lora_rank > 0 enables it; 0 trains the full model.
    int64_t lora_rank = 0;
    double lora_alpha = 0.0;             // default 2 * lora_rank
    std::vector<LinearId> lora_targets;  // default q, k, v, o
    bool operator==(const Model&) const = default;
  } model;

  struct Data {
    // Exactly one of shards (a directory) and provider (an http(s) URL).
    std::string shards;
    std::string provider;
    // With provider: lowercase hex BLAKE2b-256 of its manifest (swarm/data_provider.h).
    std::string provider_hash;
    int64_t seq_len = 0;  // required; tokens per sequence
    bool operator==(const Data&) const = default;
  } data;

  struct Optimizer {
    int64_t chunk = 64;
    int64_t topk = 4;
    DemoValues values = DemoValues::kSign;
    double beta = 0.999;
    double lr = 0.0;      // required (peak learning rate)
    double min_lr = 0.0;  // default lr / 10
    ScheduleKind schedule = ScheduleKind::kCosine;
    int64_t warmup_steps = 0;
    double decay_fraction = 0.2;  // WSD only
    double weight_decay = 0.0;
    bool overlap = true;  // one-step-delayed overlap (optim/demo.h)
    bool operator==(const Optimizer&) const = default;
  } optimizer;

  struct Batch {
    uint32_t batches_per_round = 64;
    uint32_t sequences_per_batch = 8;
    bool operator==(const Batch&) const = default;
  } batch;

  struct Timing {
    uint64_t warmup_ms = 10'000;
    uint64_t round_train_ms = 60'000;
    uint64_t round_witness_ms = 10'000;
    uint64_t cooldown_ms = 5'000;
    bool operator==(const Timing&) const = default;
  } timing;

  struct Membership {
    uint32_t min_members = 1;
    uint32_t max_members = 64;
    uint32_t witnesses_per_round = 1;  // default min(3, min_members)
    uint32_t epochs = 1;
    uint32_t rounds_per_epoch = 10;
    uint64_t total_steps = 0;  // 0: epochs * rounds_per_epoch
    bool operator==(const Membership&) const = default;
  } membership;

  // [allowlist] members; nullopt (no [allowlist] section): anyone may join.
  std::optional<std::vector<net::NodeId>> allowlist;

  bool operator==(const RunConfig&) const = default;
};

// Parses and validates a run config. source_name prefixes every message
// (usually the file's path).
Result<RunConfig> parse_run_config(std::string_view toml_text, std::string_view source_name);
// Reads `path` (at most 1 MiB) and parses it with the path as source name.
Result<RunConfig> load_run_config(const std::string& path);

// `value` as a TOML basic string, quotes included (", \ and control
// characters escaped).
std::string toml_quote(std::string_view value);

// The canonical TOML text of a config (see above).
std::string to_toml(const RunConfig& config);
// BLAKE2b-256 of "tern-run-config-v1\n" + to_toml(config).
Blake2bDigest config_hash(const RunConfig& config);

RunId derive_run_id(std::string_view name, uint64_t seed);
std::string run_id_hex(const RunId& id);

// Steps in the whole run: total_steps, or epochs * rounds_per_epoch.
uint64_t effective_total_steps(const RunConfig& config);

// Conversions for the modules that consume the config. The config must come
// from parse_run_config (or be equally valid); the results then pass their
// own validate().
CoordinatorConfig to_coordinator_config(const RunConfig& config);
DemoConfig to_demo_config(const RunConfig& config);
LrSchedule to_lr_schedule(const RunConfig& config);
// The model config of a preset run, with [model] vocab applied; an error for
// a gguf run (whose config is in the file).
Result<ModelConfig> to_model_config(const RunConfig& config);
// nullopt when the run trains the full model (lora_rank == 0).
std::optional<LoraConfig> to_lora_config(const RunConfig& config);

}  // namespace tern::swarm
