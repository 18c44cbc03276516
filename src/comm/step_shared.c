/* step_shared: the node-shared strategy of the optimizer step (step.h):
 * weights, moments and the layers' activations in memory the ranks of one
 * node share; each rank computes and updates a fixed part of every layer. */
#include "step_shared.h"

#include <sched.h>
#include <sys/mman.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/comm.h"
#include "dtrain/core.h"

/* ---- the node-shared step ---------------------------------------------------
 * Each rank publishes its batch rows and how much of the parameter block,
 * counted from its end (backward's first layers), its backward has done
 * (dt_step_ready). At dt_step_end a rank goes through the layers in that
 * order; for each, once every rank has done it, it computes the weight
 * gradient of the rows it owns (a fixed share of every layer), a tile of
 * whole rows at a time, going through the ranks' batch rows in rank order
 * straight from their activations (one chain over the global batch, as
 * one rank computes it), and updates the tile with Adam while it is in
 * cache. Its moments are its own (private pages, only its rows touched); the
 * shared copy is filled for checkpoints (dt_step_gather_moments). Then it
 * waits until every rank has updated its rows: the next forward reads all
 * weights, and the activations may be overwritten.
 * The counters only grow: a rank's published value in step t (t = steps,
 * the same on every rank) is (t + 1) << 32 | (elements done, from the end);
 * DONE counts the ranks finished, P per step. Slots sit a cache line apart. */
enum { CTL_DONE = 0 };
#define CTL_READY(q) (8 + 16 * (size_t)(q))
#define CTL_ROWS(q) (16 + 16 * (size_t)(q))
#define CTL_SLOTS(P) (8 + 16 * (size_t)(P))
#define MAX_LAYERS 16
#define TILE 65536 /* floats of one gradient tile (whole rows): 256 KB, within L2 */
#define TILE_ROWS 128

/* How Adam writes the weights of a rank's rows: through the caches, or
 * streamed past them (dt_adam_update_stream). The other ranks read those
 * lines in forward; where their cores sit far from this one (another die or
 * socket; a virtual machine's cores may move), a cached store first waits for
 * each line to be taken back from them: the update then took 3-4x as long on
 * a 2-core virtual machine, in about a third of the runs. Streamed stores do
 * not wait, but cost a little more (5-15 %) where the cores are close. Both
 * give the same bits, so each rank times both and uses the faster, trying
 * the other again after PROBE steps, then after twice as many each time it
 * is still slower (up to PROBE_MAX). DTRAIN_ADAM_STORES=cache or stream
 * fixes the choice. */
enum { STORE_CACHE, STORE_STREAM, STORE_AUTO };
#define PROBE 32
#define PROBE_MAX 1024

typedef struct dt_share dt_share;
struct dt_share {
    int P, r, nl;
    uint64_t *ctl, steps;
    int stores, store;      /* STORE_*: asked for, and this step's */
    double store_t[2];      /* seconds of updates per step with each, smoothed */
    uint64_t probe_at, probe_gap;
    float *m, *v; /* Adam's moments of the rows this rank owns (mapped, n each) */
    size_t mv_bytes;
    struct {
        size_t w_off, b_off, x_at, dy_at; /* x and dy: offsets in each rank's activations */
        int in, out;
    } l[MAX_LAYERS]; /* from the block's end to its start */
    float tile[TILE], bias[TILE_ROWS];
    float *acts[]; /* acts[q]: rank q's activations */
};

static void publish(dt_share *sh, size_t n, size_t from)
{
    uint64_t v = (sh->steps + 1) << 32 | (uint64_t)(n - from);
    __atomic_store_n(&sh->ctl[CTL_READY(sh->r)], v, __ATOMIC_RELEASE);
}

static void wait_done(const dt_share *sh, uint64_t need)
{
    for (int q = 0; q < sh->P; q++)
        while (__atomic_load_n(&sh->ctl[CTL_READY(q)], __ATOMIC_ACQUIRE) < need) sched_yield();
}

/* the rows of layer i this rank owns */
static void own_rows(const dt_share *sh, int i, int *r0, int *r1)
{
    int64_t out = sh->l[i].out;
    *r0 = (int)(out * sh->r / sh->P);
    *r1 = (int)(out * (sh->r + 1) / sh->P);
}

/* this rank's rows of every layer, weights and biases: dm, dv = sm, sv */
static void copy_own(const dt_share *sh, float *dm, float *dv, const float *sm, const float *sv)
{
    for (int i = 0; i < sh->nl; i++) {
        int r0, r1;
        own_rows(sh, i, &r0, &r1);
        size_t in = (size_t)sh->l[i].in, w = sh->l[i].w_off + (size_t)r0 * in, b = sh->l[i].b_off + (size_t)r0;
        size_t nw = (size_t)(r1 - r0) * in, nb = (size_t)(r1 - r0);
        memcpy(dm + w, sm + w, nw * sizeof(float));
        memcpy(dv + w, sv + w, nw * sizeof(float));
        memcpy(dm + b, sm + b, nb * sizeof(float));
        memcpy(dv + b, sv + b, nb * sizeof(float));
    }
}

/* this rank's rows of layer i: the gradient and Adam, a tile at a time */
static void update_rows(dt_step *s, int i, const int *rows, double *adam)
{
    dt_params *p = s->o->p;
    dt_share *sh = s->o->share;
    int in = sh->l[i].in, out = sh->l[i].out, r0, r1;
    own_rows(sh, i, &r0, &r1);
    int per = TILE / in < TILE_ROWS ? TILE / in : TILE_ROWS; /* rows per tile */
    for (int a = r0; a < r1; a += per) {
        int b = a + per < r1 ? a + per : r1, acc = DT_ACC_SET;
        double t0 = dt_now();
        for (int q = 0; q < sh->P; q++) {
            if (rows[q] == 0) continue; /* rank q had no images */
            const float *acts = sh->acts[q];
            dt_linear_grad_block(sh->tile, sh->bias, acts + sh->l[i].dy_at, acts + sh->l[i].x_at, rows[q], in, out, a,
                                 b, 0, in, acc);
            acc = s->o->plain ? DT_ACC_ADD : DT_ACC_CHAIN; /* the batch's rows go on in order */
        }
        if (acc == DT_ACC_SET) dt_linear_grad_block(sh->tile, sh->bias, NULL, NULL, 0, in, out, a, b, 0, in, acc);
        double t1 = dt_now();
        s->grad_secs += t1 - t0;
        size_t w = sh->l[i].w_off + (size_t)a * (size_t)in, bo = sh->l[i].b_off + (size_t)a;
        if (sh->store == STORE_STREAM)
            dt_adam_update_stream(s->k, p->w + w, sh->m + w, sh->v + w, sh->tile, (size_t)(b - a) * (size_t)in);
        else
            dt_adam_update(s->k, p->w + w, sh->m + w, sh->v + w, sh->tile, (size_t)(b - a) * (size_t)in);
        dt_adam_update(s->k, p->w + bo, sh->m + bo, sh->v + bo, sh->bias, (size_t)(b - a));
        *adam += dt_now() - t1;
    }
}

static int faster_store(const dt_share *sh)
{
    return sh->store_t[STORE_STREAM] < sh->store_t[STORE_CACHE] ? STORE_STREAM : STORE_CACHE;
}

/* this step's way of storing the weights: each tried once first (steps 1
 * and 2, after a cold start), then the faster, and the other at probe_at */
static int pick_store(const dt_share *sh)
{
    if (sh->stores != STORE_AUTO) return sh->stores;
    if (sh->steps < 3) return sh->steps == 2 ? STORE_STREAM : STORE_CACHE;
    return sh->steps == sh->probe_at ? !faster_store(sh) : faster_store(sh);
}

/* after a step with store k that took `secs` in Adam's updates */
static void time_store(dt_share *sh, int k, double secs)
{
    if (sh->steps == 0) return; /* cold caches */
    double *e = &sh->store_t[k];
    *e = *e == 0 ? secs : 0.5 * *e + 0.5 * secs;
    if (sh->steps == 2 || sh->steps == sh->probe_at) { /* the other way again: later if still slower */
        int slower = sh->steps > 2 && faster_store(sh) != k;
        sh->probe_gap = slower && sh->probe_gap < PROBE_MAX ? 2 * sh->probe_gap : PROBE;
        sh->probe_at = sh->steps + sh->probe_gap;
    }
}

void dt_shared_step(dt_step *s)
{
    dt_params *p = s->o->p;
    dt_share *sh = s->o->share;
    int P = sh->P, rows[P];
    uint64_t t = sh->steps;
    publish(sh, p->n, 0);
    sh->store = pick_store(sh);
    double adam = 0;
    for (int i = 0; i < sh->nl; i++) { /* in the order backward finishes them */
        double w0 = dt_now();
        wait_done(sh, (t + 1) << 32 | (uint64_t)(p->n - sh->l[i].w_off));
        s->wait_secs += dt_now() - w0;
        if (i == 0)
            for (int q = 0; q < P; q++) rows[q] = (int)__atomic_load_n(&sh->ctl[CTL_ROWS(q)], __ATOMIC_RELAXED);
        update_rows(s, i, rows, &adam);
    }
    if (sh->stores == STORE_AUTO) time_store(sh, sh->store, adam);
    /* every rank's rows updated: the weights are whole, the activations free */
    __atomic_fetch_add(&sh->ctl[CTL_DONE], 1, __ATOMIC_RELEASE);
    double w0 = dt_now();
    while (__atomic_load_n(&sh->ctl[CTL_DONE], __ATOMIC_ACQUIRE) < (t + 1) * (uint64_t)P) sched_yield();
    s->wait_secs += dt_now() - w0;
    sh->steps++;
}

void dt_shared_rows(dt_share *sh, int rows)
{
    __atomic_store_n(&sh->ctl[CTL_ROWS(sh->r)], (uint64_t)rows, __ATOMIC_RELAXED);
}

void dt_shared_ready(dt_share *sh, size_t n, size_t from) { publish(sh, n, from); }

void dt_shared_gather_moments(dt_optim *o)
{
    dt_params *p = o->p;
    copy_own(o->share, p->m, p->v, o->share->m, o->share->v);
    dt_comm_shared_sync(o->g);
}

/* the distinct buffers among the layers' x and dy, in order of first use */
static int distinct_bufs(const dt_step_layer *ls, int nl, float ***bufs, size_t *width)
{
    int nb = 0;
    for (int i = 0; i < nl; i++) {
        float **two[2] = {ls[i].x, ls[i].dy};
        size_t w[2] = {(size_t)ls[i].in, (size_t)ls[i].out};
        for (int k = 0; k < 2; k++) {
            int j = 0;
            while (j < nb && bufs[j] != two[k]) j++;
            if (j == nb) bufs[nb] = two[k], width[nb++] = w[k];
            DT_ASSERT(width[j] == w[k]); /* one buffer, one width */
        }
    }
    return nb;
}

/* DTRAIN_ADAM_STORES as STORE_* (collective: a bad value is a user error) */
static int stores_asked(void)
{
    const char *st = getenv("DTRAIN_ADAM_STORES");
    int stores = !st || !*st || strcmp(st, "auto") == 0 ? STORE_AUTO
                 : strcmp(st, "cache") == 0         ? STORE_CACHE
                 : strcmp(st, "stream") == 0        ? STORE_STREAM
                                                    : -1;
    if (stores < 0) dt_seterr("DTRAIN_ADAM_STORES is '%s'; use cache, stream or auto (the default)", st);
    dt_check_all(stores >= 0);
    return stores;
}

/* sh's layers in the order backward finishes them (the block's end first),
 * their activations as offsets in rank r's part */
static void order_layers(dt_share *sh, const dt_step_layer *ls, int nl, int r)
{
    sh->nl = nl;
    for (int i = 0; i < nl; i++) {
        int j = i;
        for (; j > 0 && sh->l[j - 1].w_off < ls[i].w_off; j--) sh->l[j] = sh->l[j - 1];
        sh->l[j].w_off = ls[i].w_off;
        sh->l[j].b_off = ls[i].b_off;
        sh->l[j].in = ls[i].in;
        sh->l[j].out = ls[i].out;
        sh->l[j].x_at = (size_t)(*ls[i].x - sh->acts[r]);
        sh->l[j].dy_at = (size_t)(*ls[i].dy - sh->acts[r]);
        DT_ASSERT(ls[i].in <= TILE); /* a tile holds at least one row */
    }
}

/* this rank's moments (untouched pages cost nothing), and in place of the
 * gradient block, which the step no longer needs, pages that fault if
 * anything ever touches them */
static void private_moments(dt_share *sh, dt_params *p)
{
    sh->mv_bytes = (p->n * sizeof(float) + 4095) & ~(size_t)4095;
    char *mm = mmap(NULL, 3 * sh->mv_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mm == MAP_FAILED || mprotect(mm + 2 * sh->mv_bytes, sh->mv_bytes, PROT_NONE) != 0)
        DT_FATAL("out of memory mapping %zu bytes", 3 * sh->mv_bytes);
    sh->m = (float *)(void *)mm;
    sh->v = (float *)(void *)(mm + sh->mv_bytes);
    copy_own(sh, sh->m, sh->v, p->m, p->v);
    dt_free(p->g);
    p->g = (float *)(void *)(mm + 2 * sh->mv_bytes);
}

int dt_shared_create(dt_optim *o, int max_rows, const dt_step_layer *ls, int nl)
{
    dt_params *p = o->p;
    dt_comm *g = o->g;
    int P = dt_comm_size(g), r = dt_comm_rank(g);
    DT_ASSERT(nl <= MAX_LAYERS && max_rows >= 0);
    int stores = stores_asked();
    float **bufs[2 * MAX_LAYERS];
    size_t width[2 * MAX_LAYERS], at[2 * MAX_LAYERS], acts = 0;
    int nb = distinct_bufs(ls, nl, bufs, width);
    for (int j = 0; j < nb; j++) /* each on whole cache lines */
        at[j] = acts, acts += ((size_t)max_rows * width[j] + 15) & ~(size_t)15;
    /* a window's backing file holds every rank's part, and some slack */
    size_t nn = (p->n + 15) & ~(size_t)15; /* whole cache lines */
    if (o->share || p->n >= (size_t)1 << 32 ||
        !dt_comm_can_share(g, ((size_t)P + 3) * nn * sizeof(float) + (size_t)P * acts * sizeof(float)))
        return 0;
    dt_share *sh = calloc(1, sizeof *sh + (size_t)P * sizeof(float *));
    float **ws = calloc((size_t)P, sizeof *ws), **cs = calloc((size_t)P, sizeof *cs);
    if (!sh || !ws || !cs) DT_FATAL("out of memory");
    size_t nctl = CTL_SLOTS(P) * 2; /* floats: uint64 slots */
    /* one block each of weights and Adam's moments, on rank 0's pages */
    dt_comm_shared_floats(g, r == 0 ? 3 * nn : 0, ws);
    dt_comm_shared_floats(g, r == 0 ? nctl : 0, cs); /* the step's counters */
    dt_comm_shared_floats(g, acts, sh->acts);       /* each rank's activations */
    if (r == 0) { /* every rank holds the same weights and moments here */
        memcpy(ws[0], p->w, p->n * sizeof(float));
        memcpy(ws[0] + nn, p->m, p->n * sizeof(float));
        memcpy(ws[0] + 2 * nn, p->v, p->n * sizeof(float));
        memset(cs[0], 0, nctl * sizeof(float));
    }
    for (int j = 0; j < nb; j++) { /* the buffers keep what they hold */
        memcpy(sh->acts[r] + at[j], *bufs[j], (size_t)max_rows * width[j] * sizeof(float));
        dt_free(*bufs[j]);
        *bufs[j] = sh->acts[r] + at[j];
    }
    dt_comm_shared_sync(g);
    float **mine[] = {&p->w, &p->m, &p->v};
    for (int k = 0; k < 3; k++) dt_free(*mine[k]);
    p->w = ws[0];
    p->m = ws[0] + nn;
    p->v = ws[0] + 2 * nn;
    sh->P = P;
    sh->r = r;
    sh->stores = stores;
    sh->ctl = (uint64_t *)(void *)cs[0];
    order_layers(sh, ls, nl, r);
    private_moments(sh, p);
    o->share = sh;
    free(ws);
    free(cs);
    return 1;
}

const char *dt_step_stores(const dt_optim *o, double ms[2])
{
    const dt_share *sh = o->share;
    if (!sh) return NULL;
    for (int k = 0; k < 2; k++) ms[k] = sh->store_t[k] * 1e3;
    return sh->stores == STORE_AUTO ? "auto" : sh->stores == STORE_STREAM ? "stream" : "cache";
}

void dt_shared_free(dt_optim *o)
{
    dt_params *p = o->p;
    dt_share *sh = o->share;
    if (!sh) return;
    munmap(sh->m, 3 * sh->mv_bytes);
    free(sh);
    o->share = NULL;
    p->w = p->m = p->v = NULL; /* the job's shared memory, freed at the end */
    p->g = NULL;
}

