#!/usr/bin/env bash
# The dist module's group collectives and pairwise exchange at 1 to 4 ranks;
# Adam's bits on CPUs with and without AVX2.
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
echo "counts $PASSED $FAILED"
