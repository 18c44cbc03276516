#!/usr/bin/env bash
# A resume continues the same run: the checkpoint's settings are the run's
# (options left out come from it, a changed one is refused naming both values,
# those that may change are logged), the data file is the same by content, and
# a checkpoint is trusted only when every byte of it verifies.
set -u
source "$(dirname "$0")/lib.sh"
ensure_data
DIFF="$BIN/ckpt_diff"
T="$WORK/resume"
mkdir -p "$T"

# refused NP "description" PATTERN args...: status 2, one error line, which matches PATTERN (grep -E)
refused() {
    local np=$1 what=$2 pattern=$3
    shift 3
    local out rc line
    out=$(timeout -k 5 120 "$MPIRUN" -np "$np" "$DTRAIN" "$@" 2>&1)
    rc=$?
    line=$(grep '^dtrain: error:' <<<"$out")
    if [ "$rc" = 2 ] && [ "$(grep -c . <<<"$line")" = 1 ] && grep -qE -- "$pattern" <<<"$line"; then
        pass "$what: $(cut -c1-150 <<<"$line")"
    else
        fail "$what: status $rc"
        printf '%s\n' "$out" | grep -v '^--\|^ \|^$\|mpirun\|Primary job\|non-zero' | head -6 | sed 's/^/       /'
    fi
}

# the test data prepared again as ensure_data does, with another seed: other colors, same size
src="${DTRAIN_TEST_MNIST:-$ROOT/../shared/data/mnist}"
if [ -f "$src/t10k-images-idx3-ubyte.gz" ] || [ -f "$src/t10k-images-idx3-ubyte" ]; then
    "$DTRAIN" prepare --mnist "$src" --out "$T/other.h5" --seed 2 --quiet
else
    "$DTRAIN" prepare --synthetic --out "$T/other.h5" --seed 2 --quiet 2>/dev/null
fi
# a data set's identity: the SHA-256 of its content, which its 512-byte header holds
short() { head -c 512 "$1" | tr -d '\0' | sed -n 's/^sha256 //p' | cut -c1-12; }

# ---- for each model: a run with non-default settings, stopped at step 8 by a
# stop signal, then continued with nothing but --resume FILE --out DIR ----
for model in vae cyclegan; do
    M="$T/$model"
    mkdir -p "$M"
    if [ "$model" = vae ]; then
        run=(--data "$DATA" --batch 48 --lr 0.002 --seed 3 --epochs 1 --max-steps 16 --threads 1)
        np=2
    else
        run=(--data "$DATA" --batch 16 --lr 0.0005 --seed 3 --epochs 1 --max-steps 16 --threads 1)
        np=2
    fi
    run_np $np $model "${run[@]}" --out "$M/ref" >"$M/ref.log" 2>&1 || fail "$model: the reference run ran (see $M/ref.log)"
    DTRAIN_RAISE_AT=8 run_np $np $model "${run[@]}" --out "$M/cut" >"$M/cut.log" 2>&1
    check "$model: the run stopped at step 8 with a checkpoint (status 75)" \
        grep -q "^dtrain: stopped by SIGUSR1 at step 8 " "$M/cut.log"
    run_np $np $model --resume "$M/cut/checkpoint.h5" --out "$M/cont" >"$M/cont.log" 2>&1
    check "$model: --resume FILE --out DIR alone takes --data, --batch, --lr, --seed, --max-steps from the checkpoint" \
        grep -q "^dtrain: resumed $model from $M/cut/checkpoint.h5 at step 8 " "$M/cont.log"
    check "$model: ... and ends bit for bit like the uninterrupted run" \
        "$DIFF" "$M/ref/checkpoint.h5" "$M/cont/checkpoint.h5" 0

    # the run's own command line with one option changed (the last one given counts)
    refused $np "$model: a changed --lr is refused, naming both values" \
        "checkpoint $M/cut/checkpoint.h5 was made with other settings \(--lr [0-9.e-]+ -> 0.001\)" \
        $model "${run[@]}" --lr 0.001 --resume "$M/cut/checkpoint.h5" --out "$M/x"
    refused $np "$model: a changed --seed is refused, naming both values" \
        "other settings \(--seed 3 -> 4\)" $model "${run[@]}" --seed 4 --resume "$M/cut/checkpoint.h5" --out "$M/x"
    refused $np "$model: a re-prepared data file (other --seed) is refused, naming both hashes" \
        "^dtrain: error: --data $T/other.h5 \(sha256 $(short "$T/other.h5")\) is not the data set this run was trained on \(sha256 $(short "$DATA")," \
        $model "${run[@]}" --data "$T/other.h5" --resume "$M/cut/checkpoint.h5" --out "$M/x"
    check "$model: ... and nothing was written to its --out" test ! -e "$M/x/checkpoint.h5"

    run_np $np $model "${run[@]}" --epochs 2 --max-steps 10 --resume "$M/cut/checkpoint.h5" --out "$M/longer" \
        >"$M/longer.log" 2>&1
    rc=$?
    check "$model: a changed --epochs is accepted and logged" \
        grep -q "^dtrain: --epochs changed on resume: 1 -> 2$" "$M/longer.log"
    check "$model: ... and the run goes on to its end (status $rc)" test "$rc" = 0
    check "$model: ... as is --max-steps" grep -q "^dtrain: --max-steps changed on resume: 16 -> 10$" "$M/longer.log"
done

# ---- every byte is verified: a flipped byte in the settings, which no
# per-network checksum covers, is damage ----
V="$T/vae"
two=(--data "$DATA" --batch 48 --max-steps 8 --checkpoint-every 4 --threads 1)
run_np 2 vae "${two[@]}" --out "$V/two" >/dev/null 2>&1
flip() { # flip one bit of the first occurrence of the text $2 in file $1
    python3 - "$1" "$2" <<'PY'
import sys
p, what = sys.argv[1], sys.argv[2].encode()
b = bytearray(open(p, "rb").read())
i = b.find(what, 512)
assert i >= 0, "text not found"
b[i + len(what) // 2] ^= 0x01
open(p, "wb").write(b)
PY
}
cp "$V/two/checkpoint.h5" "$T/flipped.h5"
flip "$T/flipped.h5" "$DATA"
refused 2 "--resume FILE with one bit flipped in a setting is refused as damaged" \
    "checkpoint $T/flipped.h5 is damaged: the SHA-256 of its contents" vae "${two[@]}" --resume "$T/flipped.h5" --out "$V/x"
cp "$T/flipped.h5" "$V/two/checkpoint.h5"
run_np 2 vae "${two[@]}" --resume auto --out "$V/two" >"$V/auto.log" 2>&1
check "--resume auto warns about it" \
    grep -q "^dtrain: warning: --resume auto: checkpoint $V/two/checkpoint.h5 is damaged: " "$V/auto.log"
check "... and falls back to the checkpoint before it (step 4)" \
    grep -q "^dtrain: resumed vae from $V/two/checkpoint.prev.h5 at step 4 " "$V/auto.log"

# ---- a forgotten value is not a folder name ----
pushd "$T" >/dev/null
refused 1 "--out followed by another option is a forgotten value" "^dtrain: error: --out needs a value, got '--threads=1'$" \
    vae --data "$DATA" --batch 16 --max-steps 1 --out --threads=1
check "... and no folder named after the option was made" test ! -e "$T/--threads=1"
popd >/dev/null

echo "counts $PASSED $FAILED"
