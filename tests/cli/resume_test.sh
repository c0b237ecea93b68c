#!/usr/bin/env bash
# Resume after a crash: `tern pretrain` killed with SIGKILL mid-training (and,
# separately, stopped with Ctrl-C/SIGINT) and then resumed with --resume must
# end with the same loss trajectory and a byte-identical model file as an
# uninterrupted run. Usage: resume_test.sh path/to/tern
set -uo pipefail
tern="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A small repetitive corpus the tiny preset learns quickly; 40 steps of 8x64.
for i in $(seq 1 400); do echo "the $i-th fox jumps over the lazy dog; pack my box with five dozen jugs."; done > "$work/text.txt"
common=(pretrain --text "$work/text.txt" --preset tiny --steps 40 --batch 8 --seq 64
        --eval-every 10 --seed 5 --checkpoint-every 5 --log-every 100)

fail() { echo "FAIL: $*"; exit 1; }

"$tern" "${common[@]}" --checkpoint "$work/a.ckpt" --metrics "$work/a.jsonl" -o "$work/a.gguf" > /dev/null \
  || fail "uninterrupted run"

losses() {  # step losses and validation losses of a metrics log, in order
  grep -v '"event":"checkpoint"' "$1" | grep -o '"\(loss\|val_loss\)":[^,}]*\|"step":[0-9]*' | paste -sd' '
}

# Waits until the run's metrics log shows step 12: past the checkpoint at step
# 10, so the resumed run must recompute the steps after it.
wait_for_step_12() {
  for _ in $(seq 1 1200); do
    if grep -q '"event":"step".*"step":12[,}]' "$1" 2>/dev/null; then return 0; fi
    sleep 0.05
  done
  return 1
}

for sig in KILL INT; do
  rm -f "$work/b.ckpt" "$work/b.jsonl" "$work/b.gguf"
  "$tern" "${common[@]}" --checkpoint "$work/b.ckpt" --metrics "$work/b.jsonl" -o "$work/b.gguf" > /dev/null &
  pid=$!
  wait_for_step_12 "$work/b.jsonl" || { kill -9 $pid; fail "$sig: step 12 never came"; }
  kill -s "$sig" $pid
  wait $pid
  rc=$?
  [[ -f "$work/b.gguf" ]] && fail "$sig: the run finished before the signal (model written); test inconclusive"
  steps_before=$(grep -c '"event":"step"' "$work/b.jsonl")
  echo "ok: SIG$sig after $steps_before of 40 steps (exit $rc)"
  if [[ "$sig" == INT ]]; then
    [[ $rc -eq 130 ]] || fail "SIGINT: expected exit 130 after saving, got $rc"
  fi
  "$tern" "${common[@]}" --checkpoint "$work/b.ckpt" --metrics "$work/b.jsonl" -o "$work/b.gguf" --resume > /dev/null \
    || fail "$sig: resumed run"
  cmp -s "$work/a.gguf" "$work/b.gguf" || fail "$sig: resumed model differs from the uninterrupted one"
  [[ "$(losses "$work/a.jsonl")" == "$(losses "$work/b.jsonl")" ]] || fail "$sig: loss trajectories differ"
  echo "ok: SIG$sig + --resume: model file and loss trajectory identical"
done

# A corrupt checkpoint is refused, named, and left as it was.
printf 'garbage' > "$work/bad.ckpt"
out="$("$tern" "${common[@]}" --checkpoint "$work/bad.ckpt" --resume 2>&1)" && fail "corrupt checkpoint accepted"
grep -q "bad.ckpt" <<< "$out" || fail "corrupt checkpoint error does not name the file: $out"
[[ "$(cat "$work/bad.ckpt")" == garbage ]] || fail "corrupt checkpoint was modified"
echo "ok: corrupt checkpoint refused"
