#!/usr/bin/env bash
# Checks on the kernels' x86 object code that no unit test can make:
# 1. VNNI only in its AVX-512 (EVEX) form. Highway 1.0's AVX3_DL target runs on
#    every AVX512-VNNI CPU, and Ice Lake, Tiger Lake and Zen 4 have no AVX-VNNI,
#    so a VEX-encoded vpdpbusd or vpdpwssd would be an illegal instruction there.
# 2. The decode products' prefetches are there: in the ternary kernels both
#    policies' (prefetcht0 for AMD, prefetcht2 for the rest), in the dense
#    (head) kernels prefetcht2. GCC deleted prefetch builtins in some forms of
#    the code (loops of them in a function it did not inline; calls of a
#    wrapper it left out of line), which changes no result and costs 10–30% of
#    the decode bandwidth.
# Usage: object_code_test.sh path/to/libtern_kernels.a
set -uo pipefail
lib="$1"
if ! command -v objdump > /dev/null; then
  echo "SKIP: objdump not found"
  exit 77
fi
listing="$(objdump -d --no-show-raw-insn "$lib")" || { echo "FAIL: objdump $lib"; exit 1; }
vex="$(grep -E '\{vex\} *vpdp(bus|wss)ds?' <<< "$listing" | head -5)"
if [[ -n "$vex" ]]; then
  echo "FAIL: VEX-encoded VNNI in $lib:"
  echo "$vex"
  exit 1
fi
# Not vacuous: the AVX-512 tiles are in the library.
if ! grep -qE 'vpdpbusd .*zmm' <<< "$listing"; then
  echo "FAIL: no 512-bit vpdpbusd in $lib"
  exit 1
fi
# Each object with a decode product has it once per x86 target (SSE4, AVX2,
# AVX3, AVX3_DL), so at least four of each of its prefetches.
counts="$(awk '/file format/ { member = $1 } /prefetcht[0-2] / { n[member " " $2]++ }
               END { for (m in n) print m, n[m] }' <<< "$listing")"
for wanted in "ternary.cpp.o prefetcht0" "ternary.cpp.o prefetcht2" "blas.cpp.o prefetcht2"; do
  read -r object hint <<< "$wanted"
  prefetches="$(awk -v o="$object:" -v h="$hint" '$1 == o && $2 == h { print $3 }' <<< "$counts")"
  if (( ${prefetches:-0} < 4 )); then
    echo "FAIL: ${prefetches:-0} $hint in $object of $lib (its decode product has one per target)"
    exit 1
  fi
done
echo "ok: VNNI only in its EVEX form; decode prefetches per object: $(tr '\n' ' ' <<< "$counts")"
