#!/usr/bin/env bash
# `make callgrind-check`: fails when instructions per proxied request (bench/callgrind.sh on
# target/release/pinlb) exceed the budget in bench/callgrind-budget, so that no change slows
# the hot path unnoticed. Prints the measured count, the budget and the margin.
#
#   bench/callgrind-check.sh [REQUESTS]     (default: callgrind.sh's 2000)
set -euo pipefail
cd "$(dirname "$0")/.."

budget=$(grep -v '^#' bench/callgrind-budget | tr -d ' ,_' | grep -E '^[0-9]+$' | head -1)
[ -n "$budget" ] || { echo "callgrind-check: no budget in bench/callgrind-budget" >&2; exit 1; }

out=$(timeout 20m bench/callgrind.sh "$@")
echo "$out"
measured=$(sed -n 's/^\([0-9]*\) instructions per request.*/\1/p' <<<"$out" | tail -1)
[ -n "$measured" ] || { echo "callgrind-check: callgrind.sh printed no count" >&2; exit 1; }

margin=$((budget - measured))
pct=$(python3 -c "print(f'{100 * $margin / $budget:+.1f}')")
echo "callgrind-check: measured $measured instructions per request, budget $budget, margin $margin ($pct% of the budget)"
if [ "$measured" -gt "$budget" ]; then
    echo "callgrind-check: FAILED: over budget by $((measured - budget)) instructions per request" >&2
    echo "callgrind-check: find the cost (callgrind_annotate on CALLGRIND_DIR=... bench/callgrind.sh) or, for a feature worth it, raise bench/callgrind-budget with the reason in the commit" >&2
    exit 1
fi
