#!/usr/bin/env bash
# Configures and builds tern. Usage: scripts/build.sh [release|asan]
#   release  optimized, warnings are errors           -> build/release
#   asan     AddressSanitizer + UBSan, warnings errors -> build/asan
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-release}"
case "$kind" in
  release) flags=(-DCMAKE_BUILD_TYPE=Release -DTERN_WERROR=ON) ;;
  asan) flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DTERN_WERROR=ON -DTERN_SANITIZE=ON) ;;
  *) echo "build.sh: unknown build kind '$kind' (expected release or asan)" >&2; exit 2 ;;
esac
cmake -S . -B "build/$kind" -G Ninja "${flags[@]}" > /dev/null
cmake --build "build/$kind" -- -j"$(nproc)"
