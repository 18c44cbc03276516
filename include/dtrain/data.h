/* data: IDX reading, coloring, synthetic digits, the colored-MNIST HDF5 file
 * (writing it once, reading it from every rank) and the sharded batch loader.
 *
 * Errors: functions return -1 (or NULL) after dt_seterr() with a message that
 * names the file and says what to do. Nothing here exits or calls MPI directly;
 * the loader exchanges images through the comm module. */
#ifndef DTRAIN_DATA_H
#define DTRAIN_DATA_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define DT_IMG_SIDE 28
#define DT_PLANE (DT_IMG_SIDE * DT_IMG_SIDE) /* pixels of an image: 28 x 28 grey, or one channel */
#define DT_IMG (3 * DT_PLANE)                /* values of a colored image: 3 x 28 x 28, CHW */
#define DT_DATA_FORMAT_VERSION 1 /* root attribute `format_version` */
#define DT_DATA_CHUNK 64         /* images per HDF5 chunk written by dt_prepare */
#define DT_DATA_DEFAULT_PATH "data/colored_mnist.h5"

/* The intensity of pixel q (0 <= q < DT_PLANE) of a colored image (CHW, any
 * scale): its largest channel. */
static inline float dt_pixel_intensity(const float *img, size_t q)
{
    return fmaxf(img[q], fmaxf(img[q + DT_PLANE], img[q + 2 * DT_PLANE]));
}

/* ---- IDX files (MNIST format, gzip-compressed or raw) ----------------------- */

typedef struct {
    int ndim;          /* 1 (labels) or 3 (images) */
    uint32_t dims[3];  /* dims[0] = item count */
    size_t size;       /* product of dims = bytes in data */
    uint8_t *data;     /* unsigned bytes, row-major */
} dt_idx;

/* Read a whole IDX file of unsigned bytes (magic 00 00 08 ndim, ndim 1 or 3).
 * Checks the magic, nonzero dims and the exact payload size. */
int dt_idx_read(const char *path, dt_idx *out);
void dt_idx_free(dt_idx *x);

/* An image/label pair: images 28x28, labels 0..9, counts agree. */
typedef struct {
    size_t n;
    uint8_t *images; /* (n, 784) */
    uint8_t *labels; /* (n) */
} dt_mnist;

int dt_mnist_load(const char *images, const char *labels, dt_mnist *out);
void dt_mnist_free(dt_mnist *m);

/* ---- SHA-256 ----------------------------------------------------------------- */

/* Hex digest (64 chars + NUL) of a memory block / of a file's bytes. */
void dt_sha256(char hex[65], const void *data, size_t n);
int dt_sha256_file(const char *path, char hex[65]);
/* Hex digest of the bytes of f from its position to its end; -1 on a read error. */
int dt_sha256_stream(FILE *f, char hex[65]);
/* 1 if the two 64-digit hex digests are equal. Every byte is compared and
 * none branched on, so nothing (a fuzzer's comparison tracing included)
 * learns the right digest from how a check fails. */
int dt_sha256_same(const char *a, const char *b);

/* ---- coloring ---------------------------------------------------------------- */

extern const float dt_palette[10][3];      /* SPEC palette, RGB in [0,1] */
extern const char *const dt_palette_names[10]; /* "red", "green", ... */

/* grey (784) -> out (3,28,28): out[k][i] = round(grey[i]/255 * c[k] * 255),
 * halves rounded up (computed as floor(grey*c + 1/2), exact for c in {0,.5,1}). */
void dt_colorize(uint8_t *out, const uint8_t *grey, const float c[3]);

/* ---- synthetic digits ---------------------------------------------------------- */

/* n stroke-drawn digits, MNIST-like (28x28, digit in a ~20x20 box, centered,
 * anti-aliased, black background): grey (n,784), labels (n) uniform 0..9.
 * Image i depends only on (seed, i) (stream DT_RNG_SYNTH, a = 0, b = i). */
void dt_synth_digits(uint8_t *grey, uint8_t *labels, size_t n, uint64_t seed);

/* ---- building the data set file (one process) ----------------------------------- */

typedef struct {
    const char *mnist_dir; /* NULL: $DTRAIN_MNIST, then data/mnist */
    int synthetic;         /* use synthetic digits, not MNIST (loud warning) */
    const char *out;       /* NULL: data/colored_mnist.h5 */
    uint64_t seed;         /* 0 is taken as the default, 1 */
    int quiet;             /* no progress lines */
} dt_prepare_opts;

/* Build the colored-MNIST HDF5 file (layout in data/README.md). Serial HDF5:
 * call it from one process. Atomic: an existing file is replaced only by a
 * complete new one. */
int dt_prepare(const dt_prepare_opts *o);

/* ---- the gate: the file's own checksum, checked before HDF5 reads a byte -------- */

/* The first DT_DATA_USERBLOCK bytes of a data set file are an HDF5 user block
 * (HDF5 skips it) holding DT_DATA_GATE_MAGIC, the SHA-256 of the bytes from
 * DT_DATA_USERBLOCK to the end as 64 lowercase hex digits, a newline, then
 * zeros. dt_dataset_open verifies it before any HDF5 call, so damaged or
 * foreign bytes never reach the HDF5 library. */
#define DT_DATA_USERBLOCK 512
#define DT_DATA_GATE_MAGIC "dtrain data set\nsha256 "

/* The gate block for a file whose bytes after it are content[0, n) (an HDF5
 * file image of a file created with a DT_DATA_USERBLOCK user block, which
 * H5Fget_file_image returns without the block). */
void dt_dataset_gate(uint8_t block[DT_DATA_USERBLOCK], const void *content, size_t n);
/* The same for a closed file on disk; -1 with the reason. */
int dt_dataset_seal(const char *path);
/* Check path's gate (one process): 0, its size in bytes and the verified
 * SHA-256 of its content (either may be NULL), or -1 with a message naming
 * the file and the command that rebuilds it. Refuses non-regular files
 * before opening them. */
int dt_dataset_verify(const char *path, size_t *size, char sha256[65]);

/* ---- reading the data set file (every rank, collective open/close) -------------- */

typedef struct dt_dataset dt_dataset;
typedef struct dt_split dt_split;

/* Collective under MPI. Rank 0 verifies the gate (dt_dataset_verify) and every
 * rank learns the outcome before HDF5 opens the file. NULL + dt_seterr if
 * missing, not a regular file, without the gate or failing it, of another
 * format_version, or without the /vae or /cyclegan groups. */
dt_dataset *dt_dataset_open(const char *path);
void dt_dataset_close(dt_dataset *ds);
/* 1 if the top-level group ("vae", "cyclegan") exists. */
int dt_dataset_has(const dt_dataset *ds, const char *group);
/* The SHA-256 of the file's content that its gate holds and open verified:
 * what identifies the data set (a checkpoint records it). */
const char *dt_dataset_sha256(const dt_dataset *ds);
/* Collective: the palette index of each digit in CycleGAN domain 0 (A) or 1 (B). */
int dt_dataset_mapping(dt_dataset *ds, int domain, uint8_t colors[10]);

/* A split: "vae/train", "vae/test", "cyclegan/A/train", ... Collective.
 * Checks images uint8 [N,3,28,28] with 0 < N <= the file's size in bytes,
 * digits and colors uint8 [N] with every value 0..9. The digit and color
 * labels are read whole (2 bytes per image); images stay on disk. */
dt_split *dt_split_open(dt_dataset *ds, const char *name);
void dt_split_close(dt_split *sp);
size_t dt_split_len(const dt_split *sp);
size_t dt_split_chunk(const dt_split *sp); /* images per HDF5 chunk */
const char *dt_split_name(const dt_split *sp); /* "vae/train", ... */

/* Independent read of the images at arbitrary global indices (any order,
 * repeats allowed): images (n,3,28,28), digits (n), colors (n). Any output may
 * be NULL. Reads chunk by chunk, each needed chunk once. */
int dt_split_read(dt_split *sp, const uint32_t *idx, size_t n, uint8_t *images,
                  uint8_t *digits, uint8_t *colors);

/* Independent read of runs of consecutive images [start[i], start[i] + count[i])
 * into out, one after the other (one regular hyperslab per run). Used by the
 * loader; dt_split_read is the general form. */
int dt_split_read_runs(dt_split *sp, const size_t *start, const size_t *count, size_t nruns,
                       uint8_t *out);

/* ---- sharded batch loader ---------------------------------------------------------- */

/* Epoch order (independent of the number of ranks P), with C = chunk length,
 * N = split length, W = DT_LOADER_WINDOW chunks per window:
 *   shuffle: permute the chunk ids (DT_RNG_SHUFFLE, a = epoch, b = 0); cut the
 *   list into windows of W chunks; list each window's images chunk by chunk
 *   and permute them (DT_RNG_SHUFFLE, a = epoch, b = w + 1); concatenate.
 *   no shuffle: order[i] = i.
 * Global batch b = positions [bB, min((b+1)B, N)) (last partial batch kept);
 * with Bb its size, rank r of P takes [bB + Bb*r/P, bB + Bb*(r+1)/P).
 * Each image is read by the rank owning its chunk (chunk id mod P) and sent to
 * the rank that uses it; ~DT_LOADER_GROUP images are read per collective step. */
#define DT_LOADER_WINDOW 64
#define DT_LOADER_GROUP 2048

typedef struct {
    size_t n;           /* local samples in this batch (may be 0) */
    size_t global_n;    /* samples in the global batch */
    size_t batch_index; /* index of the global batch within the epoch */
    uint32_t *index;    /* (n) global data set index of each local sample */
    uint64_t *pos;      /* (n) position of each local sample in the epoch order */
    float *x;           /* (n, 3*28*28) pixels / 255 */
    uint8_t *digits;    /* (n) */
    uint8_t *colors;    /* (n) */
} dt_batch;

typedef struct dt_loader dt_loader;

/* All buffers are allocated here, for the largest local batch. The split must
 * outlive the loader. Starts at epoch 0, batch 0. */
dt_loader *dt_loader_create(dt_split *sp, size_t batch, uint64_t seed, int shuffle);
/* The same over a group of ranks (see comm.h; NULL: all ranks): the global
 * batch is split over the group's ranks, and only they call dt_loader_next. */
struct dt_comm;
dt_loader *dt_loader_create_in(struct dt_comm *comm, dt_split *sp, size_t batch, uint64_t seed, int shuffle);
void dt_loader_free(dt_loader *ld);
/* Start an epoch (collective in the sense that every rank must call it alike). */
void dt_loader_start_epoch(dt_loader *ld, uint64_t epoch);
/* Resume: the batches from `batch` on are those of an uninterrupted epoch. */
void dt_loader_seek(dt_loader *ld, uint64_t epoch, size_t batch);
size_t dt_loader_nbatches(const dt_loader *ld);
/* Collective: fills this rank's part of the next global batch (buffers owned
 * by the loader, valid until the next call). 1: a batch, 0: epoch done,
 * -1: read error on some rank (dt_lasterr on the rank that failed). */
int dt_loader_next(dt_loader *ld, dt_batch *out);

/* The epoch order positions [from, to) (same on every rank), for tests and
 * tools: order (to - from). */
void dt_loader_order(const dt_loader *ld, uint64_t epoch, size_t from, size_t to, uint32_t *order);

#endif
