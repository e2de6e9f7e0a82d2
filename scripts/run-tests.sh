#!/usr/bin/env bash
# Runs the test layers and prints one summary line: "N passed, N failed[, N skipped]".
#   host: unit (no privileges), BPF (BPF_PROG_TEST_RUN), integration (namespaces, cgroups)
#   vm:   the Vm* integration tests inside Debian's stock kernel under qemu (tests/vm/vm.sh)
# Options: --host-only, --vm-only. Logs go to build/test-logs/.
set -uo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
LOGS=$BUILD/test-logs
mkdir -p "$LOGS"
host=1 vm=1
case "${1:-}" in
  --host-only) vm=0 ;;
  --vm-only) host=0 ;;
esac
passed=0 failed=0 skipped=0

# Adds a gtest log's counts to the totals; prints the failures.
tally() {
  local log=$1 rc=$2 p f s
  p=$(grep -oP '^\[  PASSED  \] \K[0-9]+' "$log" | tail -1)
  f=$(grep -oP '^\[  FAILED  \] \K[0-9]+(?= tests?, listed below)' "$log" | tail -1)
  s=$(grep -oP '^\[  SKIPPED \] \K[0-9]+' "$log" | tail -1)
  p=${p:-0} f=${f:-0} s=${s:-0}
  if [[ $rc -ne 0 && $f -eq 0 ]]; then
    f=1  # crashed, timed out or never ran: count it
    echo "  $(basename "$log" .log): exited $rc without a gtest verdict; last lines:"
    tail -n 30 "$log" | sed 's/^/    /'
  elif [[ $f -gt 0 ]]; then
    grep -E '^\[  FAILED  \] [A-Za-z]' "$log" | sort -u | sed 's/^/  /'
    grep -B2 -A12 -E ': Failure$' "$log" | head -n 80 | sed 's/^/    /'
  fi
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  echo "  $(basename "$log" .log): $p passed, $f failed, $s skipped"
}

run_host() {
  local name=$1; shift
  echo "== $name"
  "$BUILD/$name" "$@" >"$LOGS/$name.log" 2>&1
  tally "$LOGS/$name.log" $?
}

if ((host)); then
  run_host unit_tests
  run_host bpf_tests
  run_host integration_tests --gtest_filter='-Vm*'
fi
if ((vm)); then
  echo "== vm_tests (Debian stock kernel under qemu)"
  tests/vm/vm.sh run --timeout 900 -- "$BUILD/integration_tests" --gtest_filter='Vm*:SockLab.*' >"$LOGS/vm_tests.log" 2>&1
  rc=$?
  tally "$LOGS/vm_tests.log" $rc
fi

# The dependency rule between the layers of user/ (docs/design.md).
if scripts/check-layers.sh; then
  passed=$((passed + 1))
else
  echo "  layer check: failed (above)"
  failed=$((failed + 1))
fi

# Nothing of ours may be left in the kernel after a run.
left=$(bpftool prog list 2>/dev/null | grep -c ' name tardy_' || true)
if [[ $left -ne 0 ]]; then
  echo "  leftover check: $left program(s) named tardy_* still loaded"
  failed=$((failed + 1))
else
  passed=$((passed + 1))
fi

line="$passed passed, $failed failed"
((skipped)) && line+=", $skipped skipped"
echo "$line"
((failed == 0))
