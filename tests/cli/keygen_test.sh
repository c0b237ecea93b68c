#!/usr/bin/env bash
# Checks `tern keygen`: creating a key file (mode 0600) prints its node id,
# --show prints the same id, an existing file is never overwritten, and loose
# permissions or a garbage file fail with a message naming the problem.
# Usage: keygen_test.sh path/to/tern
set -uo pipefail
tern="$1"
source "$(dirname "$0")/expect.sh"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT


key="$dir/node.key"
id_pattern='^tern[a-z2-7]{52}$'
expect "keygen --help" 0 "Usage: .*keygen" -- "$tern" keygen --help
expect "--help lists keygen" 0 "^ *keygen " -- "$tern" --help
expect "create prints the node id" 0 "$id_pattern" -- "$tern" keygen --out "$key"
mode="$(stat -c %a "$key")"
if [[ "$mode" == 600 ]]; then echo "ok: key file mode 600"; else
  echo "FAIL: key file mode is $mode, expected 600"; failures=$((failures + 1)); fi
created_id="$(head -1 < <(grep -E '^id ' "$key") | cut -d' ' -f2)"
expect "show prints the same id" 0 "^${created_id}\$" -- "$tern" keygen --show "$key"
before="$(cat "$key")"
expect "refuses to overwrite" 1 "exists" -- "$tern" keygen --out "$key"
if [[ "$(cat "$key")" == "$before" ]]; then echo "ok: existing key untouched"; else
  echo "FAIL: existing key was modified"; failures=$((failures + 1)); fi
expect "needs --out or --show" 1 "--out FILE or --show FILE" -- "$tern" keygen
expect "--out and --show exclude each other" 1 "excludes" -- "$tern" keygen --out "$dir/x" --show "$key"
chmod 644 "$key"
expect "refuses chmod 644" 1 "mode 0644.*chmod 600 $key" -- "$tern" keygen --show "$key"
chmod 600 "$key"
printf 'not a key\n' > "$dir/garbage.key"; chmod 600 "$dir/garbage.key"
expect "garbage file" 1 "garbage.key.*not a tern key file" -- "$tern" keygen --show "$dir/garbage.key"
expect "missing file" 1 "missing.key" -- "$tern" keygen --show "$dir/missing.key"
two="$("$tern" keygen --out "$dir/other.key" 2>&1)"
if [[ "$two" != "$created_id" ]]; then echo "ok: a second key has another id"; else
  echo "FAIL: two keys share an id"; failures=$((failures + 1)); fi

if [[ $failures -gt 0 ]]; then echo "$failures failure(s)"; exit 1; fi
echo "all keygen checks passed"
