#!/usr/bin/env bash
# The sharded loader at 1, 2 and 3 ranks: every global batch equals the
# single-rank batch and the pixels match direct reads (tests/mpi/loader_check.c),
# and the digest of everything seen is the same for every rank count.
set -u
source "$(dirname "$0")/lib.sh"
CHECKER="$BIN/loader_check"
T="$WORK/loader"
mkdir -p "$T"
FILE="$T/small.h5"
if [ ! -x "$CHECKER" ]; then
    fail "$CHECKER missing (make build/tests/mpi/loader_check)"
    echo "counts $PASSED $FAILED"
    exit 1
fi
if timeout 300 "$MPIRUN" -np 1 "$CHECKER" --make "$FILE" >"$T/make.log" 2>&1 && [ -f "$FILE" ]; then
    pass "synthetic data set built"
else
    fail "could not build the data set: $(tail -3 "$T/make.log")"
fi
digests=()
for np in 1 2 3; do
    if timeout 600 "$MPIRUN" -np "$np" "$CHECKER" "$FILE" >"$T/np$np.log" 2>&1; then
        d=$(sed -n 's/.*digest \([0-9a-f]*\).*/\1/p' "$T/np$np.log")
        digests+=("$d")
        pass "$np rank(s): batches equal the 1-rank order, pixels match (digest $d)"
    else
        fail "$np rank(s): $(head -5 "$T/np$np.log")"
        digests+=("failed-$np")
    fi
done
check "same digest at 1, 2, 3 ranks" test -n "${digests[0]}" -a "${digests[0]}" = "${digests[1]}" -a "${digests[0]}" = "${digests[2]}"
echo "counts $PASSED $FAILED"
