#!/usr/bin/env bash
# Open model: iterations start on a schedule, whatever the server does; latency is timed from the schedule.
source "$(dirname "$0")/lib.sh"
start_target --latency 2ms
# 500 requests per second for DURATION, starting with 10 VUs and allocating up to 200 when needed.
"$MERIDIAN" load "$TARGET/" --rate 500 -d "$DURATION" -c 10 --max-vus 200
# A ramp of arrival rates: from 0 to 1,000/s over the first half, back down over the second.
half=$(awk -v d="${DURATION%s}" 'BEGIN { printf "%gs", d / 2 }')
"$MERIDIAN" load "$TARGET/" --rate 0 --stages "$half:1000,$half:0" -c 10
