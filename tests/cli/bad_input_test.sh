#!/usr/bin/env bash
# Bad input through the whole single-device pipeline: each case must fail with
# one clear error naming the file (and line or byte offset), and leave every
# previously saved file byte-identical. Usage: bad_input_test.sh path/to/tern
set -uo pipefail
tern="$1"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failures=0
cd "$work" || exit 1

expect_error() {  # expect_error <description> <regex> -- command...
  local what="$1" regex="$2"
  shift 3
  local out
  if out="$("$@" 2>&1)"; then
    echo "FAIL: $what: succeeded"; failures=$((failures + 1)); return
  fi
  if ! grep -Eq -- "$regex" <<< "$out"; then
    echo "FAIL: $what: error lacks /$regex/: $out"; failures=$((failures + 1)); return
  fi
  echo "ok: $what"
}
unchanged() {  # unchanged <description>: every saved file still has its checksum
  if ! sha256sum --quiet -c saved.sha256 > /dev/null 2>&1; then
    echo "FAIL: $1: a saved file changed"; failures=$((failures + 1))
  fi
}

# A vocabulary, shards and a model to protect.
for i in $(seq 1 300); do echo "Line $i of the training text: the quick brown fox jumps over the lazy dog."; echo; done > good.txt
"$tern" tokenizer train --text good.txt --vocab-size 300 -o vocab.gguf > /dev/null || exit 1
"$tern" tokenizer train --text good.txt --vocab-size 320 -o other-vocab.gguf > /dev/null || exit 1
"$tern" data prepare good.txt --vocab vocab.gguf -o shards > /dev/null || exit 1
"$tern" data prepare good.txt --vocab other-vocab.gguf -o other-shards > /dev/null || exit 1
"$tern" pretrain --shards shards --vocab vocab.gguf --preset tiny --steps 2 --batch 2 --seq 32 \
  --eval-batches 1 -o model.gguf > /dev/null || exit 1
"$tern" finetune --model model.gguf --shards shards --steps 1 --batch 2 --seq 32 --eval-batches 1 \
  -o adapter.gguf --merge merged.gguf > /dev/null || exit 1
# Every run that saves a model writes its report and metrics beside it.
for f in model.report.html model.metrics.jsonl adapter.report.html adapter.metrics.jsonl; do
  [[ -s "$f" ]] || { echo "FAIL: no $f"; exit 1; }
done
# The merged model is a plain model file with the tokenizer: it evaluates on its own.
"$tern" eval --model merged.gguf --text good.txt --seq 32 > /dev/null || { echo "FAIL: merged model"; exit 1; }
sha256sum shards/* model.gguf adapter.gguf vocab.gguf > saved.sha256

: > empty.txt
printf 'good text\n\0\1\2binary' > binary.txt
printf 'caf\xc3\xa9 ok\nbad \xff byte\n' > latin.txt
printf '{"text": "fine"}\n{"text": 42}\n' > wrong.jsonl
printf '{"text": "fine"}\nnot json at all\n' > broken.jsonl
expect_error "empty file" "empty.txt" -- "$tern" data prepare empty.txt --vocab vocab.gguf -o shards
expect_error "binary garbage" "binary.txt.*(offset|byte)" -- "$tern" data prepare binary.txt --vocab vocab.gguf -o shards
expect_error "invalid UTF-8" "latin.txt.*offset 13 \(line 2\)" -- "$tern" data prepare latin.txt --vocab vocab.gguf -o shards
expect_error "non-string text field" "wrong.jsonl.*line 2" -- "$tern" data prepare wrong.jsonl --vocab vocab.gguf -o shards
expect_error "malformed JSONL line" "broken.jsonl.*line 2" -- "$tern" data prepare broken.jsonl --vocab vocab.gguf -o shards
unchanged "failed prepares"

expect_error "tokenizer hash mismatch (finetune)" "other-shards.*tokenizer" -- \
  "$tern" finetune --model model.gguf --shards other-shards --steps 1 -o adapter.gguf
expect_error "tokenizer hash mismatch (pretrain)" "other-shards.*tokenizer" -- \
  "$tern" pretrain --shards other-shards --vocab vocab.gguf --steps 1 -o model.gguf
expect_error "tokenizer hash mismatch (eval)" "other-shards" -- \
  "$tern" eval --model model.gguf --shards other-shards
head -c 3000 model.gguf > truncated.gguf
expect_error "truncated GGUF" "truncated.gguf" -- "$tern" finetune --model truncated.gguf --shards shards --steps 1 -o adapter.gguf
expect_error "truncated GGUF (generate)" "truncated.gguf" -- "$tern" generate --model truncated.gguf --prompt hi
expect_error "missing GGUF" "missing.gguf" -- "$tern" eval --model missing.gguf --text good.txt
expect_error "truncated adapter" "truncated-adapter.gguf" -- \
  bash -c "head -c 100 adapter.gguf > truncated-adapter.gguf; \"$tern\" eval --model model.gguf --lora truncated-adapter.gguf --text good.txt"
head -c 20 shards/train.tokens > cut.tokens && cp -r shards cut-shards && cp cut.tokens cut-shards/train.tokens
expect_error "truncated shard" "cut-shards/train.tokens" -- "$tern" finetune --model model.gguf --shards cut-shards --steps 1 -o adapter.gguf
unchanged "failed runs"

# The data provider: a run config and the coordinator's id are checked before serving.
"$tern" keygen --out coordinator.key > coordinator.id 2>/dev/null || exit 1
coordinator_id=$(grep -o 'tern[a-z2-7]*' coordinator.id | head -1)
printf '[run]\nname = "bad"\n[model]\npreset = "tiny"\n[data]\nprovider = "http://127.0.0.1:1"\nseq_len = 32\n[optimizer]\nlr = 0.01\n' > no-hash.toml
expect_error "provider without provider_hash" "no-hash.toml.*provider_hash" -- \
  "$tern" data serve --dir shards --config no-hash.toml --coordinator-id "$coordinator_id" --listen 127.0.0.1:0
sed 's/^seq_len/provider_hash = "'"$(printf 'a%.0s' $(seq 64))"'"\nseq_len/' no-hash.toml > run.toml
expect_error "bad coordinator id" "coordinator-id" -- \
  "$tern" data serve --dir shards --config run.toml --coordinator-id nonsense --listen 127.0.0.1:0
expect_error "missing shard directory" "no-such-shards" -- \
  "$tern" data serve --dir no-such-shards --config run.toml --coordinator-id "$coordinator_id" --listen 127.0.0.1:0
expect_error "listen address without port" "--listen.*HOST:PORT" -- \
  "$tern" data serve --dir shards --config run.toml --coordinator-id "$coordinator_id" --listen localhost
unchanged "failed data serves"

echo "$failures failures"
[[ $failures -eq 0 ]]
