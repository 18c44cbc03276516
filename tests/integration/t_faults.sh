#!/usr/bin/env bash
# Preemption and faults. A stop signal ends every rank with a checkpoint and
# status 75, and --resume auto continues to the very bits of the run that was
# never stopped; a rank killed with SIGKILL ends the job and its last
# checkpoint carries on; a damaged checkpoint is refused or passed over for
# the one before it; a checkpoint that cannot be written stops the run and
# keeps the previous one; a stalled rank is detected by the step watchdog.
set -u
source "$(dirname "$0")/lib.sh"
ensure_data
DIFF="$BIN/ckpt_diff"
T="$WORK/faults"
mkdir -p "$T"
vae=(--data "$DATA" --threads 1 --batch 96)
END=200 # steps of the runs that are stopped and resumed (two epochs and a bit on 9,000 images)

# ranks OUT: the dtrain processes (ranks) of the run writing into OUT, in pid order
ranks() {
    pgrep -f -- "$DTRAIN .*--out $1( |\$)" | while read -r p; do
        [ "$(ps -o comm= -p "$p")" = dtrain ] && echo "$p"
    done
}
# launcher OUT: the mpirun of that run
launcher() { pgrep -x -f -- "mpirun -np [0-9]+ $DTRAIN .*--out $1( .*)?"; }
# stop_step LOG: the step of the stop line
stop_step() { sed -n 's/^dtrain: stopped by SIG[A-Z0-9]* at step \([0-9]*\) .*/\1/p' "$1"; }
elapsed() { echo "$(($(date +%s%N) / 1000000 - $1))"; }
# stop_by_usr1 MODEL DIR args...: a 2-rank run writing into DIR (log DIR.log);
# once it trains, SIGUSR1 to its mpirun. Sets rc and step (where it stopped).
stop_by_usr1() {
    local model=$1 dir=$2 job
    shift 2
    run_np 2 "$model" "$@" --out "$dir" >"$dir.log" 2>&1 &
    job=$!
    # the line just before the first step (the CycleGAN prints its color pairing earlier)
    wait_for "$dir.log" "^dtrain $model: .*train.*images from" 60 && sleep 0.7
    kill -USR1 "$(launcher "$dir")" 2>/dev/null
    wait $job
    rc=$?
    step=$(stop_step "$dir.log")
}
# hit_rank SIG DIR JOB: send SIG to the last rank of the run writing into DIR and
# wait up to 30 s for the job (pid JOB) to end. Sets victim, rc (empty: still
# running, then everything is killed) and took (ms from signal to end).
hit_rank() {
    local sig=$1 dir=$2 job=$3 t0
    victim=$(ranks "$dir" | tail -1)
    t0=$(now_ms)
    kill -"$sig" "$victim" 2>/dev/null
    for _ in $(seq 300); do kill -0 "$job" 2>/dev/null || break; sleep 0.1; done
    rc= took=
    if kill -0 "$job" 2>/dev/null; then
        kill -KILL $(ranks "$dir") "$(launcher "$dir")" 2>/dev/null
        return
    fi
    wait "$job"
    rc=$?
    took=$(elapsed "$t0")
}

# ---- the reference: never stopped; the watchdog, on and tight, stays quiet ----
run_np 2 vae "${vae[@]}" --max-steps $END --step-timeout 3 --out "$T/ref" >"$T/ref.log" 2>&1
check "a run with --step-timeout 3 through evaluations, checkpoints and pictures ends normally" \
    grep -q "test loss" "$T/ref.log"
ntrain=$(sed -n 's/.*, \([0-9]*\) train \/ .*/\1/p' "$T/ref.log" | head -1)
nb=$(((ntrain + 95) / 96)) # steps per epoch
check "runs.jsonl: one start and one end record, with command, hosts of both ranks, version, compiler" \
    python3 - "$T/ref/runs.jsonl" "$T/ref" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert [r["event"] for r in recs] == ["start", "end"], recs
s, e = recs
assert s["command"][1] == "vae" and sys.argv[2] in s["command"], s["command"]
assert s["ranks"] == 2 and len(s["hosts"]) == 2 and all(s["hosts"]), s
for k in "time_utc version revision compiler cflags threads resume resumed_from stop_signals step_timeout".split():
    assert k in s, k
assert s["resumed_from"] is None and e["status"] == 0 and e["step"] == 200, (s, e)
PY

# ---- 1. SIGUSR1 to mpirun: forwarded to the ranks; status 75; resume is exact ----
stop_by_usr1 vae "$T/usr1" "${vae[@]}" --max-steps $END
check "vae: SIGUSR1 to mpirun stops every rank with status 75 (got $rc, at step ${step:-?} of $END)" \
    test "$rc" = 75 -a -n "$step" -a "${step:-$END}" -lt $END
check "vae: rank 0 says where it stopped and how to go on" grep -q \
    "^dtrain: stopped by SIGUSR1 at step $step (epoch [0-9]*); checkpoint written to $T/usr1/checkpoint.h5; continue with --resume auto" \
    "$T/usr1.log"
run_np 2 vae "${vae[@]}" --max-steps $END --out "$T/usr1" --resume auto >"$T/usr1b.log" 2>&1
check "vae: --resume auto from the stop, to the end, equals the uninterrupted run bit for bit" \
    "$DIFF" "$T/ref/checkpoint.h5" "$T/usr1/checkpoint.h5" 0
check "vae: rank 0 logs the resume with its file and step" \
    grep -q "^dtrain: resumed vae from $T/usr1/checkpoint.h5 at step $step (epoch" "$T/usr1b.log"
check "runs.jsonl records the stop (status 75) and the resume" python3 - "$T/usr1/runs.jsonl" "$step" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
step = int(sys.argv[2])
assert [x["event"] for x in r] == ["start", "end", "start", "end"], r
assert r[1]["status"] == 75 and r[1]["how"] == "stopped by SIGUSR1" and r[1]["step"] == step, r[1]
assert r[2]["resume"] == "auto" and r[2]["resumed_from"].endswith("/checkpoint.h5") and r[2]["resumed_step"] == step, r[2]
assert r[3]["status"] == 0 and r[3]["step"] == 200, r[3]
PY

# ---- 2. the signal on rank 1 alone, on the last step of an epoch ----
# rank 0 never sees it: the ranks agree through the step's reduction; the epoch
# ends (evaluation, checkpoint) and the run stops there
DTRAIN_RAISE_AT="$nb:1" run_np 2 vae "${vae[@]}" --max-steps $END --out "$T/edge" >"$T/edge.log" 2>&1
rc=$?
check "vae: a stop seen by rank 1 alone at the epoch's last step $nb: status 75 after the epoch's checkpoint" \
    test "$rc" = 75 -a "$(stop_step "$T/edge.log")" = "$nb"
check "vae: ... and the epoch was evaluated first" grep -q "^epoch   1/" "$T/edge.log"
run_np 2 vae "${vae[@]}" --max-steps $END --out "$T/edge" --resume auto >/dev/null 2>&1
check "vae: resumed from the epoch's end, equals the uninterrupted run bit for bit" \
    "$DIFF" "$T/ref/checkpoint.h5" "$T/edge/checkpoint.h5" 0

# ---- 3. SIGTERM to the ranks themselves (what SLURM and srun do) ----
run_np 2 vae "${vae[@]}" --max-steps $END --out "$T/term" >"$T/term.log" 2>&1 &
job=$!
wait_for "$T/term.log" "^dtrain vae:" 60 && sleep 0.5
t0=$(now_ms)
kill -TERM $(ranks "$T/term") 2>/dev/null
wait $job
rc=$?
check "vae: SIGTERM to every rank: status 75 in $(elapsed "$t0") ms, checkpoint at step $(stop_step "$T/term.log")" \
    test "$rc" = 75 -a -n "$(stop_step "$T/term.log")"
# resumed on 2 and on 3 ranks for one step: the same bits
cp -r "$T/term" "$T/term3"
step=$(stop_step "$T/term.log")
run_np 2 vae "${vae[@]}" --max-steps $((step + 1)) --out "$T/term" --resume auto >/dev/null 2>&1
run_np 3 vae "${vae[@]}" --max-steps $((step + 1)) --out "$T/term3" --resume auto >"$T/term3.log" 2>&1
identical "$T/term/checkpoint.h5" "$T/term3/checkpoint.h5" "vae: stopped on 2 ranks, a step resumed on 3 vs on 2"
# a stop signal before the first step (no step boundary will read it): at once, one line, status 75
t0=$(now_ms)
out=$(DTRAIN_RAISE_AT=0 run_np 2 vae "${vae[@]}" --max-steps 5 --out "$T/early" 2>&1)
rc=$?
check "vae: SIGUSR1 before the first step ends the job at once: status $rc in $(elapsed "$t0") ms" test "$rc" = 75
check "vae: ... with one line saying so, and no checkpoint" bash -c \
    "[ \"\$(grep -c '^dtrain: stopped by SIGUSR1 outside the training steps' <<<'$out')\" = 1 ] && [ ! -e '$T/early/checkpoint.h5' ]"
expect_error 1 "an unknown stop signal" vae "${vae[@]}" --stop-signal USR1,KILL --out "$T/o"

# ---- 4. the CycleGAN: SIGUSR1 to mpirun, then --resume auto to the end ----
# enough steps (about 2 s) that the signal, 0.7 s into training, lands inside them
GEND=100
gan=(--data "$DATA" --threads 1 --batch 16 --max-steps $GEND)
run_np 2 cyclegan "${gan[@]}" --out "$T/gref" >"$T/gref.log" 2>&1 || fail "cyclegan reference run"
stop_by_usr1 cyclegan "$T/gan" "${gan[@]}"
check "cyclegan: SIGUSR1 to mpirun stops both ranks with status 75 (got $rc, at step ${step:-?} of $GEND)" \
    test "$rc" = 75 -a -n "$step" -a "${step:-$GEND}" -lt $GEND
run_np 2 cyclegan "${gan[@]}" --out "$T/gan" --resume auto >"$T/ganb.log" 2>&1
check "cyclegan: --resume auto from the stop equals the uninterrupted run bit for bit" \
    "$DIFF" "$T/gref/checkpoint.h5" "$T/gan/checkpoint.h5" 0

# ---- (a) a rank killed with SIGKILL: the job ends; its last checkpoint carries on ----
run_np 2 vae "${vae[@]}" --max-steps $END --checkpoint-every 10 --out "$T/kill" >"$T/kill.log" 2>&1 &
job=$!
for _ in $(seq 300); do [ -f "$T/kill/checkpoint.prev.h5" ] && break; sleep 0.1; done
hit_rank KILL "$T/kill" $job
if [ -z "$rc" ]; then
    fail "(a) job still running 30 s after a rank was killed"
else
    check "(a) a rank killed with SIGKILL ends the job: status $rc after $took ms" test "$rc" -ne 0
fi
check "(a) no dtrain process left behind" test -z "$(ranks "$T/kill")"
run_np 2 vae "${vae[@]}" --max-steps $END --out "$T/kill" --resume auto >"$T/killb.log" 2>&1
check "(a) --resume auto continues from the last checkpoint ($(sed -n 's/.*resumed vae from .* at step \([0-9]*\) .*/step \1/p' "$T/killb.log"))" \
    grep -q "^dtrain: resumed vae from $T/kill/checkpoint.h5 at step" "$T/killb.log"
check "(a) ... to the end, equal to the uninterrupted run bit for bit" \
    "$DIFF" "$T/ref/checkpoint.h5" "$T/kill/checkpoint.h5" 0
check "(a) no unfinished checkpoint file left" bash -c "! ls '$T'/kill/*.tmp.* 2>/dev/null | grep -q ."

# ---- (b) damaged checkpoints ----
B="$T/bad"
run_np 2 vae "${vae[@]}" --max-steps 20 --checkpoint-every 10 --out "$B" >/dev/null 2>&1 # step 20, .prev step 10
size=$(stat -c %s "$B/checkpoint.h5")
cp "$B/checkpoint.h5" "$T/flipped.h5"
printf '\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8' | dd of="$T/flipped.h5" bs=1 seek=$((size / 2)) conv=notrunc status=none
head -c $((size * 2 / 3)) "$B/checkpoint.h5" >"$T/truncated.h5"
expect_error 2 "(b) --resume FILE with flipped bytes" vae "${vae[@]}" --out "$T/o" --resume "$T/flipped.h5"
expect_error 2 "(b) --resume FILE truncated" vae "${vae[@]}" --out "$T/o" --resume "$T/truncated.h5"
mkdir -p "$T/bad2"
cp "$T/flipped.h5" "$T/bad2/checkpoint.h5"
cp "$T/truncated.h5" "$T/bad2/checkpoint.prev.h5"
expect_error 2 "(b) --resume auto with both checkpoints damaged" vae "${vae[@]}" --out "$T/bad2" --resume auto
truncate -s $((size / 2)) "$B/checkpoint.h5"
run_np 2 vae "${vae[@]}" --max-steps $END --out "$B" --resume auto >"$T/bad.log" 2>&1
check "(b) --resume auto warns about the truncated checkpoint" \
    grep -q "^dtrain: warning: --resume auto: checkpoint $B/checkpoint.h5 .*; trying the checkpoint before it" "$T/bad.log"
check "(b) ... and falls back to the one before it (step 10)" \
    grep -q "^dtrain: resumed vae from $B/checkpoint.prev.h5 at step 10 " "$T/bad.log"
check "(b) ... which runs to the end equal to the uninterrupted run bit for bit" \
    "$DIFF" "$T/ref/checkpoint.h5" "$B/checkpoint.h5" 0
check "(b) the damaged file is kept aside" test -f "$B/checkpoint.damaged.h5"

# ---- (c) a checkpoint that cannot be written: the run stops, the previous one is intact ----
D="$T/disk"
run_np 2 vae "${vae[@]}" --max-steps 20 --out "$D" >/dev/null 2>&1
sum=$(md5sum <"$D/checkpoint.h5")
# a file size limit (16 MB) that the 32 MB checkpoint exceeds: writes fail with EFBIG
out=$( (ulimit -f 16000 && run_np 2 vae "${vae[@]}" --max-steps 60 --checkpoint-every 30 --out "$D" --resume auto) 2>&1)
rc=$?
msg=$(grep '^dtrain: error:' <<<"$out")
check "(c) a failed checkpoint write stops the run with status 2 (got $rc)" test "$rc" = 2
check "(c) one clear error: the reason, the step, the intact previous checkpoint, what to do" grep -q \
    "writing checkpoint $D/checkpoint.h5 failed: File too large (at step 30); the previous checkpoint $D/checkpoint.h5 (step 20) is intact;.*--resume auto" \
    <<<"$msg"
check "(c) the previous checkpoint is untouched" test "$(md5sum <"$D/checkpoint.h5")" = "$sum"
check "(c) no unfinished checkpoint file left" bash -c "! ls '$D'/*.tmp.* 2>/dev/null | grep -q ."
run_np 2 vae "${vae[@]}" --max-steps 30 --out "$D" --resume auto >"$T/disk.log" 2>&1
check "(c) with room again, --resume auto continues from step 20" \
    grep -q "^dtrain: resumed vae from $D/checkpoint.h5 at step 20 " "$T/disk.log"

# ---- (d) a stalled rank (SIGSTOP): the watchdog ends the job, naming the phase ----
run_np 2 vae "${vae[@]}" --epochs 1000 --step-timeout 4 --out "$T/stall" >"$T/stall.log" 2>&1 &
job=$!
wait_for "$T/stall.log" "^dtrain vae:" 60 && sleep 0.5
hit_rank STOP "$T/stall" $job
if [ -z "$rc" ]; then
    fail "(d) job still running 30 s after a rank was stopped"
else
    check "(d) a stopped rank: the job ends with status 4 (got $rc) after $took ms (--step-timeout 4)" \
        test "$rc" = 4 -a "$took" -lt 15000
fi
line=$(grep -m1 "made no progress" "$T/stall.log")
check "(d) the message names rank, time, phase and step: ${line:15:90}" grep -Eq \
    "^dtrain: error: rank 0 made no progress for [0-9]+ s in phase '[a-z /]+' at step [0-9]+" <<<"$line"
kill -CONT "$victim" 2>/dev/null
check "(d) no dtrain process left behind" test -z "$(ranks "$T/stall")"

echo "counts $PASSED $FAILED"
