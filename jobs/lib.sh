# Shared by jobs/*.sbatch: sourced in the batch shell, never run on its own.
#
#   dtrain_job MODEL [dtrain options]
#
# runs  dtrain MODEL --out results/MODEL-$SLURM_JOB_ID --resume auto [options]
# as one job step over the job's tasks, from the folder the job runs in (the
# dtrain folder: sbatch from there, or sbatch --chdir=DIR). The options that
# follow the script name on the sbatch command line come after these two and
# so win, --out included.
#
# Stopping and requeueing. dtrain checkpoints at the next step boundary and
# exits with status 75 on SIGUSR1 or SIGTERM. The batch shell traps SIGUSR1
# (the warning of #SBATCH --signal=B:USR1@SECONDS, or a preemption by
# `scancel --signal=USR1 --batch JOB`) and SIGTERM and passes them on to the
# job step as SIGUSR1: srun and mpirun both forward SIGUSR1 to every task,
# while a SIGTERM sent to either would end the tasks without a checkpoint.
# When the step ends with 75 the job is requeued (same job id, same run
# folder, so the new start resumes from its checkpoint) and the script exits
# 0 — unless the batch shell itself got SIGTERM: that is a cancellation
# (scancel, or the time limit reached without a warning), and a requeue
# would bring a cancelled job back; the job then ends with status 75 and its
# checkpoint stays. Any other status is passed on.
#
# Environment:
#   DTRAIN_LAUNCHER   srun | mpirun | auto (default: srun when `srun --mpi=list`
#                     offers pmix, which Debian's Open MPI needs, else mpirun)
#   DTRAIN_SRUN_MPI   MPI plugin for srun (default pmix)

DTRAIN_STOPPED=75

# _dtrain_forward SIGNAL: trap handler of the batch shell
_dtrain_forward() {
    _dtrain_trapped=1
    [ "$1" = TERM ] && _dtrain_cancelled=1
    if [ -n "${_dtrain_step:-}" ] && kill -0 "$_dtrain_step" 2>/dev/null; then
        echo "dtrain job: SIG$1 at $(date '+%F %T'): asking dtrain to checkpoint and stop"
        kill -USR1 "$_dtrain_step" 2>/dev/null || true
    fi
}

dtrain_job() {
    local model=$1
    shift
    if [ -z "${SLURM_JOB_ID:-}" ]; then
        echo "jobs/$model.sbatch: run it with sbatch (no SLURM job here)" >&2
        return 2
    fi
    if [ ! -x ./dtrain ]; then
        echo "jobs/$model.sbatch: no ./dtrain in $PWD: build it (make), and submit from the dtrain folder" >&2
        return 2
    fi
    local run="results/$model-$SLURM_JOB_ID" a prev=
    for a in "$@"; do # an --out of the user's wins
        [ "$prev" = --out ] && run=$a
        case $a in --out=*) run=${a#--out=} ;; esac
        prev=$a
    done
    mkdir -p "$run" || return 2

    local ntasks=${SLURM_NTASKS:-1} cpus=${SLURM_CPUS_PER_TASK:-1}
    export OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=$cpus DTRAIN_NO_PROGRESS=1

    local launcher=${DTRAIN_LAUNCHER:-auto} cmd
    if [ "$launcher" = auto ]; then
        # (no pipe into grep -q: under pipefail srun's SIGPIPE would read as "no")
        case " $(srun --mpi=list 2>&1 | tr -s '\t\n' '  ') " in
        *" ${DTRAIN_SRUN_MPI:-pmix} "*) launcher=srun ;;
        *) launcher=mpirun ;;
        esac
    fi
    case $launcher in
    srun)
        # srun of Slurm 22.05 no longer takes --cpus-per-task from the allocation
        cmd=(srun --mpi="${DTRAIN_SRUN_MPI:-pmix}" --cpus-per-task="$cpus" ./dtrain) ;;
    mpirun)
        cmd=(scripts/mpirun -np "$ntasks")
        # Open MPI binds each rank to one core by default: let its threads spread
        [ "$cpus" -gt 1 ] && cmd+=(--bind-to none)
        cmd+=(./dtrain) ;;
    *)
        echo "jobs/$model.sbatch: DTRAIN_LAUNCHER must be srun, mpirun or auto, not '$launcher'" >&2
        return 2 ;;
    esac

    echo "dtrain job $SLURM_JOB_ID (start $((${SLURM_RESTART_COUNT:-0} + 1))) on ${SLURM_JOB_NODELIST:-?}" \
        "at $(date '+%F %T'): $model, $ntasks rank(s) x $cpus thread(s) via $launcher, run folder $run"

    _dtrain_trapped=0 _dtrain_cancelled=0 _dtrain_step=
    trap '_dtrain_forward USR1' USR1
    trap '_dtrain_forward TERM' TERM
    "${cmd[@]}" "$model" --out "$run" --resume auto "$@" &
    _dtrain_step=$!
    # wait returns early (status > 128) when a trapped signal arrives; the
    # step is then still running, so wait again. 127: already collected.
    local rc=127 r
    while :; do
        _dtrain_trapped=0
        r=0
        wait "$_dtrain_step" || r=$?
        [ "$r" = 127 ] || rc=$r
        [ "$_dtrain_trapped" = 1 ] && [ "$r" -gt 128 ] || break
    done
    trap - USR1 TERM
    _dtrain_step=

    if [ "$rc" = "$DTRAIN_STOPPED" ]; then
        if [ "$_dtrain_cancelled" = 1 ]; then
            echo "dtrain job: stopped with a checkpoint in $run; the job was cancelled, so it is not requeued"
            return "$rc"
        fi
        echo "dtrain job: stopped with a checkpoint in $run at $(date '+%F %T'); requeueing job $SLURM_JOB_ID"
        if scontrol requeue "$SLURM_JOB_ID"; then
            return 0
        fi
        echo "dtrain job: requeue refused; resubmit with --out $run to continue" >&2
        return "$rc"
    fi
    echo "dtrain job: step ended with status $rc at $(date '+%F %T')"
    return "$rc"
}
