#!/usr/bin/env bash
# Runs every tests/integration/t_*.sh with one shared scratch folder and data
# set; each prints ok/FAIL lines and "passed failed" counts on its last line.
set -u
here=$(cd "$(dirname "$0")" && pwd)
export WORK
WORK=$(mktemp -d /tmp/dtrain-it.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
source "$here/lib.sh"
ensure_data || { echo "integration: cannot prepare test data"; exit 1; }
total_p=0
total_f=0
# DTRAIN_TESTS="t_vae t_cyclegan": only those scripts (default: all)
for t in "$here"/t_*.sh; do
    if [ -n "${DTRAIN_TESTS:-}" ] && [[ " $DTRAIN_TESTS " != *" $(basename "$t" .sh) "* ]]; then continue; fi
    echo "== $(basename "$t")"
    log="$WORK/$(basename "$t" .sh).log"
    bash "$t" >"$log" 2>&1
    cat "$log"
    out=$(tail -1 "$log")
    if [[ "$out" =~ ^counts\ ([0-9]+)\ ([0-9]+)$ ]]; then
        total_p=$((total_p + BASH_REMATCH[1]))
        total_f=$((total_f + BASH_REMATCH[2]))
    else
        echo "  FAIL $(basename "$t") ended without its counts"
        total_f=$((total_f + 1))
    fi
done
echo "integration: $total_p passed, $total_f failed"
[ "$total_f" = 0 ]
