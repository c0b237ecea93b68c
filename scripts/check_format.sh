#!/usr/bin/env bash
# Fails if any C++ file differs from what clang-format (.clang-format) would write.
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.h' '*.cpp')
if ! clang-format --dry-run --Werror "${files[@]}"; then
  echo "format check failed: run 'clang-format -i \$(git ls-files \"*.h\" \"*.cpp\")'" >&2
  exit 1
fi
echo "format check: ${#files[@]} files clean"
