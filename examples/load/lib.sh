# Shared by the example scripts: find the binary, start a target on a free port, stop it on exit.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ -z "${MERIDIAN:-}" ]; then
  if [ -x "$root/build/release/meridian" ]; then MERIDIAN=$root/build/release/meridian; else MERIDIAN=meridian; fi
fi
DURATION=${DURATION:-10s}
workdir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$workdir"' EXIT

# start_target ARGS... → sets TARGET (http://127.0.0.1:PORT)
start_target() {
  "$MERIDIAN" target --listen 127.0.0.1:0 --threads 1 "$@" >"$workdir/target.out" 2>"$workdir/target.err" &
  for _ in $(seq 200); do
    TARGET=$(grep -o 'http://[0-9.:]*' "$workdir/target.out" 2>/dev/null || true)
    [ -n "$TARGET" ] && return 0
    sleep 0.05
  done
  echo "the target did not start: $(cat "$workdir/target.err")" >&2
  return 1
}
