// Local swarm launcher: one swarm training run (docs/swarm.md) on this
// machine, as real processes on loopback: a `tern coordinator` and N
// `tern join` members, each a child process of the caller. For benchmarks
// (`tern bench swarm`), demos and tests.
//
// What run_local_swarm does, in order:
//  1. Creates `dir` and writes into it: coordinator.key and member-<i>.key
//     (i = 0..members-1; Ed25519 keys derived from `seed`, so the roster and
//     with it every data assignment repeat from run to run; these are test
//     keys, never use them for a real run) and run.toml (docs/run-config.md:
//     `[membership] min_members = max_members = members`, so the run starts
//     once all have joined, and every member stays in). Existing files of
//     those names and the ledger run.db are replaced.
//  2. Starts the coordinator on 127.0.0.1, port 0 (the kernel picks a free
//     one), reads the bound address from its "listening on" line, then starts
//     the members with that address and the coordinator's id pinned. With
//     data_server, run.toml names a provider on a loopback port picked
//     beforehand (its URL is part of the config), a `tern data serve` child
//     ("data-server") serves the shards there, the members start once it
//     listens too and read their batches from it, and it gets SIGTERM once
//     the coordinator and every member have exited.
//  3. Reads every child's stderr line by line (poll), appends it to
//     dir/<name>.log and hands it to on_event; each child's stdout goes to
//     dir/<name>.out. Names: "coordinator", "data-server", "member-0", ...
//  4. When every child has exited 0, parses the last line of each .out as
//     JSON (the reports `tern coordinator` / `tern join` print) and returns
//     them.
// Failure: a child exiting non-zero or killed by a signal, a missing or
// unparseable report, the coordinator not listening within `start_timeout_s`,
// or `time_limit_s` passing: every child still running gets SIGKILL, all are
// reaped, and the Status names the process (or, for the time limit, the ones
// still running) and ends with the tail of its log. No path out of
// run_local_swarm (errors, exceptions thrown by on_event) leaves a child
// running or unreaped, and each child also gets SIGKILL if the calling thread
// dies (PR_SET_PDEATHSIG). Linux only.
//
// Determinism: same options (and the same tern binary) give the same keys,
// config and schedule; whether the final weights repeat depends on the run
// going as planned (a member dropped under load changes who trains what).
//
// Thread-safety: blocks the calling thread until the run ends; on_event is
// called on that thread, for each child's lines in order. Concurrent calls
// with different `dir`s are independent (each waits only for its own children,
// by pid); do not set SIGCHLD to SIG_IGN in the process.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern::cli {

struct LocalSwarmOptions {
  std::string dir;             // working directory (created if missing)
  std::string shards;          // token shard directory (`tern data prepare`), given to every member
  std::string tern_exe;        // the tern binary to run; empty: this process's own (/proc/self/exe)
  int members = 3;             // 1..64
  int threads_per_member = 0;  // `tern --threads` of each member; 0: tern's default (all cores)

  // The run (run.toml). The model is a `[model] preset` trained from scratch.
  std::string name = "local-swarm";
  std::string preset = "small";
  int64_t vocab = 0;  // 0: the preset's; otherwise must cover the shards' tokenizer
  int64_t seq_len = 128;
  uint64_t epochs = 1;
  uint64_t rounds_per_epoch = 10;
  uint64_t batches_per_round = 6;
  int witnesses_per_round = 2;  // [membership]; at most `members` are elected
  uint64_t sequences_per_batch = 4;
  double lr = 0.01;
  bool overlap = true;  // [optimizer] overlap
  uint64_t seed = 1;    // [run] seed, and the keys

  // Members read their batches from a `tern data serve` child ([data]
  // provider, on a free loopback port) instead of the shards directly.
  bool data_server = false;

  uint64_t upload_cap = 0;  // every member's --upload-cap (bytes/s per link); 0: none
  std::string checkpoint;   // member 0 writes its final weights here (GGUF); empty: none

  // Coordinator phase timeouts ([timing]). Rounds end as soon as every trainer
  // and witness has reported, so the round timeouts only bound a failure.
  uint64_t warmup_ms = 1000;
  uint64_t round_train_ms = 120'000;
  uint64_t round_witness_ms = 60'000;
  uint64_t cooldown_ms = 300;
  uint64_t linger_ms = 1000;             // coordinator --linger-ms
  uint64_t connect_timeout_ms = 20'000;  // members' --connect-timeout-ms
  uint64_t start_timeout_s = 60;         // coordinator must be listening by then
  uint64_t time_limit_s = 600;           // the whole run
};

// One line a child wrote to stderr. For a member's per-round progress line
// ("join: round R epoch E step S members M loss L uploaded U B downloaded D B")
// `progress`
// is true and the fields after it are parsed from it.
struct LocalSwarmEvent {
  int member = -1;   // member index; -1: the coordinator; -2: the data server
  std::string name;  // "coordinator", "data-server", "member-<i>"
  std::string line;  // without the newline
  bool progress = false;
  uint64_t round = 0, epoch = 0, step = 0, members = 0, uploaded = 0, downloaded = 0;
  double loss = 0.0;  // NaN when the member trained nothing that round
};

struct LocalSwarmResult {
  nlohmann::json coordinator;           // `tern coordinator`'s final JSON
  nlohmann::json data_server;           // `tern data serve`'s final JSON (with data_server)
  std::vector<nlohmann::json> members;  // `tern join`'s final JSON, by member index
  std::string coordinator_address;      // host:port it listened on
  double wall_s = 0.0;                  // first spawn to last exit
  bool weight_hashes_equal = false;     // every member reported the same weight_hash
};

// Parses a `tern join` progress line into `event` (sets progress and the
// fields); false (event untouched) for any other line.
bool parse_join_progress(const std::string& line, LocalSwarmEvent& event);

Result<LocalSwarmResult> run_local_swarm(
    const LocalSwarmOptions& options,
    const std::function<void(const LocalSwarmEvent&)>& on_event = nullptr);

}  // namespace tern::cli
