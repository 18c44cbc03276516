#!/usr/bin/env bash
# A run owns its output folder. A second run on a folder in use is refused at
# once, naming the holder, and the first finishes; the lock dies with its
# holder (SIGKILL); without flock (DTRAIN_LOCK=file) a lock file does the same,
# taken over when its holder is gone. A fresh run never replaces an earlier
# run's files: refused unless --overwrite, which removes only what dtrain
# wrote. A resume that has nothing left to train rewrites nothing.
set -u
source "$(dirname "$0")/lib.sh"
ensure_data
T="$WORK/runs"
mkdir -p "$T"
vae=(--data "$DATA" --threads 1 --batch 32)
LONG=400 # steps of a run that holds its folder for several seconds

# holder_pid DIR: the pid the lock file of DIR names
holder_pid() { sed -n 's/^pid //p' "$1/.dtrain.lock"; }
# attempt NP args...: a run expected to be refused; sets rc, took (ms), msg (its error lines)
attempt() {
    local np=$1 t0 out
    shift
    t0=$(now_ms)
    out=$(timeout -k 5 60 "$MPIRUN" -np "$np" "$DTRAIN" "$@" 2>&1)
    rc=$?
    took=$(($(now_ms) - t0))
    msg=$(grep '^dtrain: error:' <<<"$out")
}
one_line() { test "$(grep -c . <<<"$msg")" = 1; }
# sums DIR: md5 of what a run leaves, the lock and runs.jsonl aside
sums() { (cd "$1" && md5sum $(ls | grep -v '^runs.jsonl$')); }

# ---- 1. two runs on one folder: the second refuses at once, the first finishes ----
run_np 1 vae "${vae[@]}" --max-steps $LONG --out "$T/busy" >"$T/busy.log" 2>&1 &
job=$!
wait_for "$T/busy/.dtrain.lock" "^command " 60
attempt 2 vae "${vae[@]}" --max-steps 5 --out "$T/busy"
wait $job
rc1=$?
read -r pid host < <(python3 -c "
import json, sys; s = json.loads(open(sys.argv[1]).readline()); print(s['pid'], s['hosts'][0])" "$T/busy/runs.jsonl")
check "a second run on a folder in use: status 2 on both ranks in $took ms (got $rc)" test "$rc" = 2 -a "$took" -lt 10000
check "... one line naming the holder's pid $pid, host $host, command and start: ${msg:15:100}" bash -c '
    [ "$(grep -c . <<<"$1")" = 1 ] &&
    grep -Eq "^dtrain: error: --out $2 is in use by another dtrain run: pid $3 on host $4, since [0-9-]+ [0-9:]+ UTC, command .*vae .*--out $2" <<<"$1"' \
    _ "$msg" "$T/busy" "$pid" "$host"
check "... and the first run finished normally (status $rc1)" \
    bash -c "[ $rc1 = 0 ] && grep -q 'test loss' '$T/busy.log' && grep -q '\"status\": 0' '$T/busy/runs.jsonl'"
check "... the refused run left no record in runs.jsonl" test "$(grep -c '"event": "start"' "$T/busy/runs.jsonl")" = 1

# ---- 2. the lock dies with its holder ----
run_np 1 vae "${vae[@]}" --max-steps 2000 --checkpoint-every 5 --out "$T/killed" >/dev/null 2>&1 &
job=$!
for _ in $(seq 600); do [ -f "$T/killed/checkpoint.h5" ] && break; sleep 0.1; done
attempt 1 vae "${vae[@]}" --max-steps 20 --out "$T/killed" --resume auto
check "while its holder runs, --resume auto on the folder is refused (status $rc)" test "$rc" = 2
kill -KILL "$(holder_pid "$T/killed")"
wait $job
run_np 1 vae "${vae[@]}" --max-steps 20 --out "$T/killed" --resume auto >"$T/killed.log" 2>&1
check "holder killed with SIGKILL: the lock is gone with it, --resume auto continues (status $?)" \
    grep -q "^dtrain: resumed vae from $T/killed/checkpoint.h5" "$T/killed.log"

# ---- 3. without flock: an exclusive lock file (forced with DTRAIN_LOCK=file) ----
export DTRAIN_LOCK=file
F="$T/file"
DTRAIN_LOCK_REFRESH=1 run_np 1 vae "${vae[@]}" --max-steps $((LONG * 2)) --out "$F" >"$F.log" 2>&1 &
job=$!
wait_for "$F/.dtrain.lock" "^command " 60
hp=$(holder_pid "$F")
check "fallback: the lock file names its mode" grep -q "^mode file$" "$F/.dtrain.lock"
m1=$(stat -c %.9Y "$F/.dtrain.lock")
sleep 2.5
m2=$(stat -c %.9Y "$F/.dtrain.lock")
check "fallback: the holder refreshes its lock file's mtime ($m1 -> $m2)" python3 -c "import sys; assert float('$m2') > float('$m1')"
attempt 1 vae "${vae[@]}" --max-steps 5 --out "$F" --resume auto
check "fallback: a live holder is refused (status $rc): ${msg:15:90}" bash -c '
    [ "$1" = 2 ] && [ "$(grep -c . <<<"$2")" = 1 ] &&
    grep -q "in use by another dtrain run: pid $3 on host $(hostname), since .*; if that run is really gone, remove $4/.dtrain.lock" <<<"$2"' \
    _ "$rc" "$msg" "$hp" "$F"
wait $job
check "fallback: the holder finishes (status $?) and removes its lock file" test ! -e "$F/.dtrain.lock"
# a holder that dies leaves its file: on this host, its pid gone, it is taken over
run_np 1 vae "${vae[@]}" --max-steps 2000 --checkpoint-every 5 --out "$F" --resume auto >/dev/null 2>&1 &
job=$!
wait_for "$F/.dtrain.lock" "^command " 60
dead=$(holder_pid "$F")
kill -KILL "$dead"
wait $job
check "fallback: a holder killed with SIGKILL leaves its lock file" test -e "$F/.dtrain.lock"
run_np 1 vae "${vae[@]}" --max-steps 20 --out "$F" --resume auto >"$F.stale.log" 2>&1
rc=$?
check "fallback: the stale lock of pid $dead, gone from this host, is taken over (status $rc)" \
    grep -q "^dtrain: warning: taking over the run lock $F/.dtrain.lock of a run that is gone: pid $dead on host" "$F.stale.log"
check "... and that run resumed and ended, removing the lock file" \
    bash -c "[ $rc = 0 ] && grep -q '^dtrain: resumed vae' '$F.stale.log' && [ ! -e '$F/.dtrain.lock' ]"
# a holder on another host cannot be checked: refused, unless it is this SLURM job (a requeue)
printf 'dtrain run lock\nhost n99.elsewhere\npid 4242\nsince 1700000000\nslurm_job_id 777\nmode file\ncommand dtrain vae --out %s\n' \
    "$F" >"$F/.dtrain.lock"
attempt 1 vae "${vae[@]}" --max-steps 20 --out "$F" --resume auto
check "fallback: a lock of another host is refused, saying how to remove it: ${msg:15:60}" bash -c '
    [ "$1" = 2 ] && [ "$(grep -c . <<<"$2")" = 1 ] &&
    grep -q "pid 4242 on host n99.elsewhere (SLURM job 777), since 2023-11-14 22:13:20 UTC.*another host cannot be checked.*remove $3/.dtrain.lock" <<<"$2"' \
    _ "$rc" "$msg" "$F"
SLURM_JOB_ID=777 run_np 1 vae "${vae[@]}" --max-steps 20 --out "$F" --resume auto >"$F.requeue.log" 2>&1
check "fallback: ... but taken over by the same SLURM job (a requeue on another node; status $?)" \
    grep -q "^dtrain: warning: taking over the run lock .*pid 4242 on host n99.elsewhere" "$F.requeue.log"
unset DTRAIN_LOCK

# ---- 4. a fresh run never replaces an earlier run's files ----
O="$T/old"
run_np 1 dvae "${vae[@]}" --max-steps 10 --checkpoint-every 5 --out "$O" >/dev/null 2>&1 # .prev at step 5
before=$(sums "$O")
attempt 1 vae "${vae[@]}" --max-steps 2 --out "$O"
check "a fresh run into a folder with a checkpoint: refused (status $rc), pointing to --resume auto and --overwrite" \
    bash -c '[ "$1" = 2 ] && [ "$(grep -c . <<<"$2")" = 1 ] && grep -q "holds an earlier run (checkpoint.h5.*--resume auto.*--overwrite" <<<"$2"' \
    _ "$rc" "$msg"
check "... and the folder is untouched" test "$(sums "$O")" = "$before"
expect_error 1 "--overwrite with --resume" vae "${vae[@]}" --max-steps 2 --out "$O" --overwrite --resume auto
echo "notes" >"$O/notes.txt"
mkdir -p "$O/mine"
run_np 1 vae "${vae[@]}" --max-steps 2 --out "$O" --overwrite >"$O.log" 2>&1
check "--overwrite: the fresh run works (status $?)" grep -q "^dtrain vae: test loss" "$O.log"
check "--overwrite: the earlier run's files are gone (checkpoint.prev.h5, categories.png, latents.md, latent_mi.csv)" \
    bash -c "cd '$O' && [ ! -e checkpoint.prev.h5 ] && [ ! -e categories.png ] && [ ! -e latents.md ] && [ ! -e latent_mi.csv ]"
check "--overwrite: the new checkpoint is the fresh run's (step 2)" \
    grep -q "resume with --resume $O/checkpoint.h5" "$O.log"
check "--overwrite: files dtrain did not write stay, and runs.jsonl keeps the history" python3 - "$O" <<'PY'
import json, os, sys
d = sys.argv[1]
assert open(os.path.join(d, "notes.txt")).read() == "notes\n" and os.path.isdir(os.path.join(d, "mine"))
r = [json.loads(l) for l in open(os.path.join(d, "runs.jsonl"))]
starts = [x for x in r if x["event"] == "start"]
assert [x["model"] for x in starts] == ["dvae", "vae"], starts
assert starts[1]["overwrite"] is True and starts[0]["overwrite"] is False
PY
# another model into the same folder
run_np 1 vae "${vae[@]}" --max-steps 2 --out "$T/mixed" >/dev/null 2>&1
before=$(sums "$T/mixed")
attempt 1 cyclegan --data "$DATA" --threads 1 --batch 32 --max-steps 2 --out "$T/mixed"
check "a cyclegan run into a vae run's folder: refused (status $rc) and the folder untouched" \
    bash -c '[ "$1" = 2 ] && [ "$(grep -c . <<<"$2")" = 1 ] && [ "$3" = "$4" ]' _ "$rc" "$msg" "$before" "$(sums "$T/mixed")"
# the study checks every model's folder before any trains
S="$T/study"
mkdir -p "$S/jvae"
cp "$O/checkpoint.h5" "$S/jvae/"
attempt 1 study --data "$DATA" --epochs 1 --batch 256 --threads 1 --out "$S"
check "study: a model folder holding a run refuses the fresh study before any model trains (status $rc)" \
    bash -c '[ "$1" = 2 ] && grep -q "^dtrain: error: --out $2/jvae holds an earlier run" <<<"$3" && [ ! -e "$2/vae/checkpoint.h5" ]' \
    _ "$rc" "$S" "$msg"
expect_error 1 "study: --overwrite with --resume" study --data "$DATA" --out "$S" --overwrite --resume auto

# ---- 5. a resume with nothing to train rewrites nothing ----
E="$T/epoch"
run_np 1 vae "${vae[@]}" --batch 256 --epochs 1 --out "$E" >/dev/null 2>&1
before=$(sums "$E")
sum0=$(md5sum <"$E/summary.json")
run_np 1 vae "${vae[@]}" --batch 256 --epochs 1 --out "$E" --resume auto >"$E.log" 2>&1
rc=$?
check "resuming a finished run (--epochs reached): status $rc, one line saying so" \
    bash -c "[ $rc = 0 ] && grep -q '^dtrain vae: nothing to train: the run in $E is at step [0-9]* (epoch 1), at or past --epochs 1' '$E.log'"
check "... summary.json byte-identical" test "$(md5sum <"$E/summary.json")" = "$sum0"
check "... metrics, pictures, embeddings and checkpoint untouched" test "$(sums "$E")" = "$before"
check "... and runs.jsonl says so" grep -q '"how": "nothing to train"' "$E/runs.jsonl"
G="$T/gan"
gan=(--data "$DATA" --threads 1 --batch 32 --max-steps 3)
run_np 1 cyclegan "${gan[@]}" --out "$G" >/dev/null 2>&1
before=$(sums "$G")
run_np 1 cyclegan "${gan[@]}" --out "$G" --resume auto >"$G.log" 2>&1
rc=$?
check "cyclegan resumed at --max-steps: status $rc, one line saying so" \
    bash -c "[ $rc = 0 ] && grep -q '^dtrain cyclegan: nothing to train: .* --max-steps 3' '$G.log'"
check "... nothing rewritten" test "$(sums "$G")" = "$before"

echo "counts $PASSED $FAILED"
