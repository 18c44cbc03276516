#!/usr/bin/env bash
# make bench: performance figures of dtrain on this machine (nothing asserted).
#  1. the VAE step without I/O: compute FLOP rate against sgemm alone on the
#     same shapes, communication + Adam share, at 1 rank x 2 threads and 2 x 1;
#  2. real training (I/O included) on a 60,000-image set: images/s, peak RSS;
#  3. the exact reduction (the same bits for any rank count) against the plain
#     one (DTRAIN_REDUCE=plain): the VAE step at 1, 2 and 3 ranks, CycleGAN
#     training at 1, 2 and 4 ranks;
#  4. the CycleGAN step's networks against sgemm 1024^3, then CycleGAN training.
set -uo pipefail
cd "$(dirname "$0")/.."
export DTRAIN_NO_PROGRESS=1
MPI=scripts/mpirun
echo "dtrain bench on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-unset}  (the environment's choice is left alone)"

echo
echo "== VAE training step, batch 128, random images (build/dtrain-bench)"
for model in vae dvae jvae; do
    echo "-- $model, 1 rank x 2 threads"
    $MPI -np 1 build/dtrain-bench --model $model --threads 2 --steps 40
    echo "-- $model, 2 ranks x 1 thread"
    $MPI -np 2 build/dtrain-bench --model $model --threads 1 --steps 40
done

# step_ms NP EXCHANGE MODE MODEL: one dtrain-bench run's step time in ms
step_ms() {
    local env=(DTRAIN_REDUCE=$3)
    [ "$2" = messages ] && env+=(DTRAIN_EXCHANGE=messages)
    env "${env[@]}" $MPI -np "$1" build/dtrain-bench --model "$4" --threads 1 --steps 30 2>/dev/null |
        awk '$1 == "step" {print $2}'
}
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

echo
echo "== exact against plain reduction (DTRAIN_REDUCE), VAE step without I/O, batch 128, 1 thread per rank:"
echo "   median of 5 runs of 30 steps each way, alternated (plain: the ranks' gradients summed as blocks,"
echo "   in an order that depends on the rank count; losses summed as doubles)"
for model in vae jvae; do
    for cfg in "1 shared" "2 shared" "2 messages" "3 shared" "3 messages"; do
        set -- $cfg
        : >build/bench-exact.txt
        : >build/bench-plain.txt
        for round in 1 2 3 4 5; do
            for mode in exact plain; do step_ms "$1" "$2" $mode $model >>build/bench-$mode.txt; done
        done
        e=$(median <build/bench-exact.txt)
        p=$(median <build/bench-plain.txt)
        [ "$1" = 1 ] && ex="" || ex=", $2"
        awk -v m=$model -v np="$1" -v ex="$ex" -v e="$e" -v p="$p" 'BEGIN {
            if (e == "" || p == "") { printf "  %s, %s rank(s)%s: a run failed\n", m, np, ex; exit }
            printf "  %-5s %s rank(s)%-10s exact %6.2f ms   plain %6.2f ms   exact costs %+5.1f%%\n",
                   m, np, ex, e, p, 100 * (e / p - 1) }'
    done
done

# a 60,000-image set: Fashion-MNIST from Debian's dataset-fashion-mnist
fm=/usr/share/datasets/fashion-mnist
if [ ! -f "$fm/train-images-idx3-ubyte.gz" ] && [ "$(id -u)" = 0 ]; then
    apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || true
fi
data=build/bench-60k.h5
if [ -f "$fm/train-images-idx3-ubyte.gz" ]; then
    [ -f "$data" ] || ./dtrain prepare --mnist "$fm" --out "$data" --quiet
    what="Fashion-MNIST, 60,000 train images"
else
    data=build/bench-small.h5
    [ -f "$data" ] || ./dtrain prepare --synthetic --out "$data" --quiet 2>/dev/null
    what="synthetic digits, 9,000 train images (install dataset-fashion-mnist for 60,000)"
fi
echo
echo "== dtrain vae, 150 steps of batch 128 with I/O ($what)"
for cfg in "1 2" "2 1"; do
    set -- $cfg
    out=build/bench-run-$1x$2
    rm -rf "$out"
    if $MPI -np "$1" ./dtrain vae --data "$data" --threads "$2" --max-steps 150 --out "$out" >"$out.log" 2>&1; then
        python3 - "$out/summary.json" "$1" "$2" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
print(f"  {sys.argv[2]} rank(s) x {sys.argv[3]} thread(s): {s['images_per_s']:.0f} images/s, "
      f"peak RSS {s['peak_rss_bytes'] / 1e6:.1f} MB per rank (largest)")
PY
    else
        echo "  $1 x $2: run failed, see $out.log"
    fi
done

echo
for t in 1 2; do
    echo "== CycleGAN step (networks only, random images) against cblas_sgemm 1024^3, $t thread(s)"
    $MPI -np 1 build/dtrain-bench --conv --threads $t --steps 40
done

echo
echo "== dtrain cyclegan, 40 iterations of batch 64 per domain (MNIST-sized test data): the default"
echo "   recipe, and the literal recipe's work (--color-pair 0 --gen-out sigmoid); the ratio is the recipe's cost"
gdata=build/bench-small.h5
[ -f "$gdata" ] || ./dtrain prepare --synthetic --out "$gdata" --quiet 2>/dev/null
for np in 1 2; do
    for recipe in default literal; do
        out=build/bench-gan-$np-$recipe
        extra=()
        [ "$recipe" = literal ] && extra=(--color-pair 0 --gen-out sigmoid)
        rm -rf "$out"
        $MPI -np "$np" ./dtrain cyclegan --data "$gdata" --threads $((3 - np)) --max-steps 40 "${extra[@]}" --out "$out" \
            >"$out.log" 2>&1 || echo "  $np rank(s), $recipe: run failed, see $out.log"
    done
    python3 - build/bench-gan-$np-default/summary.json build/bench-gan-$np-literal/summary.json "$np" <<'PY'
import json, sys
try:
    d, l = (json.load(open(p)) for p in sys.argv[1:3])
except OSError:
    sys.exit(0)
print(f"  {sys.argv[3]} rank(s): default {d['images_per_s']:.0f} images/s (A and B counted), literal work "
      f"{l['images_per_s']:.0f}: the recipe costs {100 * (l['images_per_s'] / d['images_per_s'] - 1):+.1f}%; "
      f"time in partner messages {100 * d['message_share']:.1f}% of the step")
PY
done

echo
echo "== dtrain cyclegan: exact against plain reduction (DTRAIN_REDUCE), default recipe, 30 iterations,"
echo "   median of 3 runs each way, alternated (images/s of step time; 4 ranks: two per domain)"
for np in 1 2 4; do
    : >build/bench-exact.txt
    : >build/bench-plain.txt
    for round in 1 2 3; do
        for mode in exact plain; do
            out=build/bench-gan-$np-$mode
            rm -rf "$out"
            DTRAIN_REDUCE=$mode $MPI -np "$np" ./dtrain cyclegan --data "$gdata" --threads $((np < 2 ? 2 : 1)) --max-steps 30 \
                --out "$out" >"$out.log" 2>&1 &&
                python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["images_per_s"])' \
                    "$out/summary.json" >>build/bench-$mode.txt
        done
    done
    e=$(median <build/bench-exact.txt)
    p=$(median <build/bench-plain.txt)
    awk -v np="$np" -v e="$e" -v p="$p" 'BEGIN {
        if (e == "" || p == "") { printf "  %s rank(s): a run failed\n", np; exit }
        printf "  %s rank(s): exact %.0f images/s, plain %.0f: exact costs %+.1f%% of the step\n", np, e, p,
               100 * (p / e - 1) }'
done
