/* ckpt: checkpoints in HDF5, written atomically, verified on load.
 *
 * Layout (format_version 2):
 *   bytes [0, 512)         HDF5 user block: "dtrain-checkpoint\nformat 2\nsha256 <hex>\n",
 *                          zeros after it; the SHA-256 is of bytes [512, end)
 *   /                      attrs: format_version, kind = "dtrain-checkpoint", model,
 *                                 arch, version, step, epoch, batch, epoch_steps, seed,
 *                                 data_sha256, created_utc, ranks, threads, compiler,
 *                                 tau (discrete models)
 *   /settings              one attribute per option of the run (int64, float64 or string)
 *   /train_state/sums      float64 [nsums] (partial-epoch accumulators)
 *   /<net>/params/<view>   float32, the view's shape   (one group per network)
 *   /<net>/adam_m/<view>, /<net>/adam_v/<view>
 *   /<net>                 attrs: adam_t, lr, beta1, beta2, eps, crc32
 * Loading reads the file once, checks the user block's hash over everything
 * after it, and only then lets HDF5 parse the verified image (from memory);
 * the metadata is then checked for range and consistency. A flipped byte
 * anywhere is refused as damage. The user block is transparent to H5Fopen. */
#ifndef DTRAIN_CKPT_H
#define DTRAIN_CKPT_H

#include <stdint.h>

#include "dtrain/cli.h"
#include "dtrain/nn.h"

#define DT_CKPT_MAX_SUMS 16

typedef struct {
    char model[32];   /* command: "vae" */
    char arch[128];   /* what must match to resume: "vae z=2" */
    int64_t step;     /* optimizer steps taken */
    int64_t epoch;    /* epoch in progress (0-based) */
    int64_t batch;    /* batches of that epoch already done */
    int64_t epoch_steps; /* steps in one epoch: step = epoch * epoch_steps + batch */
    uint64_t seed;
    int nsums;
    double sums[DT_CKPT_MAX_SUMS];
    char data_sha256[65]; /* SHA-256 of the data file, hex */
    dt_settings settings; /* the run's options */
    int ranks, threads;
    double tau; /* Gumbel temperature at `step` (0: none); written for readers, derived on resume */
} dt_ckpt_meta;

/* Write path atomically: path.tmp.<pid>, flush, fsync, then the old file
 * becomes <path minus .h5>.prev.h5 (hard link, then rename) and the new one
 * takes its name, so the last two checkpoints are always kept.
 * On failure nothing existing is touched; -1 with the reason (the system's
 * own, e.g. "No space left on device", when there is one). */
int dt_ckpt_save(const char *path, const dt_ckpt_meta *meta, dt_params *const *nets,
                 const dt_adam *opts, int nnets);
/* What dt_ckpt_read_meta and dt_ckpt_load return besides 0. */
enum {
    DT_CKPT_DAMAGED = -1,  /* missing, unreadable, truncated, checksum wrong, metadata out of range */
    DT_CKPT_MISMATCH = -2, /* a sound checkpoint of another model, other sizes or an older format */
};
/* Read and verify the file, then its metadata only (to decide what to
 * build). 0, or DT_CKPT_DAMAGED / DT_CKPT_MISMATCH with the reason. */
int dt_ckpt_read_meta(const char *path, dt_ckpt_meta *meta);
/* 0 if meta is of model, else DT_CKPT_MISMATCH with the reason. */
int dt_ckpt_check_model(const dt_ckpt_meta *meta, const char *path, const char *model);
/* Load into already-built networks; checks model, arch, steps per epoch (0:
 * unchecked), shapes and crc32. 0, or DT_CKPT_DAMAGED / DT_CKPT_MISMATCH
 * with the reason. */
int dt_ckpt_load(const char *path, const char *model, const char *arch, int64_t epoch_steps, dt_ckpt_meta *meta,
                 dt_params *const *nets, dt_adam *opts, int nnets);
/* The name of the previous checkpoint kept beside path (caller frees). */
char *dt_ckpt_prev_path(const char *path);

#endif
