#!/usr/bin/env bash
# The quick start's main job: make sure there is data, then train the
# continuous VAE on 2 MPI ranks with the defaults; pictures land in results/vae/.
# Data, in order: data/colored_mnist.h5 if it exists; MNIST in $DTRAIN_MNIST or
# data/mnist; MNIST downloaded by `make data`; Fashion-MNIST from Debian's
# dataset-fashion-mnist package; digits drawn in code (--synthetic).
# Extra arguments go to `dtrain vae`, e.g. scripts/demo.sh --epochs 5; run again, it
# continues (--resume auto) unless given --overwrite or --resume
set -euo pipefail
cd "$(dirname "$0")/.."
NP="${NP:-2}"
data=data/colored_mnist.h5
have_mnist() { [ -f "$1/t10k-images-idx3-ubyte.gz" ] || [ -f "$1/t10k-images-idx3-ubyte" ]; }
if [ ! -f "$data" ]; then
    src="${DTRAIN_MNIST:-data/mnist}"
    if have_mnist "$src"; then
        ./dtrain prepare --mnist "$src" --out "$data"
    elif bash scripts/fetch-mnist.sh data/mnist; then
        ./dtrain prepare --mnist data/mnist --out "$data"
    elif have_mnist /usr/share/datasets/fashion-mnist; then
        echo "demo: MNIST could not be downloaded; using Fashion-MNIST from /usr/share/datasets/fashion-mnist"
        ./dtrain prepare --mnist /usr/share/datasets/fashion-mnist --out "$data"
    else
        echo "demo: no MNIST and no download; using synthetic digits (dtrain prepare --synthetic)"
        ./dtrain prepare --synthetic --out "$data"
    fi
fi
# run again, the demo continues its run (or says it has nothing left to train);
# scripts/demo.sh --overwrite starts it afresh
case " $* " in
*" --overwrite "* | *" --resume"*) ;;
*) set -- --resume auto "$@" ;;
esac
exec scripts/mpirun -np "$NP" ./dtrain vae --data "$data" "$@"
