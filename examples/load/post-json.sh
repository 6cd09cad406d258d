#!/usr/bin/env bash
# POST a JSON body from a file, templated per iteration, with headers and an expected status; the summary as JSON.
source "$(dirname "$0")/lib.sh"
start_target
"$MERIDIAN" load "$TARGET/orders?status=201" -m POST \
  -H 'Content-Type: application/json' -H 'Authorization: Bearer example-token' \
  --body @"$(dirname "$0")/order.json" --var customer=alice \
  --expect-status 201 --name create-order -n 200 -c 4 --quiet --json > "$workdir/summary.json"
# Every order must have succeeded with 201.
grep -q '"201": 200' "$workdir/summary.json"
grep -q '"failed": 0' "$workdir/summary.json"
echo "200 orders created"
