#!/usr/bin/env bash
# Cross-builds the kernel and model parity tests for aarch64 (Release, -Werror)
# in build/arm and runs them under qemu-user (`ctest -L arm`): the kernel tests
# check every Highway target compiled for Arm (NEON and the scalar fallback;
# qemu's `-cpu max` would also run SVE/SVE2) against the scalar references.
# Toolchain: cmake/aarch64-linux-gnu.cmake; packages: scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
flags=(-DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DTERN_ARM_SUBSET=ON
       -DCMAKE_BUILD_TYPE=Release -DTERN_WERROR=ON)
if command -v ccache > /dev/null; then
  flags+=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
fi
cmake -S . -B build/arm -G Ninja "${flags[@]}" > /dev/null
cmake --build build/arm --target tern_kernel_tests tern_parity_tests -- -j"$(nproc)"
echo "test_arm: $(qemu-aarch64 --version | head -1), -cpu max:"
qemu-aarch64 -cpu max build/arm/tests/tern_kernel_tests --gtest_filter=TernarySimdTest.ReportsTargets |
  grep 'attainable SIMD targets' || echo "test_arm: TernarySimdTest.ReportsTargets printed nothing"
ctest --test-dir build/arm -L arm --output-on-failure -j"$(nproc)"
