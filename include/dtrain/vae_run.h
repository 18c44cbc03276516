/* What the VAE commands share beyond the model: options, data, pictures. */
#ifndef DTRAIN_VAE_RUN_H
#define DTRAIN_VAE_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "dtrain/data.h"
#include "dtrain/runctl.h"
#include "dtrain/vae.h"
#include "dtrain/vae_analysis.h"

/* The variant named by a command ("vae"), or NULL. */
const dt_vae_kind *dt_vae_kind_find(const char *name);
void dt_vae_opts_default(dt_vae_opts *o);
/* What a checkpoint must match to be resumed into m: "vae head=4 latent=2". */
void dt_vae_arch(const dt_vae *m, char *buf, size_t len);
/* Set OpenBLAS threads (0: auto = 1 per rank with several ranks, else the
 * cores this process may use, or $OPENBLAS_NUM_THREADS); returns the count. */
int dt_threads_setup(int requested);
/* Collective: prepare the data file from the default sources if missing. */
int dt_ensure_data(const char *path);
/* Collective: the SHA-256 of the data set's content (its gate's, verified
 * when it was opened; hex). A resumed run (info) refuses a file other than the
 * one its checkpoint was trained on, naming both hashes (status 2). */
void dt_data_identify(const dt_dataset *ds, const dt_resume_info *info, char hex[65]);
/* This rank's contiguous block [lo, hi) of n items. */
void dt_block_range(size_t n, size_t *lo, size_t *hi);
/* x = b / 255 */
void dt_bytes_to_float(float *x, const uint8_t *b, size_t n);

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

/* `dtrain <model> argv...` (argv[0] is the model's name); res may be NULL. */
int dt_vae_train(const char *model, int argc, char **argv, dt_vae_result *res);

/* Rank 0: the pictures of a trained model into dir (PNG). stats are the
 * variant's per-image statistics over the whole test split (N rows); ca and
 * codes (N, vars) describe the categorical part (NULL without one). */
void dt_vae_pictures(dt_vae *m, dt_split *test, float *const *stats, const uint8_t *digits,
                     const uint8_t *colors, size_t N, const char *dir, const dt_cat_analysis *ca,
                     const uint8_t *codes);

#endif
