#!/usr/bin/env bash
# A server that stops answering for a while, measured twice. The closed model (like wrk) stops sending while it
# waits, so the stall is recorded once per connection and barely moves p99. The open model keeps the schedule and
# times each request from when it was due, so every request that waited counts.
source "$(dirname "$0")/lib.sh"
secs=${DURATION%s}
pause_at=$(awk -v d="$secs" 'BEGIN { printf "%gms", d * 400 }')   # at 40 % of the run
pause_for=$(awk -v d="$secs" 'BEGIN { printf "%gms", d * 100 }')  # for 10 % of it
start_target --pause-at "$pause_at" --pause-for "$pause_for"
echo "--- closed model, 10 connections"
"$MERIDIAN" load "$TARGET/" -c 10 -d "$DURATION" --quiet --json > "$workdir/closed.json"
kill %1 && wait %1 2>/dev/null || true
start_target --pause-at "$pause_at" --pause-for "$pause_for"
echo "--- open model, 1,000 requests/s"
"$MERIDIAN" load "$TARGET/" --rate 1000 -d "$DURATION" -c 10 --quiet --json > "$workdir/open.json"
for model in closed open; do
  awk -v m="$model" '/"latency_ms"/ {on=1} on && /"p99"/ {gsub(/[,]/,""); print m " model p99: " $2 " ms"; exit}' \
    "$workdir/$model.json"
done
