#!/usr/bin/env bash
# The continuous VAE under MPI: rank-count independence, determinism,
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
    for np in 1 2 3; do
        run_np $np "$model" "${common[@]}" --max-steps 50 --out "$M/np$np" >"$M/np$np.log" 2>&1 \
            || fail "$model: 50 steps on $np rank(s) ran (see $M/np$np.log)"
    done
    check "$model: 1 vs 2 ranks agree within 1e-4 after 50 steps" \
        "$DIFF" "$M/np1/checkpoint.h5" "$M/np2/checkpoint.h5" 1e-4
    check "$model: 1 vs 3 ranks agree within 1e-4 after 50 steps (uneven shards)" \
        "$DIFF" "$M/np1/checkpoint.h5" "$M/np3/checkpoint.h5" 1e-4
    # ranks of one node exchange gradients through shared memory; messages
    # (what ranks on several nodes use) must give the same model
    DTRAIN_EXCHANGE=messages run_np 2 "$model" "${common[@]}" --max-steps 50 --out "$M/msg2" >/dev/null 2>&1
    check "$model: 2 ranks, gradients by messages and by shared memory: bit-identical" \
        "$DIFF" "$M/np2/checkpoint.h5" "$M/msg2/checkpoint.h5" 0
    run_np 2 "$model" "${common[@]}" --max-steps 50 --out "$M/again" >/dev/null 2>&1
    check "$model: the same run twice is bit-identical" "$DIFF" "$M/np2/checkpoint.h5" "$M/again/checkpoint.h5" 0
    run_np 2 "$model" "${common[@]}" --max-steps 20 --out "$M/cut" >/dev/null 2>&1
    run_np 2 "$model" "${common[@]}" --max-steps 50 --out "$M/cut" --resume "$M/cut/checkpoint.h5" >"$M/cut.log" 2>&1
    check "$model: interrupted at step 20 and resumed equals the uninterrupted run bit for bit" \
        "$DIFF" "$M/np2/checkpoint.h5" "$M/cut/checkpoint.h5" 0
    check "$model: rank 0 logs the resume with its step" grep -q "resumed $model from .* at step 20" "$M/cut.log"
    run_np 1 "$model" "${common[@]}" --max-steps 20 --out "$M/cut13" >/dev/null 2>&1
    run_np 3 "$model" "${common[@]}" --max-steps 50 --out "$M/cut13" --resume "$M/cut13/checkpoint.h5" >/dev/null 2>&1
    check "$model: saved on 1 rank, resumed on 3: within 1e-4 of the uninterrupted run" \
        "$DIFF" "$M/np1/checkpoint.h5" "$M/cut13/checkpoint.h5" 1e-4
}
for model in vae dvae jvae; do suite $model; done
DTRAIN_EXCHANGE=messages run_np 3 vae "${common[@]}" --max-steps 50 --out "$T/vae/msg3" >/dev/null 2>&1
check "vae: 3 ranks, gradients by messages and by shared memory agree within 1e-6" \
    "$DIFF" "$T/vae/np3/checkpoint.h5" "$T/vae/msg3/checkpoint.h5" 1e-6
# Adam's weight stores, streamed or cached, chosen by timing: the same bits
DTRAIN_ADAM_STORES=stream run_np 2 vae "${common[@]}" --max-steps 50 --out "$T/vae/stream2" >/dev/null 2>&1
check "vae: 2 ranks, Adam's weight stores all streamed: bit-identical to messages" \
    "$DIFF" "$T/vae/stream2/checkpoint.h5" "$T/vae/msg2/checkpoint.h5" 0
DTRAIN_ADAM_STORES=cache run_np 2 vae "${common[@]}" --max-steps 50 --out "$T/vae/cache2" >/dev/null 2>&1
check "vae: 2 ranks, Adam's weight stores all through the caches: bit-identical to messages" \
    "$DIFF" "$T/vae/cache2/checkpoint.h5" "$T/vae/msg2/checkpoint.h5" 0
DTRAIN_ADAM_STORES=fast expect_error 2 "DTRAIN_ADAM_STORES=fast" vae "${common[@]}" --max-steps 2 --out "$T/vae/badst"

# an epoch's last batch of 2 images (9,000 = 22 x 409 + 2) leaves rank 0 of 3
# without rows: the shared step must skip its batch, not add stale rows
z=(--data "$DATA" --threads 1 --batch 409 --max-steps 23)
run_np 1 vae "${z[@]}" --out "$T/vae/z1" >/dev/null 2>&1
run_np 3 vae "${z[@]}" --out "$T/vae/z3" >/dev/null 2>&1
DTRAIN_EXCHANGE=messages run_np 3 vae "${z[@]}" --out "$T/vae/zmsg3" >/dev/null 2>&1
check "vae: a last batch of 2 images on 3 ranks: shared and messages agree within 1e-6" \
    "$DIFF" "$T/vae/z3/checkpoint.h5" "$T/vae/zmsg3/checkpoint.h5" 1e-6
check "vae: a last batch of 2 images on 3 ranks: within 1e-4 of 1 rank" \
    "$DIFF" "$T/vae/z1/checkpoint.h5" "$T/vae/z3/checkpoint.h5" 1e-4

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
