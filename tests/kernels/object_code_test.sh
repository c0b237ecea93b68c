#!/usr/bin/env bash
# Checks on the kernels' object code that no unit test can make:
# 1. x86: VNNI only in its AVX-512 (EVEX) form. Highway 1.0's AVX3_DL target
#    runs on every AVX512-VNNI CPU, and Ice Lake, Tiger Lake and Zen 4 have no
#    AVX-VNNI, so a VEX-encoded vpdpbusd or vpdpwssd would be an illegal
#    instruction there.
# 2. The decode products' prefetches are there. x86: in the ternary and the
#    dense (head) kernels both policies' hints (prefetcht0 for AMD, prefetcht2
#    for the rest). aarch64: prfm in both. GCC deleted prefetch builtins in
#    some forms of the code (loops of them in a function it did not inline;
#    calls of a wrapper it left out of line; every one of the aarch64 ternary
#    decode), which changes no result and costs 10–30% of the decode bandwidth.
# Usage: object_code_test.sh path/to/libtern_kernels.a [objdump for its architecture]
set -uo pipefail
lib="$1"
objdump="${2:-objdump}"
if ! command -v "$objdump" > /dev/null; then
  echo "SKIP: $objdump not found"
  exit 77
fi
listing="$("$objdump" -d --no-show-raw-insn "$lib")" || { echo "FAIL: $objdump $lib"; exit 1; }

# Prints "object instruction count" for each object's instructions matching the
# awk pattern $1.
count_per_object() {
  awk -v pattern="$1" '/file format/ { member = $1 } $0 ~ pattern { n[member " " $2]++ }
                       END { for (m in n) print m, n[m] }' <<< "$listing"
}
# Fails unless each "object instruction" pair of $2... occurs at least $1 times
# in the counts on stdin.
require_per_object() {
  local minimum="$1" counts wanted object instruction found
  shift
  counts="$(cat)"
  for wanted in "$@"; do
    read -r object instruction <<< "$wanted"
    found="$(awk -v o="$object:" -v i="$instruction" '$1 == o && $2 == i { print $3 }' <<< "$counts")"
    if (( ${found:-0} < minimum )); then
      echo "FAIL: ${found:-0} $instruction in $object of $lib (its decode product has one per target)"
      exit 1
    fi
  done
  echo "$counts" | tr '\n' ' '
}

if grep -q 'file format elf64-littleaarch64' <<< "$listing"; then
  # One decode product per Arm target (NEON and the scalar fallback).
  found="$(count_per_object '\tprfm\t' |
           require_per_object 2 "ternary.cpp.o prfm" "blas.cpp.o prfm")" || { echo "$found"; exit 1; }
  echo "ok: decode prefetches per object: $found"
  exit 0
fi

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
found="$(count_per_object '\tprefetcht[0-2] ' |
         require_per_object 4 "ternary.cpp.o prefetcht0" "ternary.cpp.o prefetcht2" \
                              "blas.cpp.o prefetcht0" "blas.cpp.o prefetcht2")" ||
  { echo "$found"; exit 1; }
echo "ok: VNNI only in its EVEX form; decode prefetches per object: $found"
