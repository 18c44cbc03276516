/* ckpt: checkpoints in HDF5, written atomically, verified on load.
 *
 * Layout (format_version 1):
 *   /                      attrs: format_version, kind = "dtrain-checkpoint", model,
 *                                 arch, version, step, epoch, batch, seed, settings,
 *                                 created_utc, ranks, threads, compiler, tau (discrete models)
 *   /train_state/sums      float64 [nsums] (partial-epoch accumulators)
 *   /<net>/params/<view>   float32, the view's shape   (one group per network)
 *   /<net>/adam_m/<view>, /<net>/adam_v/<view>
 *   /<net>                 attrs: adam_t, lr, beta1, beta2, eps, crc32
 * crc32 covers the network's params, adam_m and adam_v blocks as written;
 * a checkpoint whose data does not match it is refused. */
#ifndef DTRAIN_CKPT_H
#define DTRAIN_CKPT_H

#include <stdint.h>

#include "dtrain/nn.h"

#define DT_CKPT_MAX_SUMS 16

typedef struct {
    char model[32];   /* command: "vae" */
    char arch[128];   /* what must match to resume: "vae z=2" */
    int64_t step;     /* optimizer steps taken */
    int64_t epoch;    /* epoch in progress (0-based) */
    int64_t batch;    /* batches of that epoch already done */
    uint64_t seed;
    int nsums;
    double sums[DT_CKPT_MAX_SUMS];
    char settings[1024]; /* the run's options, as JSON */
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
/* Read meta only (to decide what to build); -1 with the reason. */
int dt_ckpt_read_meta(const char *path, dt_ckpt_meta *meta);
/* What dt_ckpt_load returns besides 0. */
enum {
    DT_CKPT_DAMAGED = -1,  /* missing, unreadable, truncated, checksum wrong */
    DT_CKPT_MISMATCH = -2, /* a sound checkpoint of another model or other sizes */
};
/* Load into already-built networks; checks model, arch, shapes and crc32.
 * 0, or DT_CKPT_DAMAGED / DT_CKPT_MISMATCH with the reason. */
int dt_ckpt_load(const char *path, const char *model, const char *arch, dt_ckpt_meta *meta,
                 dt_params *const *nets, dt_adam *opts, int nnets);
/* The name of the previous checkpoint kept beside path (caller frees). */
char *dt_ckpt_prev_path(const char *path);

#endif
