#!/usr/bin/env bash
# Bad input: one `dtrain: error:` line, exit status 2, every rank ends, and
# nothing good on disk is overwritten.
set -u
source "$(dirname "$0")/lib.sh"
ensure_data
T="$WORK/errors"
mkdir -p "$T"
common=(--data "$DATA" --threads 1)

# a good checkpoint to damage and to protect
run_np 1 vae "${common[@]}" --max-steps 3 --out "$T/good" >/dev/null 2>&1 || fail "making a checkpoint"
good_sum=$(md5sum <"$T/good/checkpoint.h5")

for np in 1 2; do
    expect_error $np "unknown command" frobnicate
    expect_error $np "unknown option" vae --epoch 3
    expect_error $np "malformed number" vae --epochs 3x
    expect_error $np "negative number" vae --batch -5
    expect_error $np "option without value" vae --out
    expect_error $np "missing data file that cannot be prepared" vae --data /proc/nonexistent/d.h5 --out "$T/o"
done
expect_error 2 "batch smaller than the number of ranks" vae "${common[@]}" --batch 1 --out "$T/o"
expect_error 3 "batch smaller than the number of ranks" vae "${common[@]}" --batch 2 --out "$T/o"

head -c 4096 /dev/urandom >"$T/random.h5"
expect_error 2 "data file of random bytes" vae --data "$T/random.h5" --out "$T/o"
head -c 100000 "$DATA" >"$T/truncated.h5"
expect_error 1 "truncated HDF5 data file" vae --data "$T/truncated.h5" --out "$T/o"
expect_error 2 "truncated HDF5 data file" vae --data "$T/truncated.h5" --out "$T/o"
expect_error 2 "HDF5 file without the data sets" vae --data "$T/good/embeddings.h5" --out "$T/o"
expect_error 1 "output folder that cannot be written" vae "${common[@]}" --out /proc/dtrain-out
touch "$T/afile"
expect_error 2 "output folder that is a file" vae "${common[@]}" --out "$T/afile/sub"
expect_error 2 "resume from a file that is not a checkpoint" vae "${common[@]}" --out "$T/o" --resume "$DATA"
expect_error 1 "resume from a missing checkpoint" vae "${common[@]}" --out "$T/o" --resume "$T/none.h5"

cp "$T/good/checkpoint.h5" "$T/corrupt.h5"
size=$(stat -c %s "$T/corrupt.h5")
printf 'garbage!garbage!' | dd of="$T/corrupt.h5" bs=1 seek=$((size / 2)) conv=notrunc status=none
expect_error 2 "checkpoint with damaged parameters (checksum)" vae "${common[@]}" --out "$T/o" --resume "$T/corrupt.h5"
head -c $((size / 3)) "$T/good/checkpoint.h5" >"$T/short.h5"
expect_error 1 "truncated checkpoint" vae "${common[@]}" --out "$T/o" --resume "$T/short.h5"
expect_error 2 "embed without --checkpoint" embed --data "$DATA"

# bad MNIST folders given to prepare (and to a training run that prepares)
python3 - "$T" <<'PY'
import gzip, os, struct, sys
t = sys.argv[1]
def idx(path, dims, payload_len=None, magic=None, gz=True):
    head = (magic if magic is not None else bytes([0, 0, 8, len(dims)])) + b"".join(struct.pack(">I", d) for d in dims)
    n = 1
    for d in dims: n *= d
    body = bytes((i * 7) % 256 for i in range(n if payload_len is None else payload_len))
    if len(dims) == 1 and payload_len is None: body = bytes(i % 10 for i in range(n))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    (gzip.open if gz else open)(path, "wb").write(head + body)
def pair(d, img_dims, lab_n, **kw):
    idx(f"{t}/{d}/t10k-images-idx3-ubyte.gz", img_dims, **kw)
    idx(f"{t}/{d}/t10k-labels-idx1-ubyte.gz", [lab_n])
pair("notidx", [20, 28, 28], 20, magic=b"\x89PNG")
pair("truncated", [20, 28, 28], 20, payload_len=20 * 784 - 100)
pair("counts", [20, 28, 28], 19)
pair("size27", [20, 27, 27], 20)
PY
expect_error 1 "prepare: MNIST file that is not IDX" prepare --mnist "$T/notidx" --out "$T/p.h5"
expect_error 1 "prepare: truncated IDX file" prepare --mnist "$T/truncated" --out "$T/p.h5"
expect_error 1 "prepare: image and label counts differ" prepare --mnist "$T/counts" --out "$T/p.h5"
expect_error 1 "prepare: images that are not 28x28" prepare --mnist "$T/size27" --out "$T/p.h5"
DTRAIN_MNIST="$T/truncated" expect_error 2 "training whose data must be prepared from a truncated IDX" \
    vae --data "$T/p.h5" --out "$T/o" --threads 1
check "no data file left behind by the failed prepares" test ! -e "$T/p.h5"
cp "$DATA" "$T/keep.h5"
keep_sum=$(md5sum <"$T/keep.h5")
expect_error 1 "prepare over a good file from a bad source" prepare --mnist "$T/truncated" --out "$T/keep.h5"
check "the good data file is untouched" test "$(md5sum <"$T/keep.h5")" = "$keep_sum"

# a failed resume into the run's own folder leaves its checkpoint alone
expect_error 2 "resume of a corrupt checkpoint into a run folder" vae "${common[@]}" --out "$T/good" --resume "$T/corrupt.h5"
check "the good checkpoint is untouched" test "$(md5sum <"$T/good/checkpoint.h5")" = "$good_sum"
check "no temporary files left" bash -c "! ls '$T'/good/*.tmp.* 2>/dev/null | grep -q ."

echo "counts $PASSED $FAILED"
