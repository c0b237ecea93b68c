#!/usr/bin/env bash
# Checks `tern ledger verify`: a good ledger verifies (text and --json), a
# ledger with one flipped signature byte fails at that entry, and missing,
# non-SQLite and wrongly-pinned files fail with a message naming the problem.
# The sample ledgers come from the unit test binary (TERN_LEDGER_SAMPLE_DIR).
# Usage: ledger_test.sh path/to/tern path/to/tern_swarm_ledger_tests
set -uo pipefail
tern="$1"
samples="$2"
source "$(dirname "$0")/expect.sh"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT

TERN_LEDGER_SAMPLE_DIR="$dir" "$samples" --gtest_filter='swarm_ledger.ExportSamplesForCliTest' \
  > "$dir/samples.log" 2>&1 || { echo "FAIL: writing sample ledgers"; cat "$dir/samples.log"; exit 1; }

expect "ledger verify --help" 0 "Usage: .*verify" -- "$tern" ledger verify --help
expect "--help lists ledger" 0 "^ *ledger " -- "$tern" --help
expect "good ledger verifies" 0 "^ledger ok: 50 entries, state Finished, step 6$" -- \
  "$tern" ledger verify "$dir/sample.db"
expect "good ledger --json" 0 '"entries":50.*"ok":true' -- "$tern" ledger verify --json "$dir/sample.db"
expect "flipped byte fails at its entry" 1 "^ledger entry 20: signature does not verify" -- \
  "$tern" ledger verify "$dir/flipped.db"
expect "flipped byte --json" 1 '"failed_entry":20' -- "$tern" ledger verify --json "$dir/flipped.db"
expect "missing file" 1 "missing.db.*No such file" -- "$tern" ledger verify "$dir/missing.db"
printf 'not a database at all, only text\n%.0s' {1..20} > "$dir/text.db"
expect "not SQLite" 1 "text.db.*not a SQLite database" -- "$tern" ledger verify "$dir/text.db"
other="tern$(printf 'a%.0s' {1..52})"
expect "wrong pinned coordinator" 1 "expected $other" -- \
  "$tern" ledger verify --coordinator "$other" "$dir/sample.db"
expect "bad --coordinator" 1 "coordinator" -- "$tern" ledger verify --coordinator nope "$dir/sample.db"
expect "verify needs a file" 1 "file is required" -- "$tern" ledger verify

if [[ $failures -gt 0 ]]; then echo "$failures failure(s)"; exit 1; fi
echo "all ledger checks passed"
