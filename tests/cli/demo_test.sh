#!/usr/bin/env bash
# `tern demo --quick` end to end: it must finish, the swarm's 3 members must
# end with identical weights having uploaded their updates, fine-tuning must
# lower the held-out medical perplexity, every artifact must be written, and
# `tern eval` on the written base + adapter must reproduce the demo's figure
# exactly.
# Skips (exit 77) without dict-gcide. Usage: demo_test.sh path/to/tern
set -uo pipefail
tern="$1"
if [[ ! -f /usr/share/dictd/gcide.dict.dz ]]; then
  echo "skipped: dict-gcide is not installed (run scripts/setup.sh)"; exit 77
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

summary="$("$tern" demo --quick --json --out "$work/demo" | tail -n 1)" || fail "tern demo --quick failed"
echo "demo: $summary"
before=$(grep -o '"perplexity_before":[0-9.e+-]*' <<< "$summary" | cut -d: -f2)
after=$(grep -o '"perplexity_after":[0-9.e+-]*' <<< "$summary" | cut -d: -f2)
[[ -n "$before" && -n "$after" ]] || fail "summary lacks perplexities"
awk -v b="$before" -v a="$after" 'BEGIN { exit !(a < b) }' || fail "perplexity did not fall ($before -> $after)"
grep -q '"weight_hashes_equal":true' <<< "$summary" || fail "swarm members' weights differ"
grep -q '"members":3' <<< "$summary" || fail "summary lacks members: 3"
rounds=$(grep -o '"rounds":[0-9]*' <<< "$summary" | cut -d: -f2)
[[ "${rounds:-0}" -ge 2 ]] || fail "swarm ran ${rounds:-no} rounds"
upload=$(grep -o '"upload_bytes_per_param_step":[0-9.e+-]*' <<< "$summary" | cut -d: -f2)
awk -v u="$upload" 'BEGIN { exit !(u > 0 && u < 1) }' || fail "implausible upload figure '$upload'"
loss=$(grep -o '"final_val_loss":[0-9.e+-]*' <<< "$summary" | cut -d: -f2)
awk -v l="$loss" 'BEGIN { exit !(l > 0 && l < log(512)) }' || fail "swarm validation loss '$loss' not below chance"
# The members read their batches from the data server, which refused none of their requests.
served=$(grep -o '"data_bytes_served":[0-9]*' <<< "$summary" | cut -d: -f2)
[[ "${served:-0}" -gt 0 ]] || fail "the data server served ${served:-no} bytes"
grep -q '"refused":0' "$work/demo/swarm/data-server.out" || fail "the data server refused requests"
grep -q '"data_bytes_received":[1-9]' "$work/demo/swarm/member-0.out" ||
  fail "member 0 received nothing from the data server"
for f in tokenizer.gguf base.gguf medical-lora.gguf report.html swarm-metrics.jsonl \
         finetune-metrics.jsonl general-shards/manifest.json medical-shards/manifest.json \
         swarm/run.toml swarm/run.db swarm/checkpoint.gguf swarm/member-0.log \
         swarm/data-server.log; do
  [[ -s "$work/demo/$f" ]] || fail "missing artifact $f"
done
grep -q "<svg" "$work/demo/report.html" || fail "report has no chart"
grep -q "Swarm pretraining: training loss per round" "$work/demo/report.html" || fail "report has no swarm chart"
"$tern" ledger verify "$work/demo/swarm/run.db" > /dev/null || fail "the swarm's ledger does not verify"

again="$("$tern" eval --model "$work/demo/base.gguf" --lora "$work/demo/medical-lora.gguf" \
  --shards "$work/demo/medical-shards" --seq 128 --batch 4 --json)" || fail "tern eval failed"
echo "eval: $again"
reproduced=$(grep -o '"perplexity":[0-9.e+-]*' <<< "$again" | cut -d: -f2)
awk -v x="$after" -v y="$reproduced" 'BEGIN { d = x - y; if (d < 0) d = -d; exit !(d <= 1e-9 * x) }' \
  || fail "tern eval gives $reproduced, the demo reported $after"
echo "ok: perplexity $before -> $after, reproduced from the files"
