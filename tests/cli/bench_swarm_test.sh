#!/usr/bin/env bash
# `tern bench swarm --quick --json`: a real local swarm (coordinator + 3
# member processes on loopback) trains twice, uncapped and upload-capped. The
# summary must carry every key, the members must agree on the weights in both
# runs, and the measured quantities must be positive. Nothing here asserts on
# how fast it was. Skips (exit 77) without dict-gcide.
# Usage: bench_swarm_test.sh path/to/tern
set -uo pipefail
tern="$1"
if [[ ! -f /usr/share/dictd/gcide.dict.dz ]]; then
  echo "skipped: dict-gcide is not installed (run scripts/setup.sh)"; exit 77
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$tern" bench swarm --quick --json --out "$work/bench" > "$work/out.json" 2> "$work/err.log"
rc=$?
if [[ $rc -ne 0 ]]; then
  tail -30 "$work/err.log"
  for log in "$work"/bench/*/*.log; do echo "--- $log"; tail -5 "$log"; done
  fail "tern bench swarm --quick exited $rc"
fi
summary="$(tail -n 1 "$work/out.json")"
echo "bench swarm: $summary"
missing=""
for key in step_s_uncapped step_s_capped overlap_slowdown upload_bytes_per_param_step \
           upload_cap_bytes_per_s update_bytes_per_round train_s update_send_s members rounds \
           params weight_hashes_equal final_val_loss; do
  grep -q "\"$key\":" <<< "$summary" || missing+=" $key"
done
[[ -z "$missing" ]] || fail "summary lacks:$missing"
grep -q '"weight_hashes_equal":true' <<< "$summary" || fail "members disagree on the weights"
for key in upload_bytes_per_param_step overlap_slowdown step_s_uncapped step_s_capped \
           upload_cap_bytes_per_s; do
  grep -Eq "\"$key\":[0-9.]*[1-9]" <<< "$summary" || fail "$key is not positive"
done
# Every process left a log, and the members' reports are where the launcher put them.
for name in coordinator member-0 member-1 member-2; do
  for run in uncapped capped; do
    [[ -s "$work/bench/$run/$name.log" ]] || fail "no log $run/$name.log"
    grep -q '"weight_hash"\|"round_s_mean"' "$work/bench/$run/$name.out" || fail "no report in $run/$name.out"
  done
done
echo "ok: local swarm bench ran both runs and the members agree"

# The launcher's failure paths, through a wrapper the children run instead of
# tern (hidden --tern): the run must stop with an error naming the process and
# quoting its log, and no child may outlive `tern bench swarm`.
cat > "$work/wrapper.sh" << 'EOF2'
#!/usr/bin/env bash
# member-1 fails at once (mode fail) or never reaches the coordinator (mode hang).
args=("$@")
for a in "$@"; do
  if [[ "$a" == */member-1.key ]]; then
    [[ "$WRAPPER_MODE" == fail ]] && { echo "wrapper: member-1 fails on purpose" >&2; exit 3; }
    for i in "${!args[@]}"; do [[ "${args[$i]}" == --coordinator ]] && args[$((i + 1))]=127.0.0.1:1; done
  fi
done
exec "$WRAPPER_TERN" "${args[@]}"
EOF2
chmod +x "$work/wrapper.sh"
no_children() {  # no process still runs with the scenario's directory on its command line
  sleep 0.5
  if pgrep -f "$1" > /dev/null; then pgrep -af "$1"; fail "$2: children outlived tern bench swarm"; fi
}
out="$(WRAPPER_MODE=fail WRAPPER_TERN="$tern" "$tern" bench swarm --quick --json --out "$work/fail" \
  --tern "$work/wrapper.sh" 2>&1)"
rc=$?
[[ $rc -eq 1 ]] || fail "a failing member: exit $rc, not 1: $out"
grep -q "member-1 (pid [0-9]*) exited with status 3" <<< "$out" || fail "a failing member is not named: $out"
grep -q "member-1 fails on purpose" <<< "$out" || fail "the failing member's log is not quoted: $out"
no_children "$work/fail" "a failing member"
echo "ok: a failing member stops the run, named with its log"
out="$(WRAPPER_MODE=hang WRAPPER_TERN="$tern" "$tern" bench swarm --quick --json --out "$work/hang" \
  --tern "$work/wrapper.sh" --time-limit-s 8 2>&1)"
rc=$?
[[ $rc -eq 1 ]] || fail "a stuck run: exit $rc, not 1: $out"
grep -q "time limit of 8 s passed; still running: coordinator, member-0, member-1, member-2" <<< "$out" \
  || fail "the time limit is not reported: $out"
no_children "$work/hang" "a stuck run"
echo "ok: the time limit stops a stuck run and kills every process"
