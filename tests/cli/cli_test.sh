#!/usr/bin/env bash
# Checks the tern command line: help lists every subcommand, each subcommand has
# --help, and bad arguments fail with a message that names the bad value.
# Usage: cli_test.sh path/to/tern
set -uo pipefail
tern="$1"
source "$(dirname "$0")/expect.sh"


for sub in demo data pretrain finetune generate eval info tokenizer convert bench; do
  expect "--help lists $sub" 0 "^ *$sub " -- "$tern" --help
  expect "$sub --help" 0 "Usage: .*$sub" -- "$tern" "$sub" --help
done
expect "no subcommand is an error" 1 "subcommand" -- "$tern"
expect "unknown subcommand" 1 "frobnicate" -- "$tern" frobnicate
expect "unknown preset is named" 1 "unknown preset 'huge'" -- "$tern" info --preset huge
expect "preset as JSON" 0 '"hidden":64' -- "$tern" info --preset tiny
expect "preset table" 0 "bitnet-125m +ternary" -- "$tern" info
expect "zero steps rejected" 1 "steps = 0" -- "$tern" pretrain --steps 0
expect "bad schedule named" 1 "'linear'" -- "$tern" pretrain --schedule linear
expect "missing text file named" 1 "cannot open '/nonexistent/x.txt'" -- "$tern" pretrain --text /nonexistent/x.txt
expect "missing gcide dir named" 1 "/nonexistent" -- "$tern" demo --gcide-dir /nonexistent --out "$(mktemp -d)"
expect "bench memory smoke run" 0 '"reduction"' -- "$tern" bench memory --json --preset tiny --seq 64
expect "bench finetune smoke run" 0 '"tokens_per_s"' -- "$tern" bench finetune --json --preset tiny --seq 64 --steps 1 --warmup 0
# The defaults are tern finetune's: int8 input gradient, activations cached when they fit.
expect "bench finetune defaults" 0 '"activations_used":"cache.*"ternary_backward":"int8"' -- \
  "$tern" bench finetune --json --preset tiny --seq 64 --steps 1 --warmup 0
expect "bench finetune --activations recompute" 0 '"activations_used":"recompute' -- \
  "$tern" bench finetune --json --preset tiny --seq 64 --steps 1 --warmup 0 --activations recompute
expect "bad --activations named" 105 "--activations: sometimes not in" -- \
  "$tern" finetune --model m.gguf --shards s --activations sometimes
expect "bench needs a verb" 1 "subcommand" -- "$tern" bench
# One quick kernel benchmark: every summary key present, numbers positive.
kernels_out="$("$tern" bench kernels --quick --json 2>&1)"; kernels_rc=$?; kernels_bad=""
for key in ternary_vs_sgemm_t512 gemv_bw_fraction gemv_vs_stream_scale gemv_vs_read transposed_vs_forward threads nproc; do
  grep -Eq "\"$key\":[0-9.]*[1-9]" <<< "$kernels_out" || kernels_bad+=" $key"
done
for key in simd_target cpu; do grep -Eq "\"$key\":\"[^\"]+\"" <<< "$kernels_out" || kernels_bad+=" $key"; done
if [[ $kernels_rc -ne 0 || -n "$kernels_bad" ]]; then
  echo "FAIL: bench kernels smoke run: exit $kernels_rc, missing or not positive:$kernels_bad"
  echo "$kernels_out" | head -5; failures=$((failures + 1))
else
  echo "ok: bench kernels smoke run"
fi
# DeMo vs AdamW, quick: every summary key present, replicas identical.
if [[ -f /usr/share/dictd/gcide.index ]]; then
  demo_out="$("$tern" bench demo --quick --json 2>&1)"; demo_rc=$?; demo_bad=""
  for key in bytes_per_param_step dense_bytes_per_param_step loss_adamw loss_demo; do
    grep -Eq "\"$key\":[0-9.]*[1-9]" <<< "$demo_out" || demo_bad+=" $key"
  done
  grep -q '"loss_gap":' <<< "$demo_out" || demo_bad+=" loss_gap"
  if ! grep -q '"replicas_identical":true' <<< "$demo_out" || grep -q '"replicas_identical":false' <<< "$demo_out"; then
    demo_bad+=" replicas_identical"
  fi
  if [[ $demo_rc -ne 0 || -n "$demo_bad" ]]; then
    echo "FAIL: bench demo smoke run: exit $demo_rc, missing:$demo_bad"
    echo "$demo_out" | tail -3; failures=$((failures + 1))
  else
    echo "ok: bench demo smoke run"
  fi
  # Interleaved shards: other training text, so another AdamW loss, and every
  # token before the validation split dealt to some worker.
  inter_out="$("$tern" bench demo --quick --json --runs adamw --interleaved-shards 2>&1)"; inter_rc=$?
  loss_of() { grep -Eo '"loss_adamw":[0-9.e+-]+' <<< "$1"; }
  count_of() { grep -Eo "\"$1\":[0-9]+" <<< "$2" | cut -d: -f2; }
  inter_dealt=$(( $(count_of train_tokens "$inter_out") + $(count_of val_tokens "$inter_out") ))
  if [[ $inter_rc -ne 0 ]] || ! grep -q '"shards":"interleaved"' <<< "$inter_out" ||
     [[ -z "$(loss_of "$inter_out")" || "$(loss_of "$inter_out")" == "$(loss_of "$demo_out")" ]] ||
     [[ "$inter_dealt" != "$(count_of corpus_tokens "$inter_out")" ]]; then
    echo "FAIL: bench demo --interleaved-shards: exit $inter_rc, $(loss_of "$inter_out") vs $(loss_of "$demo_out"), $inter_dealt of $(count_of corpus_tokens "$inter_out") tokens dealt"
    echo "$inter_out" | tail -3; failures=$((failures + 1))
  else
    echo "ok: bench demo --interleaved-shards trains on other shards"
  fi
  # Two seeds: each run twice with its own seed, the summary from the means.
  seeds_out="$("$tern" bench demo --quick --json --seeds 2 --runs adamw,k4-sign 2>&1)"; seeds_rc=$?
  adamw_losses=($(tr '{' '\n' <<< "$seeds_out" | grep '"run":"adamw"' |
                  grep -Eo '"final_val_loss":[0-9.e+-]+' | cut -d: -f2))
  seeds_mean="$(grep -Eo '"loss_adamw":[0-9.e+-]+' <<< "$seeds_out" | cut -d: -f2)"
  per_seed="$(grep -Eo '"loss_gap_per_seed":\[[^]]*\]' <<< "$seeds_out")"
  if [[ $seeds_rc -ne 0 || ${#adamw_losses[@]} -ne 2 || "$(tr -cd , <<< "$per_seed")" != "," ]] ||
     [[ "${adamw_losses[0]}" == "${adamw_losses[1]}" ]] ||
     ! awk -v a="${adamw_losses[0]}" -v b="${adamw_losses[1]}" -v m="$seeds_mean" \
         'BEGIN { d = m - (a + b) / 2; exit !(d < 1e-9 && d > -1e-9) }'; then
    echo "FAIL: bench demo --seeds 2: exit $seeds_rc, AdamW ${adamw_losses[*]}, mean $seeds_mean, $per_seed"
    echo "$seeds_out" | tail -3; failures=$((failures + 1))
  else
    echo "ok: bench demo --seeds 2 averages two seeds"
  fi
else
  echo "skip: bench demo smoke run (dict-gcide not installed)"
fi
net_out="$("$tern" bench net --quick --json 2>&1)"; net_rc=$?; net_bad=""
for key in tcp_mb_per_s link_mb_per_s blob_mb_per_s link_vs_tcp; do
  grep -Eq "\"$key\":[0-9.]*[1-9]" <<< "$net_out" || net_bad+=" $key"
done
if [[ $net_rc -ne 0 || -n "$net_bad" ]]; then
  echo "FAIL: bench net smoke run: exit $net_rc, missing:$net_bad"
  echo "$net_out" | tail -3; failures=$((failures + 1))
else
  echo "ok: bench net smoke run"
fi
expect "bench net refuses a zero-size blob" 105 "blob-mb" -- "$tern" bench net --blob-mb 0
expect "bench demo names a bad run" 105 "k5-sign" -- "$tern" bench demo --runs adamw,k5-sign
expect "bench demo names a bad preset" 105 "bitnet-1b" -- "$tern" bench demo --preset bitnet-1b
expect "bench demo names a bad weight decay" 105 "demo-weight-decay" -- "$tern" bench demo --demo-weight-decay 1
expect "bench swarm refuses zero members" 1 "bench swarm: --members 0: must be 1 to 16" -- \
  "$tern" bench swarm --members 0 --json
"$tern" bench swarm --members 0 > /dev/null 2>&1
rc=$?; [[ $rc -eq 1 ]] || { echo "FAIL: bench swarm --members 0 exits $rc, not 1"; failures=$((failures + 1)); }
expect "bench swarm names a missing dictionary" 1 "/nonexistent/gcide.dict.dz.*setup.sh" -- \
  "$tern" bench swarm --gcide-dir /nonexistent --json
expect "data prepare needs a vocab" 1 "vocab" -- "$tern" data prepare /nonexistent/a.txt -o /tmp/x
expect "data info names a missing dir" 1 "/nonexistent/shards" -- "$tern" data info /nonexistent/shards
expect "generate needs a model" 1 "model" -- "$tern" generate --prompt hi
expect "generate missing model named" 1 "/nonexistent/m.gguf" -- "$tern" generate --model /nonexistent/m.gguf --prompt hi
expect "generate bad temperature named" 1 "-1" -- "$tern" generate --random-preset tiny --prompt-tokens 4 --temperature -1
expect "generate random preset speed" 0 '"decode_tokens_per_s"' -- "$tern" generate --random-preset tiny --prompt-tokens 8 --max-tokens 8 --json
expect "generate random preset with an F16 head" 0 '"f16":true' -- "$tern" generate --random-preset tiny --prompt-tokens 8 --max-tokens 8 --json --f16
expect "generate --f16 needs a random preset" 107 "random-preset" -- "$tern" generate --model /nonexistent/m.gguf --prompt hi --f16
expect "eval missing model named" 1 "/nonexistent/m.gguf" -- "$tern" eval --model /nonexistent/m.gguf --text /etc/hostname
expect "finetune needs a model" 1 "model" -- "$tern" finetune --shards /nonexistent
expect "finetune missing model named" 1 "/nonexistent/m.gguf" -- "$tern" finetune --model /nonexistent/m.gguf --shards /nonexistent/s -o /tmp/x.gguf
expect "finetune bad target named" 1 "'frob'" -- "$tern" finetune --model /nonexistent/m.gguf --shards /nonexistent/s -o /tmp/x.gguf --targets q,frob
expect "finetune needs an output" 1 "adapter" -- "$tern" finetune --model /nonexistent/m.gguf --shards /nonexistent/s
expect "pretrain shards need a vocab" 1 "--vocab" -- "$tern" pretrain --shards /nonexistent/s
expect "resume without checkpoint" 1 "checkpoint" -- "$tern" pretrain --steps 1 --resume --max-bytes 100000
expect "thread count range" 1 "threads" -- "$tern" --threads 0 info
expect "tokenizer needs a verb" 1 "subcommand is required" -- "$tern" tokenizer
expect "tokenizer encode needs a vocab" 1 "vocab" -- "$tern" tokenizer encode hello
expect "missing vocab file named" 1 "/nonexistent/v.gguf" -- "$tern" tokenizer encode --vocab /nonexistent/v.gguf hi
expect "tiny vocab size rejected" 1 "vocab size 10" -- "$tern" tokenizer train --vocab-size 10 -o /tmp/tern_cli_tok.gguf
expect "convert missing dir named" 1 "/nonexistent/hf" -- "$tern" convert /nonexistent/hf -o /tmp/tern_cli_x.gguf
expect "convert bad ternary type" 1 "tq3" -- "$tern" convert /tmp -o /tmp/x.gguf --ternary-type tq3
tmp="$(mktemp)"; printf 'tiny' > "$tmp"
expect "text too short for a window" 1 "cannot fill a window" -- "$tern" pretrain --text "$tmp" --steps 1
rm -f "$tmp"

# Swarm processes: bad configs, keys and ids are named before anything runs.
swarm_dir="$(mktemp -d)"
example="$(dirname "$0")/../../docs/examples/run.toml"
"$tern" keygen --out "$swarm_dir/k.key" > /dev/null
printf '[run]\nname = "x"\n[model]\npreset = "tiny"\n[data]\nshards = "s"\nseq_len = 0\n' > "$swarm_dir/bad.toml"
expect "coordinator missing config named" 1 "/nonexistent/run.toml" -- \
  "$tern" coordinator --config /nonexistent/run.toml --state "$swarm_dir/run.db" --key "$swarm_dir/k.key"
expect "coordinator bad config field named" 1 "\[data\] seq_len" -- \
  "$tern" coordinator --config "$swarm_dir/bad.toml" --state "$swarm_dir/run.db" --key "$swarm_dir/k.key"
expect "join missing key named" 1 "/nonexistent/m.key" -- \
  "$tern" join --config "$example" --coordinator 127.0.0.1:1 --key /nonexistent/m.key
expect "join bad coordinator id" 1 "coordinator-id" -- "$tern" join --config "$example" \
  --coordinator 127.0.0.1:1 --key "$swarm_dir/k.key" --coordinator-id nottern
expect "join needs a coordinator" 1 "coordinator" -- "$tern" join --config "$example" --key "$swarm_dir/k.key"
rm -rf "$swarm_dir"

echo "$failures failures"
[[ $failures -eq 0 ]]
