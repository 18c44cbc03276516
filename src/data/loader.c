/* The sharded batch loader: P-independent global batches, each rank reading
 * a 1/P share of the images (the chunks it owns), memory bounded by a group
 * of ~DT_LOADER_GROUP images. Epoch order and shard rule: data.h.
 *
 * One group = consecutive global batches. For a group every rank
 *   1. computes the group's slice of the epoch order (same on every rank),
 *   2. reads (independent HDF5 reads, one per run of consecutive indices)
 *      the images of the group whose chunk it owns (chunk id mod P), each
 *      chunk once,
 *   3. sends each image to the rank whose batch positions contain it
 *      (dt_alltoallv_bytes; nothing to send with one rank),
 *   4. keeps its own images in position order; dt_loader_next converts one
 *      batch at a time to floats. */
#include <stdlib.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/data.h"
#include "dtrain/comm.h"

typedef struct {
    uint32_t idx;  /* data set index */
    uint32_t dest; /* rank that uses it */
    uint64_t pos;  /* epoch position */
} item;

struct dt_loader {
    dt_split *sp;
    dt_comm *comm; /* the ranks sharing this loader's batches (NULL: all) */
    size_t n, chunk, nchunks, batch, nbatches;
    uint64_t seed;
    int shuffle, P, me;
    size_t group_batches; /* global batches per group */
    size_t group_max;     /* positions per group (at most) */
    size_t local_max;     /* this rank's samples per batch (at most) */

    /* epoch */
    uint64_t epoch;
    size_t next_batch;
    uint32_t *chunk_perm; /* (nchunks) */
    size_t nwin;
    size_t *win_start;    /* (nwin + 1) first epoch position of each window */
    uint32_t *win_list, *win_perm; /* (W * chunk) scratch */

    /* group */
    long long group;      /* loaded group, -1 none */
    uint32_t *gorder;     /* (group_max) order slice of the group */
    uint32_t *gdest;      /* (group_max) rank using each position */
    item *own;            /* (group_max) images this rank reads */
    size_t *run_start, *run_count; /* (group_max) */
    uint8_t *readbuf, *sendbuf, *localbuf; /* images */
    size_t *send, *sdispl, *recv, *rdispl, *cursor; /* (P) */
    uint32_t *local_idx;  /* (group_batches * local_max) this rank's samples */
    uint64_t *local_pos;
    size_t *batch_off;    /* (group_batches + 1) local sample offset of each batch */

    /* the batch handed out */
    float *x;
    uint32_t *index;
    uint64_t *pos;
    uint8_t *digits, *colors;
    float lut[256];
};

/* ---- epoch order -------------------------------------------------------------- */

static size_t chunk_len(const dt_loader *ld, size_t c)
{
    size_t s = c * ld->chunk;
    return ld->n - s < ld->chunk ? ld->n - s : ld->chunk;
}

static void epoch_plan(const dt_loader *ld, uint64_t epoch, uint32_t *chunk_perm, size_t *win_start)
{
    if (ld->shuffle) {
        dt_stream s = {ld->seed, DT_RNG_SHUFFLE, epoch, 0};
        dt_rand_permutation(chunk_perm, (uint32_t)ld->nchunks, s);
    } else {
        for (size_t c = 0; c < ld->nchunks; c++) chunk_perm[c] = (uint32_t)c;
    }
    size_t p = 0;
    for (size_t w = 0; w < ld->nwin; w++) {
        win_start[w] = p;
        for (size_t k = w * DT_LOADER_WINDOW; k < ld->nchunks && k < (w + 1) * DT_LOADER_WINDOW; k++)
            p += chunk_len(ld, chunk_perm[k]);
    }
    win_start[ld->nwin] = p;
}

/* order[from..to) of the epoch described by chunk_perm / win_start. */
static void order_range(const dt_loader *ld, uint64_t epoch, const uint32_t *chunk_perm,
                        const size_t *win_start, size_t from, size_t to, uint32_t *out,
                        uint32_t *list, uint32_t *perm)
{
    if (!ld->shuffle) {
        for (size_t p = from; p < to; p++) out[p - from] = (uint32_t)p;
        return;
    }
    size_t w = 0;
    while (w + 1 < ld->nwin && win_start[w + 1] <= from) w++;
    for (; w < ld->nwin && win_start[w] < to; w++) {
        size_t m = 0;
        for (size_t k = w * DT_LOADER_WINDOW; k < ld->nchunks && k < (w + 1) * DT_LOADER_WINDOW; k++) {
            size_t c = chunk_perm[k], len = chunk_len(ld, c);
            for (size_t i = 0; i < len; i++) list[m++] = (uint32_t)(c * ld->chunk + i);
        }
        dt_stream s = {ld->seed, DT_RNG_SHUFFLE, epoch, w + 1};
        dt_rand_permutation(perm, (uint32_t)m, s);
        size_t lo = win_start[w] > from ? win_start[w] : from;
        size_t hi = win_start[w + 1] < to ? win_start[w + 1] : to;
        for (size_t p = lo; p < hi; p++) out[p - from] = list[perm[p - win_start[w]]];
    }
}

void dt_loader_order(const dt_loader *ld, uint64_t epoch, size_t from, size_t to, uint32_t *order)
{
    uint32_t *cp = dt_alloc((ld->nchunks + 1) * sizeof(uint32_t));
    size_t *ws = dt_alloc((ld->nwin + 1) * sizeof(size_t));
    size_t wmax = (size_t)DT_LOADER_WINDOW * ld->chunk;
    uint32_t *list = dt_alloc(wmax * sizeof(uint32_t)), *perm = dt_alloc(wmax * sizeof(uint32_t));
    epoch_plan(ld, epoch, cp, ws);
    order_range(ld, epoch, cp, ws, from, to, order, list, perm);
    dt_free(cp);
    dt_free(ws);
    dt_free(list);
    dt_free(perm);
}

/* ---- create / epoch ------------------------------------------------------------- */

dt_loader *dt_loader_create(dt_split *sp, size_t batch, uint64_t seed, int shuffle)
{
    return dt_loader_create_in(NULL, sp, batch, seed, shuffle);
}

dt_loader *dt_loader_create_in(dt_comm *comm, dt_split *sp, size_t batch, uint64_t seed, int shuffle)
{
    if (batch == 0) {
        dt_seterr("batch size must be at least 1");
        return NULL;
    }
    dt_loader *ld = dt_alloc(sizeof *ld);
    ld->sp = sp;
    ld->n = dt_split_len(sp);
    ld->chunk = dt_split_chunk(sp);
    ld->nchunks = (ld->n + ld->chunk - 1) / ld->chunk;
    ld->nwin = (ld->nchunks + DT_LOADER_WINDOW - 1) / DT_LOADER_WINDOW;
    ld->batch = batch;
    ld->nbatches = (ld->n + batch - 1) / batch;
    ld->seed = seed;
    ld->shuffle = shuffle;
    ld->comm = comm;
    ld->P = dt_comm_size(comm);
    ld->me = dt_comm_rank(comm);
    ld->group_batches = DT_LOADER_GROUP / batch ? DT_LOADER_GROUP / batch : 1;
    ld->group_max = ld->group_batches * batch < ld->n ? ld->group_batches * batch : ld->n;
    if (ld->group_max == 0) ld->group_max = 1;
    size_t P = (size_t)ld->P;
    ld->local_max = (batch + P - 1) / P;

    size_t wmax = (size_t)DT_LOADER_WINDOW * ld->chunk, G = ld->group_max;
    ld->chunk_perm = dt_alloc((ld->nchunks + 1) * sizeof(uint32_t));
    ld->win_start = dt_alloc((ld->nwin + 1) * sizeof(size_t));
    ld->win_list = dt_alloc(wmax * sizeof(uint32_t));
    ld->win_perm = dt_alloc(wmax * sizeof(uint32_t));
    ld->gorder = dt_alloc(G * sizeof(uint32_t));
    ld->gdest = dt_alloc(G * sizeof(uint32_t));
    ld->own = dt_alloc(G * sizeof(item));
    ld->run_start = dt_alloc(G * sizeof(size_t));
    ld->run_count = dt_alloc(G * sizeof(size_t));
    ld->readbuf = dt_alloc(G * DT_IMG);
    ld->sendbuf = dt_alloc(G * DT_IMG);
    size_t lmax = ld->group_batches * ld->local_max;
    if (lmax > G) lmax = G;
    /* one rank: the send buffer is already in position order */
    ld->localbuf = P == 1 ? ld->sendbuf : dt_alloc(lmax * DT_IMG);
    ld->send = dt_alloc(5 * P * sizeof(size_t));
    ld->sdispl = ld->send + P;
    ld->recv = ld->sdispl + P;
    ld->rdispl = ld->recv + P;
    ld->cursor = ld->rdispl + P;
    ld->local_idx = dt_alloc(lmax * sizeof(uint32_t));
    ld->local_pos = dt_alloc(lmax * sizeof(uint64_t));
    ld->batch_off = dt_alloc((ld->group_batches + 1) * sizeof(size_t));

    ld->x = dt_alloc_floats(ld->local_max * DT_IMG);
    ld->index = dt_alloc(ld->local_max * sizeof(uint32_t));
    ld->pos = dt_alloc(ld->local_max * sizeof(uint64_t));
    ld->digits = dt_alloc(ld->local_max);
    ld->colors = dt_alloc(ld->local_max);
    for (int v = 0; v < 256; v++) ld->lut[v] = (float)v / 255.0f;
    dt_loader_start_epoch(ld, 0);
    return ld;
}

void dt_loader_free(dt_loader *ld)
{
    if (!ld) return;
    if (ld->localbuf != ld->sendbuf) dt_free(ld->localbuf);
    void *bufs[] = {ld->chunk_perm, ld->win_start, ld->win_list, ld->win_perm, ld->gorder,
                    ld->gdest, ld->own, ld->run_start, ld->run_count, ld->readbuf, ld->sendbuf,
                    ld->send, ld->local_idx, ld->local_pos, ld->batch_off, ld->x, ld->index,
                    ld->pos, ld->digits, ld->colors};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) dt_free(bufs[i]);
    dt_free(ld);
}

void dt_loader_start_epoch(dt_loader *ld, uint64_t epoch)
{
    ld->epoch = epoch;
    ld->next_batch = 0;
    ld->group = -1;
    epoch_plan(ld, epoch, ld->chunk_perm, ld->win_start);
}

void dt_loader_seek(dt_loader *ld, uint64_t epoch, size_t batch)
{
    dt_loader_start_epoch(ld, epoch);
    ld->next_batch = batch < ld->nbatches ? batch : ld->nbatches;
}

size_t dt_loader_nbatches(const dt_loader *ld) { return ld->nbatches; }

/* ---- one group ------------------------------------------------------------------- */

static int cmp_idx(const void *a, const void *b)
{
    const item *x = a, *y = b;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

static int cmp_dest_pos(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->dest != y->dest) return (x->dest > y->dest) - (x->dest < y->dest);
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* who uses each position of batches [b0, b1) (from g0); this rank's samples
 * in position order, counted by the rank that reads them */
static void assign_positions(dt_loader *ld, size_t b0, size_t b1, size_t g0)
{
    size_t P = (size_t)ld->P, me = (size_t)ld->me, B = ld->batch;
    memset(ld->recv, 0, P * sizeof(size_t));
    size_t nl = 0;
    for (size_t b = b0; b < b1; b++) {
        size_t s = b * B, bb = (s + B < ld->n ? s + B : ld->n) - s;
        ld->batch_off[b - b0] = nl;
        for (size_t r = 0; r < P; r++)
            for (size_t p = s + bb * r / P; p < s + bb * (r + 1) / P; p++) {
                ld->gdest[p - g0] = (uint32_t)r;
                if (r == me) {
                    uint32_t idx = ld->gorder[p - g0];
                    ld->local_idx[nl] = idx;
                    ld->local_pos[nl] = p;
                    ld->recv[(idx / ld->chunk) % P]++;
                    nl++;
                }
            }
    }
    ld->batch_off[b1 - b0] = nl;
}

/* the images of this rank's chunks among positions [g0, g1), read in runs of
 * consecutive indices into readbuf (slot i: own[i], index order); their
 * count, or -1 (collective outcome) */
static long long read_own(dt_loader *ld, size_t g0, size_t g1)
{
    size_t P = (size_t)ld->P, me = (size_t)ld->me, no = 0, nr = 0;
    for (size_t p = g0; p < g1; p++) {
        uint32_t idx = ld->gorder[p - g0];
        if ((idx / ld->chunk) % P == me) ld->own[no++] = (item){idx, ld->gdest[p - g0], p};
    }
    qsort(ld->own, no, sizeof(item), cmp_idx);
    for (size_t i = 0; i < no; i++) {
        if (nr && ld->run_start[nr - 1] + ld->run_count[nr - 1] == ld->own[i].idx) {
            ld->run_count[nr - 1]++;
        } else {
            ld->run_start[nr] = ld->own[i].idx;
            ld->run_count[nr++] = 1;
        }
    }
    int rc = dt_split_read_runs(ld->sp, ld->run_start, ld->run_count, nr, ld->readbuf);
    if (!dt_comm_all_ok(ld->comm, rc == 0)) {
        if (rc == 0) dt_seterr("/%s: another rank failed to read images (see its message)", dt_split_name(ld->sp));
        return -1;
    }
    return (long long)no;
}

/* the no images read go to the ranks that use them; this rank's nl arrive
 * in localbuf in position order */
static void exchange_images(dt_loader *ld, size_t no, size_t nl)
{
    size_t P = (size_t)ld->P;
    /* readbuf slot i holds own[i] (index order); lay the images out by
     * (destination, position) in sendbuf, keeping the slot in idx's place */
    for (size_t i = 0; i < no; i++) ld->own[i].idx = (uint32_t)i;
    qsort(ld->own, no, sizeof(item), cmp_dest_pos);
    memset(ld->send, 0, P * sizeof(size_t));
    for (size_t i = 0; i < no; i++) {
        memcpy(ld->sendbuf + i * DT_IMG, ld->readbuf + (size_t)ld->own[i].idx * DT_IMG, DT_IMG);
        ld->send[ld->own[i].dest] += DT_IMG;
    }
    if (P == 1) return;
    size_t so = 0, ro = 0;
    for (size_t r = 0; r < P; r++) {
        ld->sdispl[r] = so;
        so += ld->send[r];
        ld->recv[r] *= DT_IMG;
        ld->rdispl[r] = ro;
        ro += ld->recv[r];
        ld->cursor[r] = ld->rdispl[r];
    }
    /* readbuf is free again: receive into it, then put in position order */
    dt_comm_alltoallv_bytes(ld->comm, ld->sendbuf, ld->send, ld->sdispl, ld->readbuf, ld->recv, ld->rdispl);
    for (size_t i = 0; i < nl; i++) {
        size_t src = (ld->local_idx[i] / ld->chunk) % P;
        memcpy(ld->localbuf + i * DT_IMG, ld->readbuf + ld->cursor[src], DT_IMG);
        ld->cursor[src] += DT_IMG;
    }
}

static int load_group(dt_loader *ld, size_t k)
{
    size_t b0 = k * ld->group_batches;
    size_t b1 = b0 + ld->group_batches < ld->nbatches ? b0 + ld->group_batches : ld->nbatches;
    size_t g0 = b0 * ld->batch, g1 = b1 * ld->batch < ld->n ? b1 * ld->batch : ld->n;
    order_range(ld, ld->epoch, ld->chunk_perm, ld->win_start, g0, g1, ld->gorder, ld->win_list, ld->win_perm);
    assign_positions(ld, b0, b1, g0);
    long long no = read_own(ld, g0, g1);
    if (no < 0) return -1;
    exchange_images(ld, (size_t)no, ld->batch_off[b1 - b0]);
    ld->group = (long long)k;
    return 0;
}

int dt_loader_next(dt_loader *ld, dt_batch *out)
{
    memset(out, 0, sizeof *out);
    if (ld->next_batch >= ld->nbatches) return 0;
    size_t b = ld->next_batch, k = b / ld->group_batches;
    if (ld->group != (long long)k && load_group(ld, k) < 0) return -1;
    size_t j = b - k * ld->group_batches;
    size_t lo = ld->batch_off[j], n = ld->batch_off[j + 1] - lo;
    size_t s = b * ld->batch;
    out->n = n;
    out->global_n = (s + ld->batch < ld->n ? s + ld->batch : ld->n) - s;
    out->batch_index = b;
    out->index = ld->index;
    out->pos = ld->pos;
    out->x = ld->x;
    out->digits = ld->digits;
    out->colors = ld->colors;
    memcpy(ld->index, ld->local_idx + lo, n * sizeof(uint32_t));
    memcpy(ld->pos, ld->local_pos + lo, n * sizeof(uint64_t));
    if (dt_split_read(ld->sp, ld->index, n, NULL, ld->digits, ld->colors) < 0) return -1;
    const uint8_t *src = ld->localbuf + lo * DT_IMG;
    for (size_t i = 0; i < n * DT_IMG; i++) ld->x[i] = ld->lut[src[i]];
    ld->next_batch++;
    return 1;
}
