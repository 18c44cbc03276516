/* engine: the one training loop every training command runs. A model is a
 * table of functions over its own state (dt_model_ops); the engine owns
 * everything around them:
 *
 *   resume (rank 0 loads, every rank receives), the provenance record,
 *   for each epoch:
 *       for each batch:  load it; agree on it and on a stop (one reduction);
 *                        one optimizer step; progress; --max-steps and
 *                        --checkpoint-every
 *       evaluation and the epoch's log line (the model's), a metrics.csv row,
 *       the epoch's checkpoint, a stop asked for meanwhile
 *   the final evaluation and pictures (the model's), summary.json, the end record.
 *
 * The stop protocol (runctl.h) exists here only: a stop signal on any rank is
 * agreed on before the next step, the checkpoint written at that position,
 * and every rank exits with DT_EXIT_REQUEUE. */
#ifndef DTRAIN_ENGINE_H
#define DTRAIN_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/ckpt.h"
#include "dtrain/data.h"
#include "dtrain/report.h"
#include "dtrain/runctl.h"

typedef struct dt_engine dt_engine;

/* What the engine tells a model at an epoch's end (epoch counts from 0). */
typedef struct {
    int64_t epoch, step;
    int epochs;
    const double *sums; /* the epoch's running sums (dt_model_ops.nsums) */
    double images_per_s, elapsed_s, eta_s;
} dt_epoch_report;

/* What a model supplies. m is the model's own state; every function but
 * status and save is called on every rank. */
typedef struct {
    const char *name;    /* command and checkpoint model: "vae" */
    int nsums;           /* running sums of the epoch in progress, kept in checkpoints */
    const char *columns; /* metrics.csv columns between epoch,step and images_per_s,epoch_s,wall_s */
    /* rank 0: the checkpoint at path into the networks and optimizers */
    int (*load)(void *m, const char *path, int64_t epoch_steps, dt_ckpt_meta *meta);
    /* what rank 0 loaded, to every rank */
    void (*share_loaded)(void *m);
    /* once before the first step, weights final (optional) */
    void (*ready)(void *m);
    /* epoch e begins at batch b (b > 0: resuming inside it) */
    void (*epoch_begin)(void *m, int64_t e, int64_t b);
    /* this rank's part of the next batch: 1, or 0 with dt_lasterr set */
    int (*next_batch)(void *m);
    /* one optimizer step on it (the watchdog's phases are the model's); adds
     * the same to sums on every rank; returns the images it trained on */
    double (*step)(void *m, int64_t step, double *sums);
    /* rank 0, the progress line's model part, e.g. "loss 181.20" (optional) */
    void (*status)(void *m, char *buf, size_t len);
    /* after an epoch: evaluation and its log line; fills the metrics row,
     * returns its length */
    int (*epoch_end)(void *m, const dt_epoch_report *r, double *row);
    /* before a checkpoint: the whole state on rank 0 */
    void (*gather)(void *m);
    /* rank 0: write the checkpoint; meta holds the engine's fields, the
     * model adds its own (arch, ...) */
    int (*save)(void *m, dt_ckpt_meta *meta, const char *path);
    /* after the last step: final evaluation, pictures */
    void (*finish)(void *m, const dt_engine *e);
    /* rank 0, then: the model's fields of summary.json (the engine writes
     * the model's name first and what every run has after them) */
    void (*summary)(void *m, const dt_engine *e, dt_json *j);
} dt_model_ops;

#define DT_ROW_MAX 32

struct dt_engine {
    /* set by the command before dt_engine_run */
    const dt_model_ops *ops;
    void *m;
    const char *out, *data;
    int epochs, threads;
    size_t batch; /* global */
    int64_t epoch_steps; /* batches in one epoch */
    long max_steps, checkpoint_every;
    uint64_t seed;
    const dt_run_opts *run;
    dt_resume_info *info;
    const dt_settings *settings;
    const char *data_sha256;
    double t_start; /* when the command started */
    /* kept by the engine, read by the model's finish */
    int64_t step, epoch0, batch0, epoch_at; /* epoch_at: of the last step taken, from 1 */
    double sums[DT_CKPT_MAX_SUMS];
    double train_s, images; /* seconds in steps (the loader's time excluded), images trained on, this run */
    int stopped;            /* at --max-steps */
    int idle;               /* nothing left to train (dt_run_nothing_left) */
    int64_t run_step0;      /* the step this run started from */
    char *ckpt_path;
};

/* Collective: resume, train, finish, record the end. */
void dt_engine_run(dt_engine *e);

/* ---- what the training commands share before the loop ----------------------- */

/* Collective: parse the command line into opts (usage: the --help text),
 * then, when resuming, take the checkpoint's settings (info: what is
 * resumed; it must outlive the options), and record every option 's value in
 * settings. */
void dt_engine_parse(const char *model, dt_opt *opts, int n, int argc, char **argv, const char *usage,
                     dt_run_opts *run, const char *const *out, dt_resume_info *info, dt_settings *settings);
/* The same for options already set (given[i]: opts[i] was set by the
 * caller, as if on the command line): resume and settings. */
void dt_engine_configure(const char *model, const dt_opt *opts, int n, const unsigned char *given, dt_run_opts *run,
                         const char *const *out, dt_resume_info *info, dt_settings *settings);
/* Set the threads of the products and OpenBLAS (0: auto = 1 per rank with
 * several ranks, else the cores this process may use, or
 * $OPENBLAS_NUM_THREADS); returns the count. */
int dt_threads_setup(int requested);
/* Collective: prepare the data file from the default sources if missing,
 * open it and check it has group (status 2 otherwise); hex: the SHA-256 of
 * its content. A resumed run (info) refuses a file other than the one its
 * checkpoint was trained on, naming both hashes. */
dt_dataset *dt_engine_data(const char *path, const char *group, const dt_resume_info *info, char hex[65]);
/* This rank's contiguous block [lo, hi) of n items. */
void dt_block_range(size_t n, size_t *lo, size_t *hi);
/* x = b / 255 */
void dt_bytes_to_float(float *x, const uint8_t *b, size_t n);
#endif
