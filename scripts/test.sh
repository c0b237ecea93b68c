#!/usr/bin/env bash
# Installs what tern needs, then builds and runs every test:
#   1. format check;
#   2. release build (-Werror) and the whole ctest suite (unit, parity,
#      gradcheck, learning; torch regeneration where python3-torch exists);
#   3. aarch64 cross build of the kernel and parity tests, run under qemu
#      (scripts/test_arm.sh: NEON and the scalar fallback);
#   4. ASan + UBSan build of the unit and kernel tests (every SIMD target the
#      machine runs), the CLI and the in-process swarm,
#      run under the sanitizers.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/check_format.sh
bash scripts/build.sh release
ctest --test-dir build/release --output-on-failure -j"$(nproc)"
bash scripts/test_arm.sh
bash scripts/build.sh asan tern_unit_tests tern_kernel_tests tern_parity_tests tern_demo_parity_tests tern_lora_memory_tests tern_net_tests tern_swarm_tests tern_swarm_ledger_tests tern_swarm_config_tests tern_swarm_data_tests tern_swarm_net_tests tern
ctest --test-dir build/asan -L 'unit|cli' --output-on-failure -j"$(nproc)"
# The in-process swarm (coordinator, members, rogue over the memory transport).
ctest --test-dir build/asan -R '^swarm_net\.' --output-on-failure
