#!/usr/bin/env bash
# Regenerates the golden files with PyTorch into a temp dir and runs the parity
# tests against them. Exit 77 (ctest: skipped) when python3-torch is missing.
set -euo pipefail
script="$1"
parity_binary="$2"
if ! /usr/bin/python3 -c 'import torch, numpy' 2>/dev/null; then
  echo "python3-torch not installed (scripts/setup.sh --with-torch): skipping regeneration"
  exit 77
fi
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 "$script" --out "$out"
TERN_GOLDEN_DIR="$out" "$parity_binary"
