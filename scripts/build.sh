#!/usr/bin/env bash
# Configures and builds tern. Usage: scripts/build.sh [release|asan] [target...]
#   release  optimized, warnings are errors           -> build/release
#   asan     AddressSanitizer + UBSan at -Og (a third less compile time than
#            -O1), warnings errors -> build/asan
# With targets, builds only those (default: everything).
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-release}"
shift || true
case "$kind" in
  release) flags=(-DCMAKE_BUILD_TYPE=Release -DTERN_WERROR=ON) ;;
  asan) flags=(-DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-Og -g1" -DTERN_WERROR=ON
              -DTERN_SANITIZE=ON) ;;
  *) echo "build.sh: unknown build kind '$kind' (expected release or asan)" >&2; exit 2 ;;
esac
cmake -S . -B "build/$kind" -G Ninja "${flags[@]}" > /dev/null
targets=()
for t in "$@"; do targets+=(--target "$t"); done
cmake --build "build/$kind" "${targets[@]}" -- -j"$(nproc)"
