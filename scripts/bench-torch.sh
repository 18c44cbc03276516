#!/usr/bin/env bash
# make bench-torch: dtrain's images/s against the same models in PyTorch
# (bench/torch/dtrain_torch.py, SPEC's literal recipes), on the same data file and batch,
# at 1 core (dtrain 1 rank, PyTorch 1 thread) and 2 cores (dtrain 2 ranks x 1 thread,
# PyTorch 2 threads). dtrain and PyTorch runs alternate, ROUNDS times each; the table
# gives the medians and their ratio. Nothing is asserted but the PyTorch models' own
# check (each loss falls; the CycleGAN has dtrain's parameter counts).
# Environment: ROUNDS (3), GAN_STEPS (20), VAE_STEPS (100), MODELS ("cyclegan vae dvae jvae").
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

# dtrain options that reduce the CycleGAN to the literal recipe's work (its default
# recipe adds terms the report does not have; see README "dtrain cyclegan")
LITERAL_GAN="--color-pair 0 --gen-out sigmoid"

ROUNDS=${ROUNDS:-3}
GAN_STEPS=${GAN_STEPS:-20}
VAE_STEPS=${VAE_STEPS:-100}
MPI=scripts/mpirun
OUT=build/bench-torch
export DTRAIN_NO_PROGRESS=1
# idle OpenMP threads sleep instead of spinning, as idle MPI ranks yield under
# scripts/mpirun: on a busy machine spinning threads cost PyTorch several times over
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

# Debian's PyTorch lives in the system Python, which may not be the first python3
PY=
for p in python3 /usr/bin/python3; do
    if command -v "$p" >/dev/null 2>&1 && "$p" -c 'import torch, h5py' >/dev/null 2>&1; then
        PY=$p
        break
    fi
done
if [ -z "$PY" ]; then
    echo "bench-torch: PyTorch or h5py is not installed for python3; install them with"
    echo "  apt-get install python3-torch python3-h5py"
    echo "and run 'make bench-torch' again (nothing measured)."
    exit 0
fi
TORCH="$PY bench/torch/dtrain_torch.py"
mkdir -p "$OUT"

# the data: MNIST when its IDX files are at hand (as the tests find them), else synthetic digits
data=
for dir in "${DTRAIN_MNIST:-}" data/mnist ../shared/data/mnist; do
    if [ -n "$dir" ] && ls "$dir"/*-images-idx3-ubyte* >/dev/null 2>&1; then
        data=build/bench-mnist.h5
        [ -f "$data" ] || ./dtrain prepare --mnist "$dir" --out "$data" --quiet || exit 1
        what="colored MNIST from $dir"
        break
    fi
done
if [ -z "$data" ]; then
    data=build/bench-small.h5
    [ -f "$data" ] || ./dtrain prepare --synthetic --out "$data" --quiet 2>/dev/null || exit 1
    what="synthetic digits (no MNIST IDX files found)"
fi

echo "dtrain against PyTorch on $(nproc) cores: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "data: $data ($what); $($PY -c 'import torch; print("PyTorch", torch.__version__)'); load now: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "== PyTorch models checked (50 steps each)"
if ! $TORCH check --data "$data" --threads 1 --steps 50; then
    echo "bench-torch: the PyTorch models failed their check; no comparison made"
    exit 1
fi

results=$OUT/results.tsv
: >"$results"
# images/s of one dtrain run, or nothing when it failed
dtrain_ips() { # cores model batch steps tag [options...]
    local np=$1 model=$2 batch=$3 steps=$4 tag=$5
    shift 5
    local dir=$OUT/$model-$np-$tag
    if $MPI -np "$np" ./dtrain "$model" --data "$data" --threads 1 --batch "$batch" --max-steps "$steps" \
        --out "$dir" --overwrite "$@" >"$dir.log" 2>&1; then
        $PY -c 'import json, sys; print(json.load(open(sys.argv[1]))["images_per_s"])' "$dir/summary.json"
    else
        echo "  dtrain $model ($np cores, $tag) failed, see $dir.log" >&2
    fi
}
torch_ips() { # cores model batch steps
    local log=$OUT/$2-$1-torch.log
    if $TORCH "$2" --data "$data" --threads "$1" --batch "$3" --steps "$4" >"$log" 2>&1; then
        $PY -c 'import json, sys; print(json.loads(open(sys.argv[1]).read())["images_per_s"])' "$log"
    else
        echo "  PyTorch $2 ($1 cores) failed, see $log" >&2
    fi
}
record() { # model cores row value
    if [ -n "$4" ]; then
        printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$results"
        printf ' %s %.0f' "$3" "$4"
    else
        printf ' %s -' "$3"
    fi
}

echo
echo "== runs (images/s; the CycleGAN counts A and B images, 2 x batch per iteration)"
for model in ${MODELS:-cyclegan vae dvae jvae}; do
    if [ "$model" = cyclegan ]; then batch=64 steps=$GAN_STEPS; else batch=128 steps=$VAE_STEPS; fi
    for np in 1 2; do
        for r in $(seq "$ROUNDS"); do
            printf '%-8s %d core(s) round %d:' "$model" "$np" "$r"
            record "$model" "$np" dtrain "$(dtrain_ips "$np" "$model" "$batch" "$steps" default)"
            if [ "$model" = cyclegan ]; then
                # shellcheck disable=SC2086 # LITERAL_GAN is a list of options
                record "$model" "$np" literal "$(dtrain_ips "$np" "$model" "$batch" "$steps" literal $LITERAL_GAN)"
            fi
            record "$model" "$np" pytorch "$(torch_ips "$np" "$model" "$batch" "$steps")"
            echo
        done
    done
done

echo
echo "== medians of $ROUNDS rounds: dtrain ($GAN_STEPS CycleGAN / $VAE_STEPS VAE steps, all timed) and"
echo "   PyTorch (as many steps, timed after 3 warm-up steps); batch 64 (CycleGAN) / 128 (VAEs)"
$PY - "$results" "$LITERAL_GAN" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    model, cores, row, v = line.split("\t")
    rows.setdefault((model, int(cores), row), []).append(float(v))
label = {"dtrain": "dtrain", "literal": "dtrain, literal recipe: " + sys.argv[2]}
w = max(len(label["literal"]), 26)
print(f"{'model':9} {'cores':>5}  {'dtrain run':{w}} {'dtrain img/s':>12} {'PyTorch img/s':>13} {'dtrain/PyTorch':>14}")
for model in ("cyclegan", "vae", "dvae", "jvae"):
    if not any(k[0] == model for k in rows):
        continue  # not among MODELS
    for cores in (1, 2):
        pt = rows.get((model, cores, "pytorch"))
        pmed = statistics.median(pt) if pt else None
        for row in ("dtrain", "literal"):
            d = rows.get((model, cores, row))
            if d is None and row == "literal":
                continue
            dmed = statistics.median(d) if d else None
            name = label[row] + (" (default recipe)" if model == "cyclegan" and row == "dtrain" else "")
            ratio = f"{dmed / pmed:14.2f}" if dmed and pmed else f"{'-':>14}"
            ds = f"{dmed:12.0f}" if dmed else f"{'failed':>12}"
            ps = f"{pmed:13.0f}" if pmed else f"{'failed':>13}"
            print(f"{model:9} {cores:5d}  {name:{w}} {ds} {ps} {ratio}")
PY
