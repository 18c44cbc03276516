/* The data-parallel optimizer step (see include/dtrain/train.h). */
#include "dtrain/train.h"

#include <sched.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/dist.h"

/* ---- the node-shared step ---------------------------------------------------
 * Adam's work is cut into chunks counted from the block's end, where backward
 * makes gradients final first (the output layer). Each rank publishes how far
 * from the end its gradients are final (dt_step_ready); when its backward is
 * done it takes chunks from a shared counter, each as soon as every rank's
 * gradients cover it, until none are left, then waits until all are done. A
 * rank that finishes its backward first so does more of the updates while the
 * others finish theirs, instead of waiting at a barrier. Which rank updates a
 * chunk changes no bit: every element's gradient is summed in rank order.
 * The counters only grow: step t (t = share_steps, the same on every rank)
 * owns claims [t C, (t + 1) C), and a rank's published value is
 * (t + 1) << 32 | (elements final, counted from the end). */
#define CHUNK 32768
enum { CTL_CLAIM = 0, CTL_DONE = 8, CTL_READY = 16 }; /* slots a cache line apart; READY + 8 r */

static uint64_t nchunks(const dt_params *p) { return (p->n + CHUNK - 1) / CHUNK; }

static void publish(dt_params *p, int r, size_t from)
{
    uint64_t v = (p->share_steps + 1) << 32 | (uint64_t)(p->n - from);
    __atomic_store_n(&p->share_ctl[CTL_READY + 8 * r], v, __ATOMIC_RELEASE);
}

static int covered(const dt_params *p, int P, uint64_t need)
{
    for (int r = 0; r < P; r++)
        if (__atomic_load_n(&p->share_ctl[CTL_READY + 8 * r], __ATOMIC_ACQUIRE) < need) return 0;
    return 1;
}

static void shared_step(dt_step *s)
{
    dt_params *p = s->p;
    int P = dt_comm_size(s->g);
    uint64_t C = nchunks(p), t = p->share_steps, *ctl = p->share_ctl;
    publish(p, dt_comm_rank(s->g), 0);
    for (;;) {
        uint64_t c = __atomic_load_n(&ctl[CTL_CLAIM], __ATOMIC_ACQUIRE);
        if (c >= (t + 1) * C) break;
        size_t hi = p->n - (size_t)(c - t * C) * CHUNK, lo = hi > CHUNK ? hi - CHUNK : 0;
        uint64_t need = (t + 1) << 32 | (uint64_t)(p->n - lo);
        while (!covered(p, P, need)) sched_yield();
        if (!__atomic_compare_exchange_n(&ctl[CTL_CLAIM], &c, c + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) continue;
        dt_adam_sum_range(s->k, p, lo, hi, p->peer_g, P);
        __atomic_fetch_add(&ctl[CTL_DONE], 1, __ATOMIC_RELEASE);
    }
    /* every update is in the weights, and nobody reads a gradient any more */
    while (__atomic_load_n(&ctl[CTL_DONE], __ATOMIC_ACQUIRE) < (t + 1) * C) sched_yield();
    p->share_steps++;
    if (!p->g_written) dt_params_zero_grad(p);
}

void dt_train_step(dt_adam *a, dt_params *p) { dt_train_step_in(NULL, a, p); }
void dt_train_gather_moments(dt_params *p) { dt_train_gather_moments_in(NULL, p); }

void dt_train_share(dt_params *p)
{
    dt_comm *g = NULL; /* all ranks */
    int P = dt_comm_size(g), r = dt_comm_rank(g);
    /* a window's backing file holds every rank's part, and some slack */
    size_t nn = (p->n + 15) & ~(size_t)15; /* whole cache lines */
    if (p->peer_g || p->n >= (size_t)1 << 32 || !dt_comm_can_share(g, ((size_t)P + 3) * nn * sizeof(float))) return;
    float **gs = calloc((size_t)P, sizeof *gs), **ws = calloc((size_t)P, sizeof *ws),
          **cs = calloc((size_t)P, sizeof *cs);
    if (!gs || !ws || !cs) DT_FATAL("out of memory");
    size_t nctl = (size_t)(CTL_READY + 8 * P) * 2; /* floats: uint64 slots */
    dt_comm_shared_floats(g, p->n, gs); /* a gradient block per rank */
    /* one block each of weights and Adam's moments (any rank may update any
     * part of them), on rank 0's pages */
    dt_comm_shared_floats(g, r == 0 ? 3 * nn : 0, ws);
    dt_comm_shared_floats(g, r == 0 ? nctl : 0, cs); /* the step's counters */
    memcpy(gs[r], p->g, p->n * sizeof(float));
    if (r == 0) { /* every rank holds the same weights and moments here */
        memcpy(ws[0], p->w, p->n * sizeof(float));
        memcpy(ws[0] + nn, p->m, p->n * sizeof(float));
        memcpy(ws[0] + 2 * nn, p->v, p->n * sizeof(float));
        memset(cs[0], 0, nctl * sizeof(float));
    }
    dt_comm_shared_sync(g);
    float **mine[] = {&p->w, &p->g, &p->m, &p->v};
    for (int k = 0; k < 4; k++) dt_free(*mine[k]);
    p->w = ws[0];
    p->m = ws[0] + nn;
    p->v = ws[0] + 2 * nn;
    p->g = gs[r];
    p->peer_g = gs;
    p->share_ctl = (uint64_t *)(void *)cs[0];
    p->share_steps = 0;
    free(ws);
    free(cs);
}

const char *dt_train_exchange(const dt_params *p)
{
    return p->peer_g ? "node-shared memory" : "reduce-scatter + allgather";
}

void dt_step_begin(dt_step *s, dt_comm *g, dt_adam *a, dt_params *p)
{
    *s = (dt_step){.g = g, .a = a, .p = p};
    if (p->peer_g) s->k = dt_adam_next(a);
}

void dt_step_ready(dt_step *s, size_t from)
{
    if (s->p->peer_g) publish(s->p, dt_comm_rank(s->g), from);
}

void dt_step_end(dt_step *s)
{
    double t0 = dt_now();
    if (s->p->peer_g)
        shared_step(s);
    else
        dt_train_step_in(s->g, s->a, s->p);
    s->secs += dt_now() - t0;
}

void dt_train_step_in(dt_comm *g, dt_adam *a, dt_params *p)
{
    if (p->peer_g) {
        dt_step s;
        dt_step_begin(&s, g, a, p);
        shared_step(&s);
        return;
    }
    size_t lo, hi;
    dt_comm_shard(g, p->n, &lo, &hi);
    dt_comm_reduce_scatter_sum_f(g, p->g, p->n);
    dt_adam_step_range(a, p, lo, hi); /* clears g[lo, hi) */
    dt_comm_allgather_f(g, p->w, p->n);
    if (!p->g_written) {
        memset(p->g, 0, lo * sizeof(float));
        memset(p->g + hi, 0, (p->n - hi) * sizeof(float));
    }
}

void dt_train_gather_moments_in(dt_comm *g, dt_params *p)
{
    if (p->peer_g) return; /* one copy, in memory every rank reads */
    dt_comm_allgather_f(g, p->m, p->n);
    dt_comm_allgather_f(g, p->v, p->n);
}
