/* core: errors, allocation, timing, logging and the counter-based RNG.
 *
 * Error model. Library functions never exit: on failure they record a message
 * with dt_seterr() and return -1 (or NULL). The command layer turns a recorded
 * message into `dtrain: error: <message>` and exit status 2 (dt_check_all). Internal
 * faults (a bug, an allocation failure, an MPI or HDF5 call that should not
 * fail) go through DT_FATAL, which aborts the whole MPI job. */
#ifndef DTRAIN_CORE_H
#define DTRAIN_CORE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DT_VERSION "0.1.0"

/* Exit statuses, documented in the README. */
enum {
    DT_EXIT_OK = 0,
    DT_EXIT_USAGE = 2,    /* user error: bad option, missing or corrupt file */
    DT_EXIT_INTERNAL = 3, /* internal fault, aborted job */
    DT_EXIT_STALLED = 4,  /* the step watchdog ended a job in which a rank made no progress */
    DT_EXIT_REQUEUE = 75, /* stopped by a signal after writing a checkpoint: continue with
                             --resume auto (EX_TEMPFAIL: try again later) */
};

#if defined(__GNUC__)
#define DT_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define DT_NORETURN __attribute__((noreturn))
#else
#define DT_PRINTF(a, b)
#define DT_NORETURN
#endif

/* ---- errors ---------------------------------------------------------- */

/* Record the reason of a failure; returns -1 so `return dt_seterr(...)` works. */
int dt_seterr(const char *fmt, ...) DT_PRINTF(1, 2);
/* The last recorded message ("" if none). */
const char *dt_lasterr(void);
void dt_clearerr(void);

/* Internal fault: print file:line and abort the whole job with status 3. */
DT_NORETURN void dt_fatal_at(const char *file, int line, const char *fmt, ...) DT_PRINTF(3, 4);
#define DT_FATAL(...) dt_fatal_at(__FILE__, __LINE__, __VA_ARGS__)
#define DT_ASSERT(cond)                                                                  \
    do {                                                                                 \
        if (!(cond)) DT_FATAL("assertion failed: %s", #cond);                            \
    } while (0)

/* How a fatal error ends the job. The comm module installs MPI_Abort here
 * once MPI is up; before that (and in unit tests) it is exit(). */
void dt_set_abort_hook(DT_NORETURN void (*hook)(int status));

/* ---- allocation --------------------------------------------------------- */

/* 64-byte aligned, zero-filled; never returns NULL (fatal instead). */
void *dt_alloc_at(size_t bytes, const char *file, int line);
#define dt_alloc(bytes) dt_alloc_at((bytes), __FILE__, __LINE__)
#define dt_alloc_floats(n) ((float *)dt_alloc_at((size_t)(n) * sizeof(float), __FILE__, __LINE__))
void dt_free(void *p);
char *dt_strdup(const char *s);

/* ---- files ------------------------------------------------------------ */

/* 0 if path names a regular file (after following symlinks); otherwise -1 with
 * a message "<what> <path>: <why>" (missing, a FIFO, a folder, a symlink loop,
 * ...). Readers call it before open(), so a FIFO or device never blocks them. */
int dt_check_regular(const char *path, const char *what);

/* ---- time and logging --------------------------------------------------- */

double dt_now(void); /* monotonic seconds */
/* Progress lines: printed by rank 0 only (dt_log_set_rank), to stdout. */
void dt_log_set_rank(int rank);
void dt_log(const char *fmt, ...) DT_PRINTF(1, 2);
/* Warnings go to stderr from rank 0. */
void dt_warn(const char *fmt, ...) DT_PRINTF(1, 2);
/* Peak resident set size of this process in bytes (from /proc). */
size_t dt_peak_rss(void);

/* ---- randomness --------------------------------------------------------- */

/* Philox4x32-10: out = philox(ctr, key). Counter-based, so a draw depends
 * only on its (seed, purpose, counter), never on which rank makes it. */
void dt_philox4x32(uint32_t out[4], const uint32_t ctr[4], const uint32_t key[2]);

/* Purposes keep the streams for different uses apart. */
enum dt_rng_purpose {
    DT_RNG_INIT = 1,   /* parameter initialization: (view, element) */
    DT_RNG_SHUFFLE,    /* epoch order */
    DT_RNG_COLOR,      /* data set coloring */
    DT_RNG_SPLIT,      /* data set splits */
    DT_RNG_EPS,        /* reparameterization noise: (step, global sample) */
    DT_RNG_GUMBEL,     /* Gumbel noise: (step, global sample) */
    DT_RNG_EVAL,       /* fixed noise for test losses */
    DT_RNG_SYNTH,      /* synthetic digits */
    DT_RNG_SAMPLE,     /* pictures: prior samples */
    DT_RNG_POOL,       /* history pool choices */
    DT_RNG_DNOISE,     /* CycleGAN instance noise: (step and role, position in the global batch) */
    DT_RNG_CNOISE,     /* CycleGAN color noise: (step and role, position in the global batch) */
};

/* A stream: everything that selects the noise except the draw number. */
typedef struct {
    uint64_t seed;
    uint32_t purpose;
    uint64_t a; /* e.g. step or epoch */
    uint64_t b; /* e.g. global sample index */
} dt_stream;

/* n uniforms in [0,1) (24-bit resolution, never exactly 1), draws 0..n-1 of the stream. */
void dt_rand_uniform(float *out, size_t n, dt_stream s);
/* n standard normals (Box-Muller on the stream's uniforms). */
void dt_rand_normal(float *out, size_t n, dt_stream s);
/* One 64-bit value: draw i of the stream. */
uint64_t dt_rand_u64(dt_stream s, uint64_t i);
/* A uniformly random permutation of 0..n-1 (Fisher-Yates on the stream). */
void dt_rand_permutation(uint32_t *perm, uint32_t n, dt_stream s);

/* ---- exact sums (src/core/xsum.c) ----
 * A sum of doubles whose result does not depend on the order of the terms:
 * each term is rounded to a multiple of 2^-40 (about 1e-12) and added as an
 * integer, exactly, so a loss summed over a batch or a test set cut among
 * any number of ranks, merged in any order (dt_comm_xsum adds every rank's
 * with MPI's integer sum), has the same bits. Terms that are NaN, or of
 * magnitude DT_XSUM_MAX or more (counted as infinite), are counted apart:
 * the value is then NaN or the infinity. Start from {0}. */
#define DT_XSUM_WORDS 5
#define DT_XSUM_MAX 1099511627776.0 /* 2^40 */
typedef struct {
    int64_t w[DT_XSUM_WORDS]; /* the grid's count in two words (2^32 apart), then NaN, +inf, -inf terms */
} dt_xsum;
void dt_xsum_add(dt_xsum *s, double v);
void dt_xsum_merge(dt_xsum *s, const dt_xsum *t);
double dt_xsum_value(const dt_xsum *s);

#endif
