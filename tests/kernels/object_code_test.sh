#!/usr/bin/env bash
# Checks on the kernels' x86 object code that no unit test can make:
# 1. VNNI only in its AVX-512 (EVEX) form. Highway 1.0's AVX3_DL target runs on
#    every AVX512-VNNI CPU, and Ice Lake, Tiger Lake and Zen 4 have no AVX-VNNI,
#    so a VEX-encoded vpdpbusd or vpdpwssd would be an illegal instruction there.
# 2. The decode product's prefetches (prefetcht2) are there. GCC deletes a loop of
#    prefetches in some forms of the code (seen with a run-time distance), which
#    changes no result and costs about 30% of the decode bandwidth.
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
# One decode product per x86 target (SSE4, AVX2, AVX3, AVX3_DL).
prefetches="$(grep -cE 'prefetcht2 ' <<< "$listing")"
if (( prefetches < 4 )); then
  echo "FAIL: $prefetches prefetcht2 in $lib (the decode products have one each)"
  exit 1
fi
echo "ok: VNNI only in its EVEX form, $prefetches decode prefetches in $lib"
