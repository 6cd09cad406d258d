#!/usr/bin/env bash
# `make demo`'s script runs to the end, and nothing it started outlives it: every process it started carries a
# marker in its environment, and after the demo no process with that marker may be left (its targets were once
# started inside $(...), out of the EXIT trap's sight, and kept running).
# Usage: tests/scripts/demo_leaves_nothing.sh   (MERIDIAN=the binary to use)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
marker="MERIDIAN_DEMO_TEST=$$-$RANDOM-$RANDOM"
left() {  # the pids of processes whose environment holds the marker
  for e in /proc/[0-9]*/environ; do
    if { tr '\0' '\n' <"$e"; } 2>/dev/null | grep -qxF "$marker"; then  # (processes come and go)
      p=${e#/proc/}; echo "${p%/environ}"
    fi
  done
}
status=0
env "$marker" "$root/scripts/demo" >"${TMPDIR:-/tmp}/demo-test.$$.out" 2>&1 || status=$?
tail -25 "${TMPDIR:-/tmp}/demo-test.$$.out"
rm -f "${TMPDIR:-/tmp}/demo-test.$$.out"
[ "$status" -eq 0 ] || { echo "FAIL: scripts/demo exited $status"; exit 1; }
# Stopping takes a moment; anything still there after five seconds was never going to stop.
for _ in $(seq 50); do
  [ -z "$(left)" ] && { echo "OK: the demo ran and left no process behind"; exit 0; }
  sleep 0.1
done
pids=$(left)
echo "FAIL: the demo left these processes running:"
for p in $pids; do echo "  $p: $(tr '\0' ' ' <"/proc/$p/cmdline" 2>/dev/null)"; done
kill $pids 2>/dev/null || true
exit 1
