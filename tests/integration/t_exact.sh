#!/usr/bin/env bash
# The same bits at any rank count. Each VAE trained for 200 steps (two epochs
# and more, each ending in a partial batch; batch 98, so most rank counts get
# uneven shares) on 1 rank is the reference; the same run on 3, 4 and 8
# ranks over shared memory, on 3 ranks over messages (DTRAIN_EXCHANGE=messages)
# and on 4 over TCP, and one saved on 3 ranks and resumed on 2, must have its
# parameters bit for bit (the hash of the parameter blocks), its whole
# checkpoint (Adam's moments, the epoch's loss sums) and its metrics (times
# left out). The CycleGAN likewise: 80 iterations of the default recipe
# (batch 62 per domain: uneven shares from 4 ranks, an epoch's end with its
# partial batch and evaluation) on 1 rank against 4 and 8 ranks, 4 over
# TCP, and 8 resumed on 4. DTRAIN_REDUCE=plain, which sums the ranks'
# gradients in an order that depends on the rank count, must break the
# identity: the check can fail.
set -u
source "$(dirname "$0")/lib.sh"
ensure_data
HASH="$BIN/h5_hash"
T="$WORK/exact"
mkdir -p "$T"
common=(--data "$DATA" --threads 1 --batch 98 --max-steps 200)

# run NAME NP ENV... -- MODEL ARGS...: the run into $T/NAME
run() {
    local name=$1 np=$2
    shift 2
    local env=()
    while [ "$1" != -- ]; do env+=("$1"); shift; done
    shift
    env "${env[@]}" timeout -k 5 300 "$MPIRUN" -np "$np" "$DTRAIN" "$@" --out "$T/$name" </dev/null \
        >"$T/$name.log" 2>&1 || fail "$name ran (see $T/$name.log)"
}

# the parameters' hash, the checkpoint's, the metrics' (times left out)
hashes() {
    local d=$T/$1
    echo "$("$HASH" "$d/checkpoint.h5" params 2>&1) $("$HASH" "$d/checkpoint.h5" 2>&1)" \
        "$(awk -F, -v OFS=, '{NF -= 3; print}' "$d/metrics.csv" 2>/dev/null | sha256sum | cut -c1-16)"
}

# same MODEL NAME WHAT: NAME's hashes equal MODEL's 1-rank run's
same() {
    local want got
    want=$(hashes "$1-np1")
    got=$(hashes "$2")
    if [ "$got" = "$want" ]; then
        pass "$1: $3: the same parameters, moments, loss sums and metrics as on 1 rank ($got)"
    else
        fail "$1: $3: $got, 1 rank: $want"
    fi
}

# (2 ranks: t_vae.sh and t_bits.sh)
for model in vae dvae jvae; do
    run "$model-np1" 1 -- "$model" "${common[@]}"
    ranks="3"
    [ "$model" = vae ] && ranks="3 4 8"
    [ "$model" = jvae ] && ranks=""
    for np in $ranks; do
        run "$model-np$np" "$np" -- "$model" "${common[@]}"
        same "$model" "$model-np$np" "200 steps on $np ranks, shared memory"
    done
    [ "$model" = dvae ] && continue
    run "$model-msg3" 3 DTRAIN_EXCHANGE=messages -- "$model" "${common[@]}"
    same "$model" "$model-msg3" "200 steps on 3 ranks, messages"
done
run vae-tcp4 4 DTRAIN_TRANSPORT=tcp DTRAIN_EXCHANGE=messages -- vae "${common[@]}"
check "vae: the TCP run was told to use TCP only (runs.jsonl)" grep -q '"ompi_mca_btl": "tcp,self"' "$T/vae-tcp4/runs.jsonl"
same vae vae-tcp4 "200 steps on 4 ranks, messages over TCP"
# saved on 3 ranks after 120 steps, resumed on 2 to step 200
run vae-cut 3 -- vae "${common[@]/200/120}"
run vae-cut 2 -- vae "${common[@]}" --resume auto
check "vae: the run saved on 3 ranks resumed on 2 at step 120" grep -q "resumed vae from .* at step 120" "$T/vae-cut.log"
same vae vae-cut "120 steps on 3 ranks resumed on 2 to step 200"

gan=(--data "$DATA" --threads 1 --batch 62 --max-steps 80)
run cyclegan-np1 1 -- cyclegan "${gan[@]}"
for np in 4 8; do # (2 ranks: t_cyclegan.sh)
    run "cyclegan-np$np" "$np" -- cyclegan "${gan[@]}"
    same cyclegan "cyclegan-np$np" "80 iterations on $np ranks"
done
run cyclegan-tcp4 4 DTRAIN_TRANSPORT=tcp -- cyclegan "${gan[@]}"
same cyclegan cyclegan-tcp4 "80 iterations on 4 ranks over TCP"
run cyclegan-cut 8 -- cyclegan "${gan[@]/80/30}"
run cyclegan-cut 4 -- cyclegan "${gan[@]}" --resume auto
check "cyclegan: the run saved on 8 ranks resumed on 4 at step 30" \
    grep -q "resumed cyclegan from .* at step 30" "$T/cyclegan-cut.log"
same cyclegan cyclegan-cut "30 iterations on 8 ranks resumed on 4 to iteration 80"

# the order the test exists to catch: the ranks' gradients summed as blocks
for c in "vae 3" "cyclegan 4"; do
    set -- $c
    args=("${common[@]}")
    [ "$1" = cyclegan ] && args=("${gan[@]}")
    run "$1-plain$2" "$2" DTRAIN_REDUCE=plain -- "$1" "${args[@]}"
    plain=$(hashes "$1-plain$2")
    one=$(hashes "$1-np1")
    check "$1: DTRAIN_REDUCE=plain on $2 ranks parts from 1 rank's parameters ($plain vs $one): the check can fail" \
        test "${plain%% *}" != "${one%% *}"
    check "$1: runs.jsonl says which sums a run made (plain, exact)" \
        bash -c "grep -q '\"reduction\": \"plain\"' '$T/$1-plain$2/runs.jsonl' &&
                 grep -q '\"reduction\": \"exact\"' '$T/$1-np1/runs.jsonl'"
done
echo "counts $PASSED $FAILED"
