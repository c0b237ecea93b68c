# Shared by the command-line test scripts (source it): `expect` runs a command
# and checks its exit status and output, counting failures in $failures.
failures=0

expect() {  # expect <description> <expected exit: 0|nonzero> <regex> -- command...
  local what="$1" want="$2" regex="$3"
  shift 4
  local out rc
  out="$("$@" 2>&1)"
  rc=$?
  if [[ "$want" == 0 && $rc -ne 0 ]] || [[ "$want" != 0 && $rc -eq 0 ]]; then
    echo "FAIL: $what: exit $rc"; echo "$out" | head -20; failures=$((failures + 1)); return
  fi
  if ! grep -Eq -- "$regex" <<< "$out"; then
    echo "FAIL: $what: output lacks /$regex/"; echo "$out" | head -20; failures=$((failures + 1)); return
  fi
  echo "ok: $what"
}
