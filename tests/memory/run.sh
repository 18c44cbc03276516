#!/usr/bin/env bash
# make check-memory. First dtrain built with AddressSanitizer + UBSan
# (build-asan/): the unit suites, then every model at 1-3 ranks (vae also
# through messages; cyclegan 1, 2 and 4) through an epoch, its evaluation, embeddings and pictures, and a
# resume. Any sanitizer report fails the check, leaks of dtrain's own
# allocations included (the MPI stack's are suppressed: lsan.supp). ASan does
# not see inside OpenBLAS (not instrumented), so then valgrind runs the normal
# build over a short run of each model with its pictures at 1 rank, and fails on
# any error whose stack passes through dtrain's code (src/), e.g. a read past a
# buffer handed to cblas_sgemm. A small data set is made for both (400 digits).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
source "$ROOT/tests/integration/lib.sh"
ASAN_BIN="$ROOT/build-asan"
M="$WORK/memory"
mkdir -p "$M"
trap 'rm -rf "$WORK"' EXIT
# LeakSanitizer reports every leak at exit without changing the status (exitcode=0):
# Open MPI unloads its components before, so their leaks come with unnamed frames
# that no suppression can match; a leak counts when a frame of its stack is in
# dtrain's sources (ours_in)
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:exitcode=86:detect_stack_use_after_return=0"
export LSAN_OPTIONS="exitcode=0:suppressions=$ROOT/tests/memory/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"

command -v valgrind >/dev/null || {
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get install -y -q --no-install-recommends valgrind >/dev/null 2>&1 ||
        { $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q --no-install-recommends valgrind >/dev/null 2>&1; }
}

python3 "$ROOT/tests/memory/mkdata.py" "$M/idx" 400
"$DTRAIN" prepare --mnist "$M/idx" --out "$M/data.h5" --quiet || { echo "memory: cannot prepare data"; exit 1; }
D="$M/data.h5"

# ours_in LOG: the sanitizer reports in LOG that concern dtrain: every ASan or
# UBSan error, and each leak with a frame in dtrain's sources; prints them
ours_in() {
    python3 - "$1" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
ours = re.compile(r"\bsrc/(core|nn|data|dist|comm|io|models|cli|engine)/\w+\.c:\d+")
bad = []
for m in re.finditer(r"ERROR: AddressSanitizer.*?(?=\n\n|\Z)|runtime error:.*", text, re.S):
    bad.append(m.group(0))
for block in re.split(r"\n(?=(?:Direct|Indirect) leak of)", text):
    if block.startswith(("Direct leak", "Indirect leak")):
        block = block.split("\n\n")[0]
        if ours.search(block):
            bad.append(block)
for b in bad[:3]:
    print("\n".join("       " + l for l in b.splitlines()[:14]))
sys.exit(1 if bad else 0)
PY
}
clean_log() { ours_in "$1" >/dev/null; }
asan_run() { # asan_run NAME NP args...
    local name=$1 np=$2
    shift 2
    timeout -k 5 600 "$MPIRUN" -np "$np" "$ASAN_BIN/dtrain" "$@" >"$M/$name.log" 2>&1
    local rc=$?
    if [ $rc = 0 ] && clean_log "$M/$name.log"; then
        pass "ASan+UBSan: $name"
    else
        fail "ASan+UBSan: $name (status $rc)"
        ours_in "$M/$name.log"
        [ $rc = 0 ] || grep -v "^ *#" "$M/$name.log" | tail -4 | sed 's/^/       /'
    fi
}

echo "== unit suites under ASan + UBSan"
for t in "$ASAN_BIN"/tests/test_*; do
    [ -x "$t" ] || continue
    "$t" >"$M/unit-$(basename "$t").log" 2>&1
    rc=$?
    if [ $rc = 0 ] && clean_log "$M/unit-$(basename "$t").log"; then pass "ASan+UBSan: $(basename "$t")"; else
        fail "ASan+UBSan: $(basename "$t") (status $rc)"
        ours_in "$M/unit-$(basename "$t").log"
        grep -E "Failures: [1-9]|:[EF]:" "$M/unit-$(basename "$t").log" | head -10 | sed 's/^/       /'
    fi
done

echo "== every model under ASan + UBSan: an epoch, evaluation, embeddings, pictures, resume"
vae=(--data "$D" --threads 1 --batch 32 --epochs 1)
for model in vae dvae jvae; do
    for np in 1 2 3; do asan_run "$model-np$np" $np "$model" "${vae[@]}" --out "$M/$model-np$np"; done
    asan_run "$model-resume" 2 "$model" --data "$D" --threads 1 --batch 32 --epochs 2 --out "$M/$model-np1" --resume auto
done
# the messages step: every layer's activations gathered
DTRAIN_EXCHANGE=messages asan_run "vae-messages-np3" 3 vae "${vae[@]}" --out "$M/vae-messages-np3"
gan=(--data "$D" --threads 1 --batch 16 --epochs 1)
# 4 ranks: two per domain, each image's gradient terms recorded and folded
for np in 1 2 4; do asan_run "cyclegan-np$np" $np cyclegan "${gan[@]}" --out "$M/cyclegan-np$np"; done
asan_run "cyclegan-resume" 2 cyclegan --data "$D" --threads 1 --batch 16 --epochs 2 --out "$M/cyclegan-np1" --resume auto
asan_run "embed" 3 embed --checkpoint "$M/jvae-np2/checkpoint.h5" --data "$D" --out "$M/emb.h5"

echo "== valgrind (normal build, 1 rank): errors whose stack passes through dtrain's code"
# valgrind_start NAME args...: in the background, an XML report of invalid reads
# and writes, uses of undefined values and bad frees (leaks are ASan's part, above)
valgrind_start() {
    local name=$1
    shift
    (OMPI_MCA_btl=self OMPI_MCA_pml=ob1 timeout -k 5 900 valgrind --xml=yes --xml-file="$M/vg-$name.xml" \
        --error-limit=no --leak-check=no "$DTRAIN" "$@" >"$M/vg-$name.log" 2>&1
    echo $? >"$M/vg-$name.rc") &
}
# valgrind_check NAME: once it ended, pass or fail on the errors in dtrain's code
valgrind_check() {
    local name=$1
    local rc
    rc=$(cat "$M/vg-$name.rc")
    local ours
    ours=$(python3 - "$M/vg-$name.xml" "$DTRAIN" <<'PY'
import os, sys, xml.etree.ElementTree as ET
# An error is dtrain's when the innermost frame that is neither the C library nor
# valgrind's own is dtrain's code or OpenBLAS (which only touches what dtrain hands
# it); errors that start inside Open MPI, PMIx, hwloc or HDF5 are theirs.
prog = os.path.realpath(sys.argv[2])
def owner(f):
    obj = os.path.realpath(f.findtext("obj") or "")
    if obj == prog or "/src/" in (f.findtext("dir") or ""):
        return "dtrain"
    base = os.path.basename(obj)
    if base.startswith(("libc.", "libc-", "ld-linux", "vgpreload", "libm.", "libpthread")) or not obj:
        return None
    return "dtrain" if base.startswith("libopenblas") else "other"
n = 0
for e in ET.parse(sys.argv[1]).getroot().iter("error"):
    frames = list(e.find("stack").iter("frame")) if e.find("stack") is not None else []
    who = next((o for o in map(owner, frames) if o), "other")
    if who == "dtrain":
        n += 1
        if n <= 3:
            print("       %s: %s" % (e.findtext("kind"), e.findtext("what") or ""))
            for f in frames[:8]:
                print("         at %s (%s)" % (f.findtext("fn"), os.path.basename(f.findtext("obj") or "")))
print("count", n)
PY
)
    local count=${ours##*count }
    if [ "$rc" = 0 ] && [ "$count" = 0 ]; then
        pass "valgrind: $name (no error in dtrain's code)"
    else
        fail "valgrind: $name (status $rc, $count error(s) in dtrain's code)"
        printf '%s\n' "${ours% count*}" | head -30
        [ "$rc" = 0 ] || tail -5 "$M/vg-$name.log" | sed 's/^/       /'
    fi
}
# two at a time, one a core; one small step each (valgrind runs OpenBLAS's
# kernels at some 30 MFLOP/s), then the evaluation and every picture
vg=(--data "$D" --threads 1 --max-steps 1)
valgrind_start vae vae "${vg[@]}" --batch 8 --out "$M/vg-vae"
valgrind_start cyclegan cyclegan "${vg[@]}" --batch 2 --out "$M/vg-cyclegan"
wait
valgrind_start dvae dvae "${vg[@]}" --batch 8 --out "$M/vg-dvae"
valgrind_start jvae jvae "${vg[@]}" --batch 8 --out "$M/vg-jvae"
wait
for name in vae dvae jvae cyclegan; do valgrind_check $name; done

echo "memory: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
