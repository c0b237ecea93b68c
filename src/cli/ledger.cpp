// `tern ledger verify FILE`: checks a swarm coordinator's ledger from the file
// alone (swarm/ledger.h): hash chain, signatures, and a replay through the
// coordinator's state machine. Prints "ledger ok: N entries, state S, step K"
// (exit 0) or "ledger entry N: REASON" (exit 1); --json prints one JSON object
// instead. A file that cannot be checked at all (missing, not SQLite, not a
// ledger) is an error on stderr, exit 1.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/commands.h"
#include "net/identity.h"
#include "swarm/ledger.h"

namespace tern::cli {
namespace ledger_cmd {
namespace {

struct VerifyFlags {
  std::string path;
  std::string coordinator;
  bool json = false;
};

int run_verify(const VerifyFlags& flags) {
  swarm::VerifyOptions options;
  if (!flags.coordinator.empty()) {
    Result<net::NodeId> id = net::NodeId::parse(flags.coordinator);
    if (!id.ok()) return fail("ledger verify", id.status().with_context("--coordinator"));
    options.coordinator = id.value();
  }
  Result<swarm::VerifyReport> verified = swarm::verify_ledger(flags.path, options);
  if (!verified.ok()) {
    if (flags.json) {
      const nlohmann::json out = {{"ok", false}, {"error", verified.status().message()}};
      std::printf("%s\n", out.dump().c_str());
    }
    return fail("ledger verify", verified.status());
  }
  const swarm::VerifyReport& r = verified.value();
  if (flags.json) {
    nlohmann::json out = {
        {"ok", r.ok},
        {"entries", r.entries},
        {"coordinator", r.coordinator.to_string()},
        {"state", swarm::state_name(r.state)},
        {"epoch", r.epoch},
        {"step", r.step},
        {"snapshot_hash", to_hex(r.snapshot_hash)},
    };
    if (!r.ok) {
      out["failed_entry"] = *r.failed;
      out["reason"] = r.reason;
    }
    std::printf("%s\n", out.dump().c_str());
    return r.ok ? 0 : 1;
  }
  if (!r.ok) {
    std::fprintf(stderr, "ledger entry %llu: %s\n", static_cast<unsigned long long>(*r.failed),
                 r.reason.c_str());
    return 1;
  }
  std::printf("ledger ok: %llu entries, state %s, step %llu\n",
              static_cast<unsigned long long>(r.entries), swarm::state_name(r.state),
              static_cast<unsigned long long>(r.step));
  return 0;
}

}  // namespace
}  // namespace ledger_cmd

Command add_ledger_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand("ledger", "Check a swarm coordinator's ledger");
  app->require_subcommand(1);
  CLI::App* verify = app->add_subcommand(
      "verify", "Replay a ledger file and check its hash chain, signatures and snapshots");
  auto flags = std::make_shared<ledger_cmd::VerifyFlags>();
  verify->add_option("file", flags->path, "Ledger file (SQLite)")->required();
  verify->add_flag("--json", flags->json, "Print the result as one JSON object");
  verify->add_option("--coordinator", flags->coordinator,
                     "Require this coordinator node id (default: the key stored in the file)");
  return {app, [flags, verify]() -> int {
            if (verify->parsed()) return ledger_cmd::run_verify(*flags);
            return 1;
          }};
}

}  // namespace tern::cli
