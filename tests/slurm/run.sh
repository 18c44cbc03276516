#!/usr/bin/env bash
# make check-slurm: a one-node SLURM cluster on this machine, then the batch
# scripts of jobs/ run on it with tiny settings.
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge when missing;
# writes the configuration, munge key, state, spool, logs and pid files into
# one temporary folder; starts munged, slurmctld and slurmd there (their pids
# recorded, each stopped by pid on exit, whatever happened); submits the four
# scripts, a preempted job and a cancelled one, and checks their states, logs
# and outputs. Prints "slurm: N passed, M failed"; non-zero exit on failure.
# Run folders of its jobs land in results/ as for any job and are removed when
# every check passed; the temporary folder likewise (kept, and named, otherwise,
# or when DTRAIN_SLURM_KEEP is set).
set -u
export PATH="$PATH:/usr/sbin:/sbin" # the daemons and mungekey
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"

T=$(mktemp -d /tmp/dtrain-slurm.XXXXXX)
chmod 711 "$T" # munged wants its socket's folder searchable by all
export WORK="$T/work"
mkdir -p "$WORK" "$T/state" "$T/spool" "$T/log"
source "$ROOT/tests/integration/lib.sh"
DIFF="$BIN/ckpt_diff"
t_start=$(date +%s)

# --- packages ---------------------------------------------------------------
need=()
for p in slurmctld slurmd slurm-client munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
    echo "slurm: installing ${need[*]}"
    SUDO=""
    [ "$(id -u)" = 0 ] || SUDO="sudo"
    # the packages' own services stay stopped where policy-rc.d forbids starting them;
    # this test starts its own daemons either way
    export DEBIAN_FRONTEND=noninteractive
    { $SUDO apt-get update -q && $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"; } \
        >"$T/apt.log" 2>&1 || { tail -20 "$T/apt.log"; echo "slurm: cannot install ${need[*]}"; exit 1; }
fi

# --- daemons ----------------------------------------------------------------
PIDS=()   # munged slurmctld slurmd, in start order
JOBS=()   # every job submitted
FOLDERS=()
stop_all() {
    local rc=$?
    set +e
    if [ ${#JOBS[@]} -gt 0 ] && [ ${#PIDS[@]} -ge 2 ]; then
        scancel "${JOBS[@]}" 2>/dev/null
        # let slurmd end what runs before it stops (tasks are not its children)
        for _ in $(seq 50); do
            [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break
            sleep 0.2
        done
    fi
    local i p
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        p=${PIDS[i]}
        kill -TERM "$p" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null
        wait "$p" 2>/dev/null
    done
    if [ "$rc" = 0 ] && [ "$FAILED" = 0 ] && [ -z "${DTRAIN_SLURM_KEEP:-}" ]; then
        rm -rf "$T"
        for f in "${FOLDERS[@]}"; do rm -rf "$f" "$f.out"; done
    else
        echo "slurm: configuration, daemon logs and data kept in $T; job folders and logs:" \
            "${FOLDERS[*]:-none}"
    fi
    exit "$rc"
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# a free TCP port on the loopback interface
free_port() {
    local p
    for p in $(shuf -i 20000-40000 -n 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
    done
    return 1
}
port1=$(free_port)
port2=$(free_port)
while [ "$port2" = "$port1" ]; do port2=$(free_port); done
node=$(hostname -s)

mungekey --create --keyfile="$T/munge.key"
munged -F --force --socket="$T/munge.sock" --key-file="$T/munge.key" --pid-file="$T/munged.pid" \
    --seed-file="$T/munged.seed" --log-file="$T/log/munged.log" >"$T/log/munged.out" 2>&1 &
PIDS+=($!)

: >"$T/plugstack.conf"
cat >"$T/slurm.conf" <<EOF
# one node, everything under $T; no cgroups, no accounting database
ClusterName=dtraintest
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$port1
SlurmdPort=$port2
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# a requeued job starts again once the credential of its last start expired
AuthInfo=socket=$T/munge.sock,cred_expire=5
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
PlugStackConfig=$T/plugstack.conf
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/builtin
# look at pending jobs every second: a requeued job's begin time passing is no
# event that wakes the scheduler, which otherwise waits up to a minute
SchedulerParameters=sched_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=3600
# job ids, hence run folders results/<model>-<id>, differ from one test run to the
# next: a folder kept by a failed run is never resumed by the next one
FirstJobId=$(($(date +%s) % 3000000 * 20 + 1000))
KillWait=10
# more CPUs than the machine has, so that four 2-task jobs run side by side
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=8 State=UNKNOWN
PartitionName=test Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$T/slurm.conf"
slurmctld -D -f "$SLURM_CONF" >"$T/log/slurmctld.out" 2>&1 &
PIDS+=($!)
slurmd -D -f "$SLURM_CONF" >"$T/log/slurmd.out" 2>&1 &
PIDS+=($!)

t0=$(date +%s%N)
up=0
for _ in $(seq 300); do
    [ "$(sinfo -h -o %t 2>/dev/null)" = idle ] && { up=1; break; }
    sleep 0.1
done
if [ "$up" = 1 ]; then
    pass "munged, slurmctld and slurmd up, node idle after $((($(date +%s%N) - t0) / 1000000)) ms"
else
    fail "the node is not idle after 30 s"
    tail -5 "$T"/log/*.out "$T"/log/*.log
    exit 1
fi
if srun --mpi=list 2>&1 | grep -qw pmix; then
    echo "  note srun offers --mpi=pmix: the jobs launch with srun"
else
    echo "  note srun offers no pmix plugin: the jobs fall back to mpirun"
fi

ensure_data || { fail "cannot prepare the test data"; exit 1; }

# --- helpers ----------------------------------------------------------------
# submit [sbatch options] SCRIPT [dtrain options]: prints the job id
submit() {
    local id
    id=$(sbatch --parsable "$@") || return 1
    id=${id%%;*}
    JOBS+=("$id")
    echo "$id"
}
# field ID NAME: a field of `scontrol show job`
field() { scontrol -o show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
# wait_end ID SECONDS: until the job reached a final state
wait_end() {
    local s
    for _ in $(seq $(($2 * 5))); do
        s=$(field "$1" JobState)
        case $s in COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE) return 0 ;; esac
        sleep 0.2
    done
    return 1
}
# wait_file FILE SECONDS
wait_file() {
    for _ in $(seq $(($2 * 10))); do
        [ -s "$1" ] && return 0
        sleep 0.1
    done
    return 1
}
show_log() { sed 's/^/       /' "$1" 2>/dev/null | tail -12; }
# a finished job: its state, exit code, log, run folder
finished_ok() { # finished_ok ID MODEL WHAT [RANKS THREADS]
    local id=$1 model=$2 what=$3 d="results/$2-$1" ranks=${4:-2} threads=${5:-1}
    FOLDERS+=("$d")
    if ! wait_end "$id" 180; then
        fail "$what: job $id did not end within 180 s (state $(field "$id" JobState))"
        show_log "$d.out"
        return 1
    fi
    local st ec
    st=$(field "$id" JobState)
    ec=$(field "$id" ExitCode)
    if [ "$st" = COMPLETED ] && [ "$ec" = 0:0 ]; then
        pass "$what: job $id COMPLETED, exit 0:0"
    else
        fail "$what: job $id ended $st, exit $ec"
        show_log "$d.out"
        return 1
    fi
    check "$what: summary.json and checkpoint.h5 in $d/" test -s "$d/summary.json" -a -s "$d/checkpoint.h5"
    check "$what: summary.json says model $model on $ranks rank(s) x $threads thread(s)" python3 -c "
import json, sys; s = json.load(open('$d/summary.json'))
sys.exit(not (s.get('model', '$model') == '$model' and s['ranks'] == $ranks and s['threads'] == $threads))"
}

tiny=(--data "$DATA" --epochs 1 --batch 32)
# the preempted job and its uninterrupted twin: long enough to be caught running
long=(--data "$DATA" --epochs 2 --batch 32 --max-steps 300 --checkpoint-every 10)
sb=(--ntasks=2 --time=10)

# --- the four scripts, and the mpirun launcher --------------------------------
declare -A id
for m in vae dvae jvae; do id[$m]=$(submit "${sb[@]}" "jobs/$m.sbatch" "${tiny[@]}" --max-steps 20); done
id[cyclegan]=$(submit "${sb[@]}" jobs/cyclegan.sbatch --data "$DATA" --epochs 1 --batch 8 --max-steps 10)
id[mpirun]=$(DTRAIN_LAUNCHER=mpirun submit "${sb[@]}" jobs/vae.sbatch "${tiny[@]}" --max-steps 20)
id[odd]=$(submit --ntasks=3 --time=10 jobs/cyclegan.sbatch --data "$DATA")
id[threads]=$(submit --ntasks=1 --cpus-per-task=2 --time=10 jobs/vae.sbatch "${tiny[@]}" --max-steps 20)
for m in vae dvae jvae cyclegan; do
    [ -n "${id[$m]}" ] || { fail "sbatch jobs/$m.sbatch refused"; continue; }
    finished_ok "${id[$m]}" $m "jobs/$m.sbatch"
done
v=${id[vae]}
check "jobs/vae.sbatch: the #SBATCH defaults hold (name, requeue, log path) and the command line overrides them (2 tasks, 10 min)" \
    test "$(field "$v" JobName) $(field "$v" Requeue) $(field "$v" NumTasks) $(field "$v" TimeLimit) $(field "$v" StdOut)" \
    = "dtrain-vae 1 2 00:10:00 $ROOT/results/vae-$v.out"
check "jobs/vae.sbatch: the log names the launcher and the run folder" \
    grep -q "via srun, run folder results/vae-$v" "results/vae-$v.out"
if finished_ok "${id[mpirun]}" vae "DTRAIN_LAUNCHER=mpirun jobs/vae.sbatch"; then
    check "DTRAIN_LAUNCHER=mpirun: launched by mpirun, same parameters as under srun bit for bit" \
        bash -c "grep -q 'via mpirun' results/vae-${id[mpirun]}.out &&
            '$DIFF' results/vae-$v/checkpoint.h5 results/vae-${id[mpirun]}/checkpoint.h5 0"
fi
finished_ok "${id[threads]}" vae "jobs/vae.sbatch --ntasks=1 --cpus-per-task=2" 1 2
o=${id[odd]}
FOLDERS+=("results/cyclegan-$o")
wait_end "$o" 60
check "jobs/cyclegan.sbatch on 3 tasks: refused with exit 2 and a message" \
    bash -c "[ '$(field "$o" JobState) $(field "$o" ExitCode)' = 'FAILED 2:0' ] &&
        grep -q 'runs on 1 task or an even number, not 3' results/cyclegan-$o.out"

# --- preemption: USR1 to the batch shell, requeue, resume ------------------------
# under srun and under mpirun, each against the same uninterrupted twin
ref=$(submit "${sb[@]}" jobs/vae.sbatch "${long[@]}")
pre=$(submit "${sb[@]}" jobs/vae.sbatch "${long[@]}")
prm=$(DTRAIN_LAUNCHER=mpirun submit "${sb[@]}" jobs/vae.sbatch "${long[@]}")
can=$(submit "${sb[@]}" jobs/vae.sbatch "${long[@]}")
# each signal goes as soon as its job has written its first checkpoint (step 10 of 300)
declare -A caught
for j in "$pre" "$prm"; do
    caught[$j]=0
    wait_file "results/vae-$j/checkpoint.h5" 120 && scancel --signal=USR1 --batch "$j" && caught[$j]=1
done
wait_file "results/vae-$can/checkpoint.h5" 120 && scancel "$can"
finished_ok "$ref" vae "uninterrupted 300-step run"
preempted() { # preempted ID LAUNCHER
    local j=$1 what="preemption under $2"
    check "$what: scancel --signal=USR1 --batch reached job $j while it trained" test "${caught[$j]}" = 1
    finished_ok "$j" vae "$what: the 300-step run" || return
    check "$what: the job was requeued (Restarts=$(field "$j" Restarts))" test "$(field "$j" Restarts)" -ge 1
    local log="results/vae-$j.out" step
    check "$what: the first start stopped with a checkpoint (status 75) and requeued itself" \
        bash -c "grep -q '^dtrain: stopped by SIGUSR1 at step' '$log' &&
            grep -q 'stopped with a checkpoint in results/vae-$j .*requeueing job $j' '$log'"
    check "$what: the second start ran via $2" grep -q "(start 2) .* via $2," "$log"
    step=$(sed -n "s/.*resumed vae from .* at step \([0-9]*\).*/\1/p" "$log" | head -1)
    check "$what: the second start resumed from results/vae-$j/ at step ${step:-?} (between 10 and 300)" \
        test "${step:-0}" -ge 10 -a "${step:-0}" -lt 300
    check "$what: runs.jsonl records the stop (75, SIGUSR1) and the resumed start (restart 1) that finished" \
        python3 - "results/vae-$j/runs.jsonl" <<'PY'
import json, sys
r = [json.loads(l) for l in open(sys.argv[1])]
ev = [(x["event"], x.get("status"), x.get("how"), x.get("slurm_restart_count")) for x in r]
assert len(r) == 4, ev
assert r[1]["status"] == 75 and r[1]["how"] == "stopped by SIGUSR1", ev
assert r[2]["event"] == "start" and r[2]["slurm_restart_count"] == 1 and r[2]["resumed_step"] == r[1]["step"], ev
assert r[3]["status"] == 0 and r[3]["step"] == 300, ev
PY
    check "$what: the resumed run ends with parameters equal bit for bit to the uninterrupted run's" \
        "$DIFF" "results/vae-$ref/checkpoint.h5" "results/vae-$j/checkpoint.h5" 0
}
preempted "$pre" srun
preempted "$prm" mpirun

# --- cancellation: scancel (SIGTERM) stops with a checkpoint, no requeue -----------
FOLDERS+=("results/vae-$can")
if wait_end "$can" 120; then
    check "scancel: job $can ended CANCELLED, not requeued (Restarts=$(field "$can" Restarts))" \
        test "$(field "$can" JobState) $(field "$can" Restarts)" = "CANCELLED 0"
    sleep 1 # the batch shell may still be writing its last line
    # the SIGTERM reaches dtrain from Slurm and, as SIGUSR1, from the batch shell: either stops it
    check "scancel: dtrain stopped with a checkpoint (status 75) and the script did not requeue" \
        bash -c "grep -Eq '^dtrain: stopped by SIG(TERM|USR1) at step' 'results/vae-$can.out' &&
            grep -q 'the job was cancelled, so it is not requeued' 'results/vae-$can.out'"
else
    fail "scancel: job $can still $(field "$can" JobState) after 120 s"
fi

echo "slurm: $(($(date +%s) - t_start)) s"
echo "slurm: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
