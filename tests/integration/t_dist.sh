#!/usr/bin/env bash
# The dist module's group collectives and pairwise exchange at 1 to 4 ranks;
# Adam's and the products' bits on CPUs with and without AVX2 (and AVX-512).
set -u
source "$(dirname "$0")/lib.sh"
for np in 1 2 3 4; do
    check "group sums, sharded sum + gather, pairwise exchange at $np rank(s)" \
        timeout -k 5 120 "$MPIRUN" -np $np "$BIN/dist_check"
done
# Adam's loops exist for AVX2 and for baseline x86-64 (and a streamed AVX2
# variant): all must give the same bits. A CPU without AVX2, emulated, shows it.
if [ "$(uname -m)" != x86_64 ]; then
    echo "  skip Adam on a CPU without AVX2: not an x86-64 machine"
elif command -v qemu-x86_64 >/dev/null 2>&1; then
    here=$("$BIN/adam_bits")
    old=$(qemu-x86_64 -cpu Nehalem "$BIN/adam_bits" 2>/dev/null)
    check "Adam: the same bits with AVX2 ($here) and on a CPU without it (qemu Nehalem: $old)" \
        test -n "$here" -a "$here" = "$old"
else
    echo "  skip Adam on a CPU without AVX2: qemu-x86_64 not installed (apt-get install qemu-user)"
fi
# The product kernels (AVX-512, AVX2 + FMA, scalar) and the convolutions on
# them: the same bits on this CPU's path and on CPUs without AVX-512 or AVX2
here=$("$BIN/gemm_bits")
for path in avx2 scalar; do
    forced=$(DTRAIN_GEMM=$path "$BIN/gemm_bits")
    check "products: this CPU's path ($here) and DTRAIN_GEMM=$path ($forced) give the same bits" \
        test -n "$here" -a "${here%% *}" = "${forced%% *}"
done
if [ "$(uname -m)" = x86_64 ] && command -v qemu-x86_64 >/dev/null 2>&1; then
    for cpu in Haswell Nehalem; do
        old=$(qemu-x86_64 -cpu $cpu "$BIN/gemm_bits" 2>/dev/null)
        check "products: the same bits here ($here) and on an emulated $cpu ($old)" \
            test -n "$old" -a "${here%% *}" = "${old%% *}"
    done
else
    echo "  skip products on emulated CPUs: no x86-64 qemu-x86_64 (apt-get install qemu-user)"
fi
echo "counts $PASSED $FAILED"
