/* The data-parallel optimizer step (see include/dtrain/train.h). */
#include "dtrain/train.h"

#include <stdlib.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/dist.h"

void dt_train_step(dt_adam *a, dt_params *p) { dt_train_step_in(NULL, a, p); }
void dt_train_gather_moments(dt_params *p) { dt_train_gather_moments_in(NULL, p); }
void dt_train_share(dt_params *p)
{
    dt_comm *g = NULL; /* all ranks */
    int P = dt_comm_size(g), r = dt_comm_rank(g);
    /* a window's backing file holds every rank's part, and some slack */
    if (p->peer_g || !dt_comm_can_share(g, ((size_t)P + 1) * p->n * sizeof(float))) return;
    float **gs = calloc((size_t)P, sizeof *gs), **ws = calloc((size_t)P, sizeof *ws);
    if (!gs || !ws) DT_FATAL("out of memory");
    dt_comm_shared_floats(g, p->n, gs);                /* a gradient block per rank */
    dt_comm_shared_floats(g, r == 0 ? p->n : 0, ws); /* one weight block, on rank 0's pages */
    memcpy(gs[r], p->g, p->n * sizeof(float));
    if (r == 0) memcpy(ws[0], p->w, p->n * sizeof(float));
    dt_comm_shared_sync(g);
    dt_free(p->w);
    dt_free(p->g);
    p->w = ws[0];
    p->g = gs[r];
    p->peer_g = gs;
    free(ws);
}

const char *dt_train_exchange(const dt_params *p)
{
    return p->peer_g ? "node-shared memory" : "reduce-scatter + allgather";
}

void dt_train_step_in(dt_comm *g, dt_adam *a, dt_params *p)
{
    size_t lo, hi;
    dt_comm_shard(g, p->n, &lo, &hi);
    if (p->peer_g) {
        /* every rank's gradient is complete; each sums its block of all of
         * them straight from the others' memory and updates its block of the
         * one weight copy */
        dt_comm_shared_sync(g);
        dt_adam_step_sum(a, p, lo, hi, p->peer_g, dt_comm_size(g));
        /* the new weights are visible and nobody reads this rank's gradient
         * any more */
        dt_comm_shared_sync(g);
        if (!p->g_written) dt_params_zero_grad(p);
        return;
    }
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
    dt_comm_allgather_f(g, p->m, p->n);
    dt_comm_allgather_f(g, p->v, p->n);
}
