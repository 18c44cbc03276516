# Shared by the integration tests: sourced, never run.
# Provides: $DTRAIN, $MPIRUN, $DATA (a prepared data set), $WORK (scratch),
# pass/fail counters, run_np (mpirun with a time limit), expect_error.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DTRAIN="$ROOT/dtrain"
MPIRUN="$ROOT/scripts/mpirun"
BIN="$ROOT/build/tests/mpi"
: "${WORK:=$(mktemp -d /tmp/dtrain-it.XXXXXX)}"
: "${DATA:=$WORK/data.h5}"
export DTRAIN_NO_PROGRESS=1 OPENBLAS_NUM_THREADS=1
PASSED=0
FAILED=0

pass() { PASSED=$((PASSED + 1)); echo "  ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "  FAIL $*"; }
check() { # check "description" command...
    local what=$1
    shift
    if "$@"; then pass "$what"; else fail "$what"; fi
}

# run_np N args...: dtrain under mpirun with N ranks, at most 300 s
run_np() {
    local np=$1
    shift
    timeout -k 5 300 "$MPIRUN" -np "$np" "$DTRAIN" "$@"
}

# expect_error NP "description" args...: exit status 2, one `dtrain: error:` line, in time
expect_error() {
    local np=$1 what=$2
    shift 2
    local out rc
    out=$(timeout -k 5 60 "$MPIRUN" -np "$np" "$DTRAIN" "$@" 2>&1)
    rc=$?
    local lines
    lines=$(grep -c '^dtrain: error:' <<<"$out")
    if [ "$rc" = 2 ] && [ "$lines" = 1 ]; then
        pass "$what (np=$np): $(grep '^dtrain: error:' <<<"$out" | cut -c1-110)"
    else
        fail "$what (np=$np): status $rc, $lines error line(s)"
        printf '%s\n' "$out" | head -8 | sed 's/^/       /'
    fi
}

# The data set every test uses: the real MNIST test set when it is at hand,
# drawn digits otherwise.
ensure_data() {
    [ -f "$DATA" ] && return 0
    local src="${DTRAIN_TEST_MNIST:-$ROOT/../shared/data/mnist}"
    if [ -f "$src/t10k-images-idx3-ubyte.gz" ] || [ -f "$src/t10k-images-idx3-ubyte" ]; then
        "$DTRAIN" prepare --mnist "$src" --out "$DATA" --quiet
    else
        "$DTRAIN" prepare --synthetic --out "$DATA" --quiet 2>/dev/null
    fi
}
