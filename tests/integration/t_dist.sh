#!/usr/bin/env bash
# The dist module's group collectives and pairwise exchange at 1 to 4 ranks.
set -u
source "$(dirname "$0")/lib.sh"
for np in 1 2 3 4; do
    check "group sums, sharded sum + gather, pairwise exchange at $np rank(s)" \
        timeout -k 5 120 "$MPIRUN" -np $np "$BIN/dist_check"
done
echo "counts $PASSED $FAILED"
