#!/usr/bin/env bash
# Swarm integration test: real `tern coordinator` and `tern join` processes on
# loopback. Usage: swarm_test.sh TERN SCENARIO, with SCENARIO one of
#   epochs       4 members train 3 epochs; a 5th started during the first
#                epoch joins at the second, loads the weights from its peers;
#                every final weight hash (and every checkpoint read back) is
#                the same, each epoch's checkpointer wrote its checkpoint once
#                and the validation loss falls
#   member_kill  kill -9 of a member in RoundTrain and of another in
#                RoundWitness: both dropped, their batches trained by others,
#                no batch lost, the run finishes
#   coordinator_kill  kill -9 of the coordinator mid-run, restart from its
#                ledger: the run finishes with no step lost or repeated and
#                `tern ledger verify` passes
#   leave        SIGTERM makes a member announce Leave: it is removed, not
#                dropped, and the others finish the run
#   allowlist    a key not on the allowlist cannot join
set -uo pipefail
tern="$1"
scenario="$2"
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2> /dev/null; done
  # SWARM_KEEP=DIR keeps the logs and files of the run for debugging.
  [[ -n "${SWARM_KEEP:-}" ]] && cp -r "$work" "$SWARM_KEEP"
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work" || exit 1
failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
ok() { echo "ok: $*"; }

# A small corpus, tokenizer and shards (the `tiny` preset with a 512 vocabulary).
for i in $(seq 1 400); do
  echo "line $i: the swarm trains one model together over ordinary links, round $((i % 17)) of epoch $((i % 5))."
  echo "members fetch updates as verified blobs and apply them in the same order, $((i * 7 % 13)) times."
done > corpus.txt
"$tern" tokenizer train --text corpus.txt --vocab-size 400 -o vocab.gguf > /dev/null || exit 1
"$tern" data prepare corpus.txt --vocab vocab.gguf -o shards --doc-per-line > /dev/null || exit 1
for k in coord a b c d e; do "$tern" keygen --out "$k.key" > /dev/null || exit 1; done

write_config() {  # write_config MIN_MEMBERS EPOCHS ROUNDS TRAIN_MS WITNESS_MS [ALLOWLIST...]
  cat > run.toml << EOF
[run]
name = "swarm-test"
seed = 11
[model]
preset = "tiny"
vocab = 512
[data]
shards = "shards"
seq_len = 64
[optimizer]
lr = 0.01
overlap = true
[batch]
batches_per_round = 8
sequences_per_batch = 4
[timing]
warmup_ms = 1500
round_train_ms = $4
round_witness_ms = $5
cooldown_ms = 500
[membership]
min_members = $1
max_members = 8
witnesses_per_round = $(($1 < 2 ? $1 : 2))
epochs = $2
rounds_per_epoch = $3
EOF
  shift 5
  if (($# > 0)); then
    echo "[allowlist]" >> run.toml
    local list=""
    for k in "$@"; do list+="\"$("$tern" keygen --show "$k.key")\", "; done
    echo "members = [${list%, }]" >> run.toml
  fi
}

start_coordinator() {  # start_coordinator [PORT]
  local before
  before="$(grep -c 'listening on' coord.err 2> /dev/null)"
  "$tern" coordinator --config run.toml --state run.db --key coord.key \
    --listen "127.0.0.1:${1:-0}" --linger-ms 1500 >> coord.out 2>> coord.err &
  coord_pid=$!
  pids+=("$coord_pid")
  for _ in $(seq 1 100); do
    if (($(grep -c 'listening on' coord.err) > ${before:-0})); then
      address="$(grep -o 'listening on [0-9.:]*' coord.err | tail -1 | cut -d' ' -f3)"
      return 0
    fi
    sleep 0.1
  done
  echo "coordinator did not start:"; cat coord.err; exit 1
}

start_member() {  # start_member KEY [extra flags]
  local k="$1"
  shift
  "$tern" join --config run.toml --coordinator "$address" --key "$k.key" \
    --checkpoint "$k.gguf" --connect-timeout-ms 5000 "$@" > "$k.out" 2> "$k.err" &
  member_pid[$k]=$!
  pids+=("${member_pid[$k]}")
}

wait_for() {  # wait_for REGEX FILE SECONDS
  for _ in $(seq 1 $(($3 * 20))); do
    grep -Eq -- "$1" "$2" && return 0
    sleep 0.05
  done
  echo "timed out waiting for /$1/ in $2:"; tail -20 "$2"; return 1
}

wait_for_new() {  # wait_for_new REGEX FILE SECONDS: like wait_for, on lines not yet written
  local seen
  seen="$(wc -l < "$2")"
  for _ in $(seq 1 $(($3 * 20))); do
    tail -n +"$((seen + 1))" "$2" | grep -Eq -- "$1" && return 0
    sleep 0.05
  done
  echo "timed out waiting for a new /$1/ in $2:"; tail -20 "$2"; return 1
}

json_field() { sed -n "s/.*\"$2\":\"\{0,1\}\([^\",}]*\).*/\1/p" "$1"; }

# Every given member exited 0 with the same weight hash, equal to its checkpoint's.
check_members() {
  local first=""
  for k in "$@"; do
    wait "${member_pid[$k]}" || { fail "member $k exited non-zero"; tail -5 "$k.err"; continue; }
    local hash checkpoint
    hash="$(json_field "$k.out" weight_hash)"
    checkpoint="$(json_field "$k.out" checkpoint_weight_hash)"
    [[ -n "$hash" && "$hash" == "$checkpoint" ]] || fail "member $k: checkpoint hash $checkpoint != $hash"
    [[ -z "$first" ]] && first="$hash"
    [[ "$hash" == "$first" ]] || fail "member $k: weight hash $hash differs from $first"
  done
  [[ -n "$first" ]] && ok "members $* hold identical weights ${first:0:16}, equal to their checkpoints"
}

check_schedule() {  # the run finished and trained exactly the schedule
  wait "$coord_pid" || fail "coordinator exited non-zero"
  local schedule=$(($1 * 8))
  grep -q "\"state\":\"Finished\"" coord.out || fail "run did not finish: $(cat coord.out)"
  local trained
  trained="$(json_field coord.out trained_batches | tail -1)"
  [[ "$trained" == "$schedule" ]] || fail "trained $trained batches, schedule is $schedule"
  [[ "$(json_field coord.out step | tail -1)" -ge "$1" ]] || fail "fewer steps than rounds"
  ok "run finished: $trained of $schedule scheduled batches trained"
}

declare -A member_pid
case "$scenario" in
  epochs)
    write_config 4 3 3 8000 3000
    start_coordinator
    for k in a b c d; do start_member $k --checkpoint-dir "ckpt-$k"; done
    wait_for "round 1 resolved" coord.err 60 || exit 1
    start_member e --checkpoint-dir ckpt-e  # during the first epoch: admitted at the second
    check_members a b c d e
    check_schedule 9
    [[ "$(json_field e.out synced_from_peers)" == "true" ]] || fail "late member did not load weights from peers"
    ok "late member e loaded the weights from its peers"
    # One checkpointer per epoch (a member dropped under load can add an
    # epoch for its re-queued batches: count to the coordinator's last).
    last_epoch="$(tail -1 coord.out | json_field /dev/stdin epoch)"
    for epoch in $(seq 0 "${last_epoch:-2}"); do
      n=$(ls ckpt-*/"epoch-$epoch.gguf" 2> /dev/null | wc -l)
      [[ "$n" == 1 ]] || fail "epoch $epoch has $n checkpoints (expected 1)"
    done
    last="$(ls ckpt-*/"epoch-${last_epoch:-2}.gguf" 2> /dev/null)"
    cmp -s "$last" a.gguf || fail "the last epoch's checkpoint $last differs from the final weights"
    ok "each epoch was checkpointed once; the last one holds the final weights"
    initial="$(json_field a.out initial_val_loss)"
    final="$(json_field a.out final_val_loss)"
    awk -v i="$initial" -v f="$final" 'BEGIN { exit !(f < i - 0.2) }' ||
      fail "validation loss did not fall: $initial -> $final"
    ok "validation loss fell: $initial -> $final"
    ;;
  member_kill)
    # Once all four are members (the first epoch starts with the first two to
    # join, the others are admitted at the next), c dies while training, then
    # d while witnessing.
    write_config 2 4 3 4000 2000
    start_coordinator
    for k in a b c d; do start_member $k; done
    wait_for "RoundTrain epoch [0-9]+ round [0-9]+ step [0-9]+ members 4" coord.err 60 || exit 1
    kill -9 "${member_pid[c]}"
    wait_for_new "RoundWitness epoch [0-9]+ round [0-9]+ step [0-9]+ members" coord.err 60 || exit 1
    kill -9 "${member_pid[d]}"
    check_members a b
    check_schedule 12
    c_id="$("$tern" keygen --show c.key | cut -c1-12)"
    d_id="$("$tern" keygen --show d.key | cut -c1-12)"
    grep -q "dropped:.*$c_id" coord.err || fail "killed member c was never dropped"
    grep -q "dropped:.*$d_id" coord.err || fail "killed member d was never dropped"
    ok "both killed members were dropped and their batches re-trained"
    ;;
  coordinator_kill)
    write_config 3 2 4 4000 2000
    start_coordinator
    port="${address##*:}"
    for k in a b c; do start_member $k; done
    wait_for "round 2 resolved" coord.err 60 || exit 1
    kill -9 "$coord_pid"
    sleep 0.5
    start_coordinator "$port"
    grep -q "restored from its ledger" coord.err || fail "coordinator did not restore from its ledger"
    check_members a b c
    check_schedule 8
    # Every member applied exactly the coordinator's steps (none lost or
    # repeated across the restart), and the ledger replays.
    steps="$(json_field coord.out step | tail -1)"
    for k in a b c; do
      [[ "$(json_field $k.out steps)" == "$steps" ]] ||
        fail "member $k applied $(json_field $k.out steps) steps, the coordinator counts $steps"
    done
    "$tern" ledger verify run.db > verify.out 2>&1 || fail "ledger verify: $(cat verify.out)"
    ok "restarted coordinator finished the run; members applied its $steps steps; ledger verifies"
    ;;
  leave)
    write_config 2 2 3 4000 2000
    start_coordinator
    for k in a b c; do start_member $k; done
    wait_for "RoundTrain epoch 0 round 1 " coord.err 60 || exit 1
    kill -TERM "${member_pid[c]}"
    wait "${member_pid[c]}" && fail "member c exited 0 after SIGTERM"
    grep -q "left the run" c.err || fail "member c did not say it left: $(tail -2 c.err)"
    check_members a b
    check_schedule 6
    c_id="$("$tern" keygen --show c.key | cut -c1-12)"
    grep -q "dropped:.*$c_id" coord.err && fail "member c was dropped instead of leaving"
    ok "SIGTERM: member c left the run gracefully (not dropped); the others finished it"
    ;;
  allowlist)
    write_config 1 1 1 4000 2000 coord a b
    start_coordinator
    start_member d
    wait "${member_pid[d]}" && fail "member d (not on the allowlist) exited 0"
    grep -q "allowlist" coord.err || fail "coordinator did not log the allowlist refusal"
    grep -q "linking to the coordinator" d.err || fail "member d's error does not say why: $(cat d.err)"
    ok "a key not on the allowlist cannot join"
    kill -9 "$coord_pid"
    ;;
  *)
    echo "unknown scenario $scenario"; exit 2 ;;
esac
if ((failures > 0)); then
  echo "coordinator log:"; tail -30 coord.err
  exit 1
fi
