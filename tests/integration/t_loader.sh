#!/usr/bin/env bash
# The sharded loader at 1, 2 and 3 ranks: every global batch equals the
# single-rank batch and the pixels match direct reads (tests/mpi/loader_check.c),
# and the digest of everything seen is the same for every rank count.
# Run from the project root after `make build/tests/mpi/loader_check`.
set -u
cd "$(dirname "$0")/../.."
BIN=build/tests/mpi/loader_check
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
MPIRUN=(mpirun --oversubscribe)
if [ ! -x "$BIN" ]; then
    echo "not ok t_loader: $BIN missing (make build/tests/mpi/loader_check)"
    exit 1
fi
TMP=$(mktemp -d "${TMPDIR:-/tmp}/dtrain-t_loader.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
FILE="$TMP/small.h5"
fail=0
if timeout 300 "${MPIRUN[@]}" -np 1 "$BIN" --make "$FILE" >"$TMP/make.log" 2>&1 && [ -f "$FILE" ]; then
    echo "ok   t_loader: synthetic data set built"
else
    echo "not ok t_loader: could not build the data set:"
    sed 's/^/    /' "$TMP/make.log"
    exit 1
fi
digests=()
for np in 1 2 3; do
    if timeout 600 "${MPIRUN[@]}" -np "$np" "$BIN" "$FILE" >"$TMP/np$np.log" 2>&1; then
        d=$(sed -n 's/.*digest \([0-9a-f]*\).*/\1/p' "$TMP/np$np.log")
        digests+=("$d")
        echo "ok   t_loader: $np rank(s): batches equal the 1-rank order, pixels match (digest $d)"
    else
        echo "not ok t_loader: $np rank(s):"
        sed 's/^/    /' "$TMP/np$np.log" | head -20
        fail=1
    fi
done
if [ "$fail" = 0 ]; then
    if [ "${digests[0]}" = "${digests[1]}" ] && [ "${digests[0]}" = "${digests[2]}" ] && [ -n "${digests[0]}" ]; then
        echo "ok   t_loader: same digest at 1, 2, 3 ranks"
    else
        echo "not ok t_loader: digests differ across rank counts: ${digests[*]}"
        fail=1
    fi
fi
exit $fail
