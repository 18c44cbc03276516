#!/usr/bin/env bash
# The numbers every run computes, kept: short runs of every model on 1 rank
# and on several (any rank count gives the same bits: t_exact.sh), over shared
# memory and messages, with each of the CycleGAN recipe's options off or
# changed. Each run is stopped mid-epoch with
# --max-steps, resumed to its end and hashed: its checkpoint (parameters, Adam's
# moments, the epoch's loss sums), its metrics.csv (times left out) and, for the
# VAEs, its embeddings. The hashes must equal tests/integration/bits.ref, which
# holds those of the code as it was when the file was written: code that is meant
# to compute the same things (a refactor) proves it here. And a run resumed
# mid-epoch must report the metrics of one never stopped.
#   DTRAIN_BITS_RECORD=1   write bits.ref from this build instead of comparing
#   DTRAIN_BITS_ONLY=REGEX only the cases whose name matches
# The data are drawn digits (tests/memory/mkdata.py, 800 of them), the same
# everywhere, so the hashes do not depend on which data set the suite found.
set -u
source "$(dirname "$0")/lib.sh"
HASH="$BIN/h5_hash"
REF="$ROOT/tests/integration/bits.ref"
T="$WORK/bits"
mkdir -p "$T"
D="$T/data.h5"
DTRAIN_TEST_DATA=synthetic python3 "$ROOT/tests/memory/mkdata.py" "$T/idx" 800 >/dev/null &&
    "$DTRAIN" prepare --mnist "$T/idx" --out "$D" --quiet 2>/dev/null ||
    fail "bits: the drawn data set was prepared"

# name  ranks  exchange  model  options...   (each run: 2 epochs of 12 steps)
cases() {
    local m
    for m in vae dvae jvae; do echo "$m-np1-shared 1 shared $m --batch 64"; done
    echo "vae-np3-messages 3 messages vae --batch 64"
    echo "jvae-np2-shared 2 shared jvae --batch 64"
    echo "vae-threads2 1 shared vae --batch 64 --threads 2"
    echo "dvae-hard 2 shared dvae --batch 64 --hard --anneal-every 3 --kl-warmup 10"
    echo "jvae-noshare 2 shared jvae --batch 64 --kl-start 5 --kl-warmup 10 --tau0 2"
    echo "cyclegan-np1 1 shared cyclegan --batch 32"
    echo "cyclegan-np4 4 shared cyclegan --batch 32"
    local opt
    while read -r name opt; do
        echo "cyclegan-$name 1 shared cyclegan --batch 32 $opt"
    done <<'OPTS'
swap-neg --swap-neg 1
d-noise --d-noise 0.1
color-noise --color-noise 0.1
color-search --color-search 1 --color-pair 0
no-pair --color-pair 0
no-focus --color-pair-focus 0
adv-ramp --adv-ramp 1
g-delay --g-delay 5
identity --lambda-id 5
no-ema --gen-ema 0
recolor --gen-out recolor
sigmoid --gen-out sigmoid --gen-init-gain 1
decay --lr-decay-from 1 --lr-d 0.001 --beta1 0.6
OPTS
}

# the run, stopped at step 7, resumed to the end; prints "name hashes"
one_case() {
    local name=$1 np=$2 ex=$3 model=$4
    shift 4
    local dir="$T/$name" env=()
    [ "$ex" = messages ] && env=(DTRAIN_EXCHANGE=messages)
    local args=(--data "$D" --epochs 2 --seed 3 --out "$dir" "$@")
    env "${env[@]}" timeout -k 5 300 "$MPIRUN" -np "$np" "$DTRAIN" "$model" "${args[@]}" --max-steps 7 </dev/null \
        >"$dir.log" 2>&1 &&
        env "${env[@]}" timeout -k 5 300 "$MPIRUN" -np "$np" "$DTRAIN" "$model" "${args[@]}" --max-steps 0 --resume auto </dev/null \
            >>"$dir.log" 2>&1 || { echo "$name run-failed"; return; }
    # a run that started afresh instead would hide a broken resume
    grep -q "resumed $model from .* at step 7 " "$dir.log" || { echo "$name not-resumed-at-step-7"; return; }
    local c m e=-
    c=$("$HASH" "$dir/checkpoint.h5") || c=unreadable
    # metrics without their last three columns (images/s, epoch and wall seconds)
    m=$(awk -F, -v OFS=, '{NF -= 3; print}' "$dir/metrics.csv" | sha256sum | cut -c1-16)
    [ -f "$dir/embeddings.h5" ] && { e=$("$HASH" "$dir/embeddings.h5") || e=unreadable; }
    echo "$name $c $m $e"
}

got="$T/bits.now"
: >"$got"
while read -r name np ex model args; do
    [ -n "${DTRAIN_BITS_ONLY:-}" ] && ! [[ $name =~ $DTRAIN_BITS_ONLY ]] && continue
    # shellcheck disable=SC2086
    one_case "$name" "$np" "$ex" "$model" $args >>"$got"
done < <(cases)

# a run stopped mid-epoch and resumed reports the metrics of one never stopped:
# the epoch's loss sums travel in the checkpoint
for c in "jvae-np2-shared jvae 2" "cyclegan-np4 cyclegan 4"; do
    set -- $c
    [ -d "$T/$1" ] || continue
    whole="$T/$1-whole"
    bs=64
    [ "$2" = cyclegan ] && bs=32
    timeout -k 5 300 "$MPIRUN" -np "$3" "$DTRAIN" "$2" --data "$D" --epochs 2 --seed 3 --batch $bs --out "$whole" \
        </dev/null >"$whole.log" 2>&1
    check "bits: $1: the metrics of a run resumed mid-epoch equal those of a run never stopped" \
        cmp -s <(awk -F, -v OFS=, '{NF -= 3; print}' "$T/$1/metrics.csv") \
        <(awk -F, -v OFS=, '{NF -= 3; print}' "$whole/metrics.csv")
done

if [ -n "${DTRAIN_BITS_RECORD:-}" ]; then
    { echo "# name checkpoint metrics embeddings: tests/integration/t_bits.sh (DTRAIN_BITS_RECORD=1)"; cat "$got"; } >"$REF"
    echo "  bits: recorded $(wc -l <"$got") cases into $REF"
else
    while read -r name rest; do
        want=$(awk -v n="$name" '$1 == n {$1 = ""; print substr($0, 2)}' "$REF")
        if [ "$rest" = "$want" ]; then
            pass "bits: $name computes what it computed when bits.ref was written"
        else
            fail "bits: $name: $rest, bits.ref has ${want:-nothing} (log: $T/$name.log)"
        fi
    done <"$got"
fi
echo "counts $PASSED $FAILED"
