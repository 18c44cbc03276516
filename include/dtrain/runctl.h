/* runctl: what every training command shares about running unattended —
 * one run per output folder, --resume auto and --overwrite, stop signals that
 * end a run with a checkpoint and status DT_EXIT_REQUEUE, the step watchdog,
 * and the provenance record OUT/runs.jsonl. The mechanisms are in guard.h and
 * runlock.h; this is their use by a training loop:
 *
 *   dt_run_resume(&r, out, model, &info);       after option parsing (--resume auto
 *                                               locks out first): then dt_opts_resume,
 *                                               the checkpoint's settings
 *   dt_run_begin(&r);
 *   dt_run_claim(&r, out);                      before anything is written
 *   build the model; rank 0 loads info.from (dt_ckpt_load), broadcast
 *   dt_run_record_start(out, model, threads, &r, &info);
 *   if dt_run_nothing_left(...): write nothing, dt_run_finish(..., "nothing to train")
 *   each step:  dt_watch_step(step); dt_watch("phase") ...;
 *               stop = agreed flag (dt_run_stop_local folded into a reduction,
 *               or dt_run_stop_poll);
 *               if stop: checkpoint, then dt_run_stop(...)
 *   at the end: dt_run_finish(...) */
#ifndef DTRAIN_RUNCTL_H
#define DTRAIN_RUNCTL_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/ckpt.h"
#include "dtrain/cli.h"
#include "dtrain/core.h"

/* Default of --step-timeout, seconds. */
#define DT_STEP_TIMEOUT_DEFAULT 600

typedef struct {
    const char *resume;       /* --resume: NULL, "auto" or a checkpoint file */
    const char *stop_signals; /* --stop-signal LIST */
    float step_timeout;       /* --step-timeout SEC (0: off) */
    int overwrite;            /* --overwrite */
} dt_run_opts;

void dt_run_opts_default(dt_run_opts *r);

/* The three options, as entries of a command's option table. */
#define DT_RUN_OPT_RESUME(r)                                                                             \
    {"resume", DT_OPT_STR, &(r)->resume, "FILE|auto",                                                  \
     "continue from this checkpoint; auto: OUT/checkpoint.h5, else the one before it, else start fresh", 1, 0}
#define DT_RUN_OPT_STOP(r)                                                                               \
    {"stop-signal", DT_OPT_STR, &(r)->stop_signals, "LIST",                                            \
     "signals that stop the run at the next step with a checkpoint and exit status 75 "                  \
     "(USR1, USR2, TERM, INT, HUP, or none)", 1, 0}
#define DT_RUN_OPT_TIMEOUT(r)                                                                            \
    {"step-timeout", DT_OPT_FLOAT, &(r)->step_timeout, "SEC",                                          \
     "end the job (status 4) when a rank makes no progress for SEC s inside a training step (0: off)", 0, 1e7}

#define DT_RUN_OPT_OVERWRITE(r)                                                                          \
    {"overwrite", DT_OPT_FLAG, &(r)->overwrite, NULL,                                                    \
     "start afresh in a folder that holds an earlier run, first removing the files dtrain wrote there "  \
     "(checkpoints, metrics, summary, pictures, embeddings)", 1, 0}

/* main: the process's command line, for the provenance record. */
void dt_run_set_cmdline(int argc, char **argv);

/* Collective, after the options are parsed: install the stop signals (a bad
 * list is a user error, status 2 on every rank) and start the watchdog. */
void dt_run_begin(const dt_run_opts *r);

/* Collective, before anything is written into out: create the folder and
 * lock it for this process (runlock.h: a second run on it is refused, naming
 * the holder); then, for a fresh start (no --resume), refuse a folder that
 * holds an earlier run's checkpoint or results (use --resume auto or
 * --overwrite), or with --overwrite remove the files dtrain writes there
 * (a fixed list of names in runctl.c: checkpoints, metrics, summaries,
 * pictures, embeddings, latent tables, the study's report; runs.jsonl, the
 * folder's history, stays) and nothing else. Failures: status 2, every rank. */
void dt_run_claim(const dt_run_opts *r, const char *out);

typedef struct {
    int resumed;       /* 1: a checkpoint was loaded (on rank 0: broadcast the state) */
    char from[1024];   /* its path */
    dt_ckpt_meta meta; /* its metadata, on every rank */
    int fell_back;     /* --resume auto took checkpoint.prev.h5 */
} dt_resume_info;

/* Collective: decide what to resume from; rank 0 reads and verifies it (the
 * whole file, dt_ckpt_read_meta) and every rank gets its metadata, settings
 * included, so that they are known before the model is built.
 * --resume FILE: that file, any failure a user error (status 2).
 * --resume auto: OUT/checkpoint.h5; if it is damaged or unreadable, a warning
 * and OUT/checkpoint.prev.h5 (the damaged one is moved aside to
 * checkpoint.damaged.h5); neither there: a fresh start, said so; a
 * checkpoint of another model or other sizes, or none usable: status 2.
 * With auto, rank 0 first creates and locks OUT (as dt_run_claim does), then
 * removes stale temporaries of an interrupted checkpoint write.
 * Rank 0 logs the file and the step and epoch it resumes from. */
void dt_run_resume(const dt_run_opts *r, const char *out, const char *model, dt_resume_info *info);

/* Collective: rank 0 appends this invocation's start record to
 * OUT/runs.jsonl (command line, SLURM job, hosts of all ranks, version,
 * compiler, resume). From here on stop signals wait for a step boundary
 * (dt_stop_defer(1)); the command turns that off after its last step. */
void dt_run_record_start(const char *out, const char *model, int threads, const dt_run_opts *r,
                         const dt_resume_info *info);

/* After dt_run_resume, on every rank: 1 when the resumed run has nothing
 * left to train (its checkpoint is at --max-steps, or at or past --epochs);
 * rank 0 says so in one line. The caller then trains nothing and writes
 * nothing (metrics, summary, pictures, embeddings, checkpoint), and ends
 * with dt_run_finish(..., "nothing to train"), status 0. */
int dt_run_nothing_left(const dt_resume_info *info, const char *model, const char *out, int64_t epochs,
                        int64_t max_steps);

/* This rank's stop flag after `steps` optimizer steps in all: the signal
 * received, 0 if none. Cheap; fold it into a reduction the step does anyway.
 * (DTRAIN_RAISE_AT=STEP[:RANK] raises the first stop signal on that rank
 * after that step: exact stops for tests.) */
int dt_run_stop_local(int64_t steps);

/* Rank 0, after dt_ckpt_save failed (dt_lasterr set) at step: add what
 * became of the previous checkpoint at path and what to do. */
void dt_run_checkpoint_failed(const char *path, int64_t step);

/* Every rank, once the stop checkpoint is written: rank 0 prints
 * `dtrain: stopped by SIGUSR1 at step S (epoch E); checkpoint written to
 * PATH; continue with --resume auto`, the end is recorded, every rank exits
 * with DT_EXIT_REQUEUE. epoch counts from 1. */
DT_NORETURN void dt_run_stop(int sig, int64_t step, int64_t epoch, const char *ckpt);

/* Every rank at a normal end: stop the watchdog, record the end (rank 0). */
void dt_run_finish(int64_t step, int64_t epoch, const char *how);

#endif
