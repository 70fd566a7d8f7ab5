#!/usr/bin/env bash
# Sets everything up, runs the whole test suite through real processes, and ends with one plain
# line "N passed, M failed" counted from ava's TAP output. Exits non-zero if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh || { echo "0 passed, 1 failed"; exit 1; }
npx buf lint protos || { echo "proto lint failed"; echo "0 passed, 1 failed"; exit 1; }

log=$(mktemp)
npx ava --tap "$@" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -cE '^ok [0-9]+' "$log")
failed=$(grep -cE '^not ok [0-9]+' "$log")
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # ava failed outside any test (a crashed worker, an uncaught exception, a timeout).
  failed=1
fi
rm -f "$log"
echo "${passed} passed, ${failed} failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
