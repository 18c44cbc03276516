#!/usr/bin/env bash
# The VAEs under MPI: the same bits on 1, 2 and 3 ranks, determinism,
# bit-identical resume, embeddings, a killed rank ending the job.
set -u
source "$(dirname "$0")/lib.sh"
ensure_data
DIFF="$BIN/ckpt_diff"
T="$WORK/vae"
mkdir -p "$T"
common=(--data "$DATA" --threads 1 --batch 96)

# the data-parallel invariants, for each of the three VAEs
suite() {
    local model=$1
    local M="$T/$model"
    mkdir -p "$M"
    # (whole runs on 1 to 8 ranks compared: t_exact.sh)
    # 50 steps on 2 ranks: the reference of the bit-identity checks
    run_np 2 "$model" "${common[@]}" --max-steps 50 --out "$M/np2" >"$M/np2.log" 2>&1 \
        || fail "$model: 50 steps on 2 ranks ran (see $M/np2.log)"
    run_np 2 "$model" "${common[@]}" --max-steps 50 --out "$M/again" >/dev/null 2>&1
    check "$model: the same run twice is bit-identical" "$DIFF" "$M/np2/checkpoint.h5" "$M/again/checkpoint.h5" 0
    run_np 2 "$model" "${common[@]}" --max-steps 20 --out "$M/cut" >/dev/null 2>&1
    run_np 2 "$model" "${common[@]}" --max-steps 50 --out "$M/cut" --resume "$M/cut/checkpoint.h5" >"$M/cut.log" 2>&1
    check "$model: interrupted at step 20 and resumed equals the uninterrupted run bit for bit" \
        "$DIFF" "$M/np2/checkpoint.h5" "$M/cut/checkpoint.h5" 0
    check "$model: rank 0 logs the resume with its step" grep -q "resumed $model from .* at step 20" "$M/cut.log"
    # a trained model's step, saved on 2 ranks and resumed on 1, 2 and 3
    for np in 1 2 3; do one_more_step "$M/np2/checkpoint.h5" $np "$M/step51-$np" "$model" "${common[@]}"; done
    for np in 1 3; do
        check "$model: step 51 resumed on $np vs 2 ranks, bit for bit" \
            "$DIFF" "$M/step51-2/checkpoint.h5" "$M/step51-$np/checkpoint.h5" 0
    done
    # ranks of one node share their activations in memory, ranks on several
    # nodes gather them by messages: the same chains over the global batch,
    # so the same bits, step after step
    DTRAIN_EXCHANGE=messages run_np 2 "$model" "${common[@]}" --max-steps 50 --out "$M/msg2" >"$M/msg2.log" 2>&1
    check "$model: 50 steps on 2 ranks, messages vs shared memory, bit for bit" \
        "$DIFF" "$M/np2/checkpoint.h5" "$M/msg2/checkpoint.h5" 0
}
for model in vae dvae jvae; do suite $model; done
DTRAIN_EXCHANGE=messages one_more_step "$T/vae/np2/checkpoint.h5" 3 "$T/vae/msg3" vae "${common[@]}"
check "vae: step 51 on 3 ranks, messages vs shared memory, bit for bit" \
    "$DIFF" "$T/vae/step51-3/checkpoint.h5" "$T/vae/msg3/checkpoint.h5" 0
# threads share the large products by blocks of the result: the same bits
run_np 1 vae "${common[@]}" --max-steps 20 --out "$T/vae/t1" >/dev/null 2>&1
run_np 1 vae "${common[@]}" --max-steps 20 --threads 2 --out "$T/vae/t2" >"$T/vae/t2.log" 2>&1
check "vae: 1 rank, 2 threads vs 1, 20 steps bit for bit" "$DIFF" "$T/vae/t1/checkpoint.h5" "$T/vae/t2/checkpoint.h5" 0
# Adam's weight stores, streamed or cached, chosen by timing: the same bits
DTRAIN_ADAM_STORES=stream run_np 2 vae "${common[@]}" --max-steps 50 --out "$T/vae/stream2" >/dev/null 2>&1
check "vae: 2 ranks, Adam's weight stores all streamed: bit-identical to the timed choice" \
    "$DIFF" "$T/vae/stream2/checkpoint.h5" "$T/vae/np2/checkpoint.h5" 0
DTRAIN_ADAM_STORES=cache run_np 2 vae "${common[@]}" --max-steps 50 --out "$T/vae/cache2" >/dev/null 2>&1
check "vae: 2 ranks, Adam's weight stores all through the caches: bit-identical to the timed choice" \
    "$DIFF" "$T/vae/cache2/checkpoint.h5" "$T/vae/np2/checkpoint.h5" 0
DTRAIN_ADAM_STORES=fast expect_error 2 "DTRAIN_ADAM_STORES=fast" vae "${common[@]}" --max-steps 2 --out "$T/vae/badst"

# an epoch's last batch of 2 images (e.g. 9,000 = 22 x 409 + 2) leaves rank 0 of
# 3 without rows: the shared step must skip its batch, not add stale rows
ntrain=$(h5ls "$DATA/vae/train/digits" | sed -n 's/.*{\([0-9]*\)}.*/\1/p')
zb=200
while [ $(((ntrain - 2) % zb)) != 0 ] && [ $zb -lt 2000 ]; do zb=$((zb + 1)); done
[ $zb -lt 2000 ] || fail "no batch size in [200, 2000) leaves a last batch of 2 of $ntrain images"
z=(--data "$DATA" --threads 1 --batch $zb)
run_np 1 vae "${z[@]}" --max-steps $(((ntrain - 2) / zb)) --out "$T/vae/z" >/dev/null 2>&1
one_more_step "$T/vae/z/checkpoint.h5" 1 "$T/vae/z1" vae "${z[@]}"
one_more_step "$T/vae/z/checkpoint.h5" 3 "$T/vae/z3" vae "${z[@]}"
DTRAIN_EXCHANGE=messages one_more_step "$T/vae/z/checkpoint.h5" 3 "$T/vae/zmsg3" vae "${z[@]}"
identical "$T/vae/z3/checkpoint.h5" "$T/vae/zmsg3/checkpoint.h5" "vae: a last batch of 2 images on 3 ranks, shared vs messages"
identical "$T/vae/z1/checkpoint.h5" "$T/vae/z3/checkpoint.h5" "vae: a last batch of 2 images, 3 ranks vs 1"

# outputs of a finished run
d="$T/vae/np2"
for f in metrics.csv summary.json checkpoint.h5 embeddings.h5 reconstructions.png samples.png \
    latent_by_digit.png latent_by_color.png latent_grid.png; do
    check "run leaves $f" test -s "$d/$f"
done
check "summary.json has every key" python3 - "$d/summary.json" <<'PY'
import json, sys, math
s = json.load(open(sys.argv[1]))
keys = "model ranks threads epochs seed train_loss test_loss test_bce test_kl images_per_s wall_s version".split()
missing = [k for k in keys if k not in s]
assert not missing, missing
assert s["ranks"] == 2 and s["model"] == "vae"
assert math.isclose(s["test_loss"], s["test_bce"] + s["test_kl"], rel_tol=1e-6)
PY
check "embeddings hold mu, logvar, digits, colors for every test image" python3 - "$d/embeddings.h5" "$DATA" <<'PY'
import subprocess, sys
out = subprocess.run(["h5ls", sys.argv[1]], capture_output=True, text=True).stdout
data = subprocess.run(["h5ls", "-r", sys.argv[2]], capture_output=True, text=True).stdout
n = [l for l in data.splitlines() if l.startswith("/vae/test/digits")][0].split("{")[1].split("}")[0]
for name, shape in (("mu", n + ", 2"), ("logvar", n + ", 2"), ("digits", n), ("colors", n)):
    assert any(l.split()[0] == name and "{" + shape + "}" in l for l in out.splitlines()), (name, out)
PY
run_np 3 embed --checkpoint "$d/checkpoint.h5" --data "$DATA" --out "$T/emb3.h5" >/dev/null 2>&1
check "dtrain embed on 3 ranks equals the run's embeddings" h5diff -d 1e-5 "$d/embeddings.h5" "$T/emb3.h5" /mu /mu

sum_before=$(md5sum <"$T/vae/cut/checkpoint.h5")
run_np 2 vae "${common[@]}" --max-steps 50 --out "$T/vae/cut" --resume "$T/vae/cut/checkpoint.h5" >"$T/limit.log" 2>&1
check "resuming at --max-steps takes no step and keeps the checkpoint" \
    test "$(md5sum <"$T/vae/cut/checkpoint.h5")" = "$sum_before"
check "a run stopped inside an epoch reports its train loss" python3 -c "
import json, math, sys; s = json.load(open('$T/vae/np2/summary.json')); assert math.isfinite(s['train_loss']) and s['train_loss'] > 0, s"
expect_error 2 "resume with another --batch" vae "${common[@]}" --batch 64 --out "$T/wrong" --resume "$T/vae/np2/checkpoint.h5"
expect_error 1 "--batch larger than the training set" vae "${common[@]}" --batch 1000000 --out "$T/wrong"

# the discrete variants' own outputs and refusals
for model in dvae jvae; do
    d2="$T/$model/np2"
    for f in categories.png steering.png latents.md latent_mi.csv; do
        check "$model leaves $f" test -s "$d2/$f"
    done
    check "$model embeddings hold q and argmax per variable" python3 - "$d2/embeddings.h5" <<'PY'
import subprocess, sys
out = subprocess.run(["h5ls", sys.argv[1]], capture_output=True, text=True).stdout
names = {l.split()[0]: l for l in out.splitlines()}
assert "{" in names["q"] and ", 20}" in names["q"], out
assert ", 2}" in names["argmax"], out
PY
done
check "jvae leaves traversal.png and the latent plane" test -s "$T/jvae/np2/traversal.png" -a -s "$T/jvae/np2/latent_by_color.png"
expect_error 2 "dvae resuming a vae checkpoint" dvae "${common[@]}" --out "$T/wrong" --resume "$T/vae/np2/checkpoint.h5"
expect_error 1 "dvae resuming with other N/K" dvae "${common[@]}" --K 5 --out "$T/wrong" --resume "$T/dvae/np2/checkpoint.h5"
expect_error 1 "vae given a discrete option" vae "${common[@]}" --K 5 --out "$T/wrong"

# a rank killed with SIGKILL ends the whole job, non-zero, within 30 s
run_np 2 vae "${common[@]}" --epochs 1000 --out "$T/kill" >"$T/kill.log" 2>&1 &
job=$!
for _ in $(seq 100); do
    victim=$(pgrep -f "$DTRAIN vae .*--out $T/kill" | while read -r p; do
        [ "$(ps -o comm= -p "$p")" = dtrain ] && echo "$p"; done | tail -1)
    [ -n "$victim" ] && grep -q "^epoch\|dtrain vae:" "$T/kill.log" && break
    sleep 0.2
done
t0=$(date +%s)
kill -KILL "$victim" 2>/dev/null
for _ in $(seq 300); do kill -0 $job 2>/dev/null || break; sleep 0.1; done
if kill -0 $job 2>/dev/null; then
    fail "job still running 30 s after a rank was killed"
    pkill -KILL -f "$T/kill" 2>/dev/null
else
    wait $job
    rc=$?
    check "a rank killed with SIGKILL ends the job (status $rc) in $(($(date +%s) - t0)) s" test "$rc" -ne 0
fi
left=$(pgrep -f -- "--out $T/kill" | while read -r p; do [ "$(ps -o comm= -p "$p")" = dtrain ] && echo "$p"; done)
check "no dtrain process left behind" test -z "$left"

echo "counts $PASSED $FAILED"
