/* What the VAE commands share beyond the model: options, data, pictures. */
#ifndef DTRAIN_VAE_RUN_H
#define DTRAIN_VAE_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/data.h"
#include "dtrain/runctl.h"
#include "dtrain/vae.h"
#include "dtrain/vae_analysis.h"
#include "dtrain/engine.h"

/* The variant named by a command ("vae"), or NULL. */
const dt_vae_kind *dt_vae_kind_find(const char *name);
void dt_vae_opts_default(dt_vae_opts *o);
/* What a checkpoint must match to be resumed into m: "vae head=4 latent=2". */
void dt_vae_arch(const dt_vae *m, char *buf, size_t len);
/* The options of `dtrain <model>`, parsed (typed) into o. */
typedef struct {
    const char *data, *out;
    dt_run_opts run;      /* --resume, --stop-signal, --step-timeout */
    dt_vae_opts o;
    dt_settings settings; /* every option's value, for the checkpoints */
    char data_sha256[65]; /* of the data file */
} dt_vae_args;
/* The option table of `dtrain <model>` over a, set to their defaults; its length. */
int dt_vae_options(const char *model, dt_vae_args *a, dt_opt *opts);
/* Rank 0: a checkpoint into m and adam (epoch_steps: 0 unchecked). */
int dt_vae_load(const char *path, dt_vae *m, dt_adam *adam, int64_t epoch_steps, dt_ckpt_meta *meta);
/* Collective: what rank 0 loaded, to every rank. */
void dt_vae_share_loaded(dt_vae *m, dt_adam *adam);

/* What a training run reports back (to `dtrain study`). */
typedef struct {
    const dt_vae_kind *kind;
    int nterms;                      /* 1 + KL terms */
    double test[DT_MAX_TERMS + 1];   /* [loss, bce, kl...] per test image, at the end */
    double images_per_s, wall_s;
    double *curve;                   /* (epochs) test loss after each epoch (caller frees) */
    int epochs;                      /* entries in curve */
    int all_in_use;                  /* every category of every variable used (-1: none) */
} dt_vae_result;

/* A VAE run from a typed configuration (what `dtrain study` sets; every
 * other option the variant's default), as if given on the command line. */
typedef struct {
    const char *data, *out;
    int epochs, threads;
    size_t batch;
    uint64_t seed;
    dt_run_opts run; /* --resume (NULL or "auto"), --stop-signal, --step-timeout */
} dt_vae_config;
int dt_vae_train_config(const dt_vae_kind *kind, const dt_vae_config *c, dt_vae_result *res);

/* Evaluation over every rank's block of the test split. */
typedef struct dt_vae_eval {
    dt_vae *m;
    dt_split *test;
    size_t N, lo, hi;
    uint8_t *bytes;           /* (maxB, 2352) staging */
    uint32_t *idx;            /* (maxB) */
    uint64_t *gidx;           /* (maxB) */
    float *stats[4];          /* (N, width) global arrays, this rank's rows filled */
    uint8_t *digits, *colors; /* (N) */
} dt_vae_eval;
void dt_vae_eval_init(dt_vae_eval *e, dt_vae *m, dt_split *test);
void dt_vae_eval_free(dt_vae_eval *e);
/* Collective: test losses with fixed noise (sums over all images, all
 * ranks: sums[0] BCE, then the KLs); fills the rank's rows of the
 * statistics. -1 on a read error (collective outcome). */
int dt_vae_evaluate(dt_vae_eval *e, uint64_t step, double *sums);
/* Collective: every rank's rows -> the whole arrays on every rank. */
void dt_vae_eval_gather(dt_vae_eval *e);
/* The index of the variant's statistic called name, or -1. */
int dt_vae_stat_index(const dt_vae *m, const char *name);
/* Collective: the embeddings file at path, every rank writing its rows. */
int dt_vae_write_embeddings(dt_vae_eval *e, const char *path, const char *ckpt_note);

/* Rank 0: the pictures of a trained model into dir (PNG). stats are the
 * variant's per-image statistics over the whole test split (N rows); ca and
 * codes (N, vars) describe the categorical part (NULL without one). */
void dt_vae_pictures(dt_vae *m, dt_split *test, float *const *stats, const uint8_t *digits,
                     const uint8_t *colors, size_t N, const char *dir, const dt_cat_analysis *ca,
                     const uint8_t *codes);

#endif
