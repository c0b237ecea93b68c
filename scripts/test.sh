#!/usr/bin/env bash
# Installs what tern needs, then builds and runs every test:
#   1. format check;
#   2. release build (-Werror) and the whole ctest suite (unit, parity,
#      gradcheck, learning; torch regeneration where python3-torch exists);
#   3. ASan + UBSan build and the unit-labelled tests under it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/check_format.sh
bash scripts/build.sh release
ctest --test-dir build/release --output-on-failure -j"$(nproc)"
bash scripts/build.sh asan
ctest --test-dir build/asan -L unit --output-on-failure -j"$(nproc)"
