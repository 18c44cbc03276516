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
# every check passed; the temporary folder likewise (kept, and named, otherwise).
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
    if [ "$rc" = 0 ] && [ "$FAILED" = 0 ]; then
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
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
ReturnToService=2
MinJobAge=3600
KillWait=10
# more CPUs than the machine has, so that three 2-task jobs run side by side
SlurmdParameters=config_overrides
NodeName=$node NodeAddr=127.0.0.1 CPUs=6 State=UNKNOWN
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
finished_ok() { # finished_ok ID MODEL WHAT
    local id=$1 model=$2 what=$3 d="results/$2-$1"
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
    check "$what: summary.json says model $model on 2 ranks" python3 -c "
import json, sys; s = json.load(open('$d/summary.json')); sys.exit(not (s.get('model', '$model') == '$model' and s['ranks'] == 2))"
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
o=${id[odd]}
FOLDERS+=("results/cyclegan-$o")
wait_end "$o" 60
check "jobs/cyclegan.sbatch on 3 tasks: refused with exit 2 and a message" \
    bash -c "[ '$(field "$o" JobState) $(field "$o" ExitCode)' = 'FAILED 2:0' ] &&
        grep -q 'runs on 1 task or an even number, not 3' results/cyclegan-$o.out"

# --- preemption: USR1 to the batch shell, requeue, resume ------------------------
ref=$(submit "${sb[@]}" jobs/vae.sbatch "${long[@]}")
pre=$(submit "${sb[@]}" jobs/vae.sbatch "${long[@]}")
can=$(submit "${sb[@]}" jobs/vae.sbatch "${long[@]}")
# both signals go as soon as dtrain has written its first checkpoint (step 10)
caught=0
if wait_file "results/vae-$pre/checkpoint.h5" 120; then
    scancel --signal=USR1 --batch "$pre" && caught=1
fi
wait_file "results/vae-$can/checkpoint.h5" 120 && scancel "$can"
check "preemption: scancel --signal=USR1 --batch reached job $pre while it trained" test "$caught" = 1
finished_ok "$ref" vae "uninterrupted 300-step run"
if finished_ok "$pre" vae "preempted 300-step run"; then
    check "preemption: the job was requeued (Restarts=$(field "$pre" Restarts))" test "$(field "$pre" Restarts)" -ge 1
    log="results/vae-$pre.out"
    check "preemption: the first start stopped with status 75 and requeued itself" \
        grep -q "stopped with a checkpoint in results/vae-$pre .*requeueing job $pre" "$log"
    step=$(sed -n "s/.*resumed vae from .* at step \([0-9]*\).*/\1/p" "$log" | head -1)
    check "preemption: the second start resumed from results/vae-$pre/ at step ${step:-?} (between 10 and 300)" \
        test "${step:-0}" -ge 10 -a "${step:-0}" -lt 300
    check "preemption: the resumed run ends with parameters equal bit for bit to the uninterrupted run's" \
        "$DIFF" "results/vae-$ref/checkpoint.h5" "results/vae-$pre/checkpoint.h5" 0
fi

# --- cancellation: scancel (SIGTERM) stops with a checkpoint, no requeue -----------
FOLDERS+=("results/vae-$can")
if wait_end "$can" 120; then
    check "scancel: job $can ended CANCELLED, not requeued (Restarts=$(field "$can" Restarts))" \
        test "$(field "$can" JobState) $(field "$can" Restarts)" = "CANCELLED 0"
    sleep 1 # the batch shell may still be writing its last line
    check "scancel: dtrain stopped with a checkpoint and the script did not requeue" \
        grep -q "the job was cancelled, so it is not requeued" "results/vae-$can.out"
    check "scancel: the checkpoint is readable" "$DIFF" "results/vae-$can/checkpoint.h5" "results/vae-$can/checkpoint.h5" 0
else
    fail "scancel: job $can still $(field "$can" JobState) after 120 s"
fi

echo "slurm: $(($(date +%s) - t_start)) s"
echo "slurm: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
