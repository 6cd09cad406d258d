#!/usr/bin/env bash
# Closed model: 20 VUs, each sending its next request when the previous one completed (wrk's and ab's model).
source "$(dirname "$0")/lib.sh"
start_target --latency 1ms-3ms
"$MERIDIAN" load "$TARGET/" -c 20 -d "$DURATION"
