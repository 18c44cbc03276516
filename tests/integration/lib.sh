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

# wait_for FILE REGEX SECONDS: until a line of FILE matches
wait_for() {
    local i
    for i in $(seq $(($3 * 10))); do
        grep -q -- "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }

# identical A.h5 B.h5 WHAT: two checkpoints bit for bit (parameters, Adam's
# moments, the epoch's sums): what runs on any rank counts give
identical() {
    check "$3: bit for bit" "$BIN/ckpt_diff" "$1" "$2" 0
}

# one_more_step CKPT NP DIR MODEL args...: a copy of CKPT in DIR, resumed on NP
# ranks for one step with the run's args (log DIR.log)
one_more_step() {
    local ckpt=$1 np=$2 dir=$3 model=$4 step
    shift 4
    step=$(h5dump -a /step "$ckpt" | sed -n 's/^ *(0): //p')
    mkdir -p "$dir"
    cp "$ckpt" "$dir/checkpoint.h5"
    run_np "$np" "$model" "$@" --max-steps $((step + 1)) --out "$dir" --resume auto >"$dir.log" 2>&1 ||
        fail "$model: one step after step $step on $np rank(s) ran (see $dir.log)"
}

# The data set every test uses: the real MNIST test set when it is at hand
# ($DTRAIN_TEST_MNIST, else ../shared/data/mnist beside the project), drawn
# digits otherwise or when DTRAIN_TEST_DATA=synthetic (what a fresh clone
# without MNIST gets; CI runs the suite both ways).
ensure_data() {
    [ -f "$DATA" ] && return 0
    local src="${DTRAIN_TEST_MNIST:-$ROOT/../shared/data/mnist}"
    if [ "${DTRAIN_TEST_DATA:-}" != synthetic ] &&
        { [ -f "$src/t10k-images-idx3-ubyte.gz" ] || [ -f "$src/t10k-images-idx3-ubyte" ]; }; then
        echo "integration: data set: the MNIST test set from $src"
        "$DTRAIN" prepare --mnist "$src" --out "$DATA" --quiet
    else
        echo "integration: data set: synthetic digits (dtrain prepare --synthetic)"
        "$DTRAIN" prepare --synthetic --out "$DATA" --quiet 2>/dev/null
    fi
}
