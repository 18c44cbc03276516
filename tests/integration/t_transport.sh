#!/usr/bin/env bash
# The same 2-rank run over TCP (as between the nodes of a cluster) and over
# shared memory gives the same parameters. The whole suite runs over TCP with
# DTRAIN_TRANSPORT=tcp make check.
set -u
source "$(dirname "$0")/lib.sh"
ensure_data
DIFF="$BIN/ckpt_diff"
T="$WORK/transport"
mkdir -p "$T"
vae=(--data "$DATA" --threads 1 --batch 96 --max-steps 60)
for tr in shm tcp; do
    DTRAIN_TRANSPORT=$tr run_np 2 vae "${vae[@]}" --out "$T/$tr" >"$T/$tr.log" 2>&1 || fail "60 steps over $tr ran (see $T/$tr.log)"
done
check "the run over TCP was told to use TCP only (runs.jsonl)" grep -q '"ompi_mca_btl": "tcp,self"' "$T/tcp/runs.jsonl"
check "the run over shared memory was told to use it only" grep -q '"ompi_mca_btl": "vader,self"' "$T/shm/runs.jsonl"
# the same ranks sum in the same order whatever carries the bytes: bit-identical
check "2-rank vae, 60 steps: TCP and shared memory bit-identical ($("$DIFF" "$T/shm/checkpoint.h5" \
    "$T/tcp/checkpoint.h5" 0 2>&1 | grep -o 'rel_diff [^ ]*'))" \
    "$DIFF" "$T/shm/checkpoint.h5" "$T/tcp/checkpoint.h5" 0
DTRAIN_TRANSPORT=carrier-pigeon "$MPIRUN" -np 1 "$DTRAIN" --version >"$T/bad.log" 2>&1
rc=$?
check "an unknown DTRAIN_TRANSPORT is refused (status $rc)" test "$rc" = 2
echo "counts $PASSED $FAILED"
