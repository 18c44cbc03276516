#!/usr/bin/env bash
# Readers of outside bytes, end to end: the data set file's gate and checks,
# paths that are not regular files, IDX headers that lie, and prepare on a
# full disk. Each bad input ends every rank with one `dtrain: error:` line
# and status 2, and nothing is left or replaced on disk.
set -u
source "$(dirname "$0")/lib.sh"
ensure_data
T="$WORK/readers"
mkdir -p "$T"
vae=(vae --threads 1 --max-steps 2 --batch 16 --out "$T/o")

# reseal FILE: write the gate (data/README.md) for the file's current content
reseal() {
    python3 - "$1" <<'PY'
import hashlib, sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
block = (b"dtrain data set\nsha256 " + hashlib.sha256(b[512:]).hexdigest().encode() + b"\n").ljust(512, b"\0")
b[:512] = block
open(p, "wb").write(b)
PY
}
# poke FILE DATASET INDEX VALUE: overwrite one byte of a contiguous uint8 dataset
poke() {
    local off
    off=$(h5dump -p -H -d "$2" "$1" | awk '/OFFSET/ {print $2; exit}')
    printf "$(printf '\\x%02x' "$4")" | dd of="$1" bs=1 seek=$((off + $3)) conv=notrunc status=none
}

# --- the gate -----------------------------------------------------------------
cp "$DATA" "$T/resealed.h5"
reseal "$T/resealed.h5"
check "the gate's format is the documented one (a resealed copy is byte-identical)" \
    cmp -s "$DATA" "$T/resealed.h5"
cp "$DATA" "$T/flipped.h5"
poke "$T/flipped.h5" /vae/train/digits 5 200
expect_error 2 "one changed byte in the data set" "${vae[@]}" --data "$T/flipped.h5"
tail -c +513 "$DATA" >"$T/old.h5"
expect_error 2 "a data set without the gate (older format)" "${vae[@]}" --data "$T/old.h5"
check "the older-format message names the command that rebuilds it" bash -c \
    "'$MPIRUN' -np 1 '$DTRAIN' ${vae[*]} --data '$T/old.h5' 2>&1 | grep -q 'dtrain prepare --out $T/old.h5'"

# --- dtrain's own checks behind the gate ----------------------------------------
cp "$DATA" "$T/digit10.h5"
poke "$T/digit10.h5" /vae/train/digits 17 10
reseal "$T/digit10.h5"
for np in 1 2; do
    expect_error $np "a digit label of 10 (sealed file)" "${vae[@]}" --data "$T/digit10.h5"
done
cp "$DATA" "$T/color12.h5"
poke "$T/color12.h5" /cyclegan/B/test/colors 0 12
reseal "$T/color12.h5"
expect_error 2 "a CycleGAN color label of 12 (sealed file)" cyclegan --threads 1 --max-steps 1 \
    --batch 4 --data "$T/color12.h5" --out "$T/o"

# an empty split: prepare from 3 images leaves /cyclegan/A/test empty
mkdir -p "$T/three"
python3 - "$T/three" <<'PY'
import gzip, struct, sys
d = sys.argv[1]
gzip.open(d + "/t10k-images-idx3-ubyte.gz", "wb").write(struct.pack(">HBBIII", 0, 8, 3, 3, 28, 28) + bytes(range(256)) * 9 + bytes(3 * 784 - 2304))
gzip.open(d + "/t10k-labels-idx1-ubyte.gz", "wb").write(struct.pack(">HBBI", 0, 8, 1, 3) + bytes([1, 2, 3]))
PY
"$DTRAIN" prepare --mnist "$T/three" --out "$T/three.h5" --quiet
expect_error 2 "an empty split (0 images)" cyclegan --threads 1 --max-steps 1 --batch 2 \
    --data "$T/three.h5" --out "$T/o"
check "the empty split is named" bash -c \
    "'$MPIRUN' -np 1 '$DTRAIN' cyclegan --data '$T/three.h5' --out '$T/o' 2>&1 | grep -q '/cyclegan/A/test holds no images'"

# --- paths that are not regular files -------------------------------------------
src="${DTRAIN_TEST_MNIST:-$ROOT/../shared/data/mnist}"
mkfifo "$T/fifo.h5"
for np in 1 2; do
    expect_error $np "a FIFO as --data" "${vae[@]}" --data "$T/fifo.h5"
done
ln -s "$T/loop.h5" "$T/loop.h5"
DTRAIN_MNIST="$src" \
    expect_error 2 "a symlink loop as --data (with \$DTRAIN_MNIST set)" "${vae[@]}" --data "$T/loop.h5"
check "the symlink loop is still a symlink" test -L "$T/loop.h5"
ln -s "$T/nowhere/x.h5" "$T/dangling.h5"
DTRAIN_MNIST="$src" \
    expect_error 1 "a dangling symlink as --data" "${vae[@]}" --data "$T/dangling.h5"
check "the dangling symlink is untouched" test -L "$T/dangling.h5" -a ! -e "$T/nowhere"

# --- IDX headers that claim more than the file holds ----------------------------
mkdir -p "$T/huge"
python3 - "$T/huge" <<'PY'
import struct, sys
d = sys.argv[1]
open(d + "/t10k-images-idx3-ubyte", "wb").write(struct.pack(">HBBIII", 0, 8, 3, 10, 28, 28) + bytes(7840))
open(d + "/t10k-labels-idx1-ubyte", "wb").write(struct.pack(">HBBI", 0, 8, 1, 1 << 31) + bytes(10))
PY
expect_error 1 "a raw label file whose header claims 2^31 labels" prepare --mnist "$T/huge" --out "$T/huge.h5"
start=$(date +%s%N)
"$DTRAIN" prepare --mnist "$T/huge" --out "$T/huge.h5" 2>/dev/null
ms=$((($(date +%s%N) - start) / 1000000))
check "... refused in ${ms} ms (no 2 GB allocation first)" test "$ms" -lt 2000

# --- prepare on a full disk -------------------------------------------------------
if [ -f "$src/t10k-images-idx3-ubyte.gz" ]; then source_opt=(--mnist "$src"); else source_opt=(--synthetic); fi
mkdir -p "$T/full"
if [ "$(id -u)" = 0 ] && mount -t tmpfs -o size=1m tmpfs "$T/full" 2>/dev/null; then
    for size in 300k 1m; do
        mount -o remount,size=$size "$T/full"
        expect_error 1 "prepare --out on a full disk ($size tmpfs)" prepare "${source_opt[@]}" --out "$T/full/d.h5"
        check "... leaves nothing behind ($size)" test -z "$(ls -A "$T/full")"
    done
    umount "$T/full"
else
    echo "  skip prepare on a full disk: mounting a tmpfs needs root (and a system that allows it)"
fi

echo "counts $PASSED $FAILED"
