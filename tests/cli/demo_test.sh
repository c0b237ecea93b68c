#!/usr/bin/env bash
# `tern demo --quick` end to end: it must finish, fine-tuning must lower the
# held-out medical perplexity, every artifact must be written, and `tern eval`
# on the written base + adapter must reproduce the demo's figure exactly.
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
for f in tokenizer.gguf base.gguf medical-lora.gguf report.html pretrain-metrics.jsonl \
         finetune-metrics.jsonl general-shards/manifest.json medical-shards/manifest.json; do
  [[ -s "$work/demo/$f" ]] || fail "missing artifact $f"
done
grep -q "<svg" "$work/demo/report.html" || fail "report has no chart"

again="$("$tern" eval --model "$work/demo/base.gguf" --lora "$work/demo/medical-lora.gguf" \
  --shards "$work/demo/medical-shards" --seq 128 --batch 4 --json)" || fail "tern eval failed"
echo "eval: $again"
reproduced=$(grep -o '"perplexity":[0-9.e+-]*' <<< "$again" | cut -d: -f2)
awk -v x="$after" -v y="$reproduced" 'BEGIN { d = x - y; if (d < 0) d = -d; exit !(d <= 1e-9 * x) }' \
  || fail "tern eval gives $reproduced, the demo reported $after"
echo "ok: perplexity $before -> $after, reproduced from the files"
