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

for np in 1 2 3; do
    run_np $np vae "${common[@]}" --max-steps 50 --out "$T/np$np" >"$T/np$np.log" 2>&1 \
        || fail "50 steps on $np rank(s) ran (see $T/np$np.log)"
done
check "1 vs 2 ranks agree within 1e-4 after 50 steps" \
    "$DIFF" "$T/np1/checkpoint.h5" "$T/np2/checkpoint.h5" 1e-4
check "1 vs 3 ranks agree within 1e-4 after 50 steps (uneven shards)" \
    "$DIFF" "$T/np1/checkpoint.h5" "$T/np3/checkpoint.h5" 1e-4

run_np 2 vae "${common[@]}" --max-steps 50 --out "$T/again" >/dev/null 2>&1
check "the same run twice is bit-identical" "$DIFF" "$T/np2/checkpoint.h5" "$T/again/checkpoint.h5" 0

run_np 2 vae "${common[@]}" --max-steps 20 --out "$T/cut" >/dev/null 2>&1
run_np 2 vae "${common[@]}" --max-steps 50 --out "$T/cut" --resume "$T/cut/checkpoint.h5" >"$T/cut.log" 2>&1
check "interrupted at step 20 and resumed equals the uninterrupted run bit for bit" \
    "$DIFF" "$T/np2/checkpoint.h5" "$T/cut/checkpoint.h5" 0
check "rank 0 logs the resume with its step" grep -q "resumed vae from .* at step 20" "$T/cut.log"

run_np 1 vae "${common[@]}" --max-steps 20 --out "$T/cut13" >/dev/null 2>&1
run_np 3 vae "${common[@]}" --max-steps 50 --out "$T/cut13" --resume "$T/cut13/checkpoint.h5" >/dev/null 2>&1
check "saved on 1 rank, resumed on 3: within 1e-4 of the uninterrupted run" \
    "$DIFF" "$T/np1/checkpoint.h5" "$T/cut13/checkpoint.h5" 1e-4

# outputs of a finished run
d="$T/np2"
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
