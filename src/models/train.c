/* The data-parallel optimizer step (see include/dtrain/train.h). */
#include "dtrain/train.h"

#include <string.h>

#include "dtrain/dist.h"

void dt_train_step(dt_adam *a, dt_params *p) { dt_train_step_in(NULL, a, p); }
void dt_train_gather_moments(dt_params *p) { dt_train_gather_moments_in(NULL, p); }

void dt_train_step_in(dt_comm *g, dt_adam *a, dt_params *p)
{
    size_t lo, hi;
    dt_comm_shard(g, p->n, &lo, &hi);
    dt_comm_reduce_scatter_sum_f(g, p->g, p->n);
    dt_adam_step_range(a, p, lo, hi); /* zeroes g[lo, hi) */
    memset(p->g, 0, lo * sizeof(float));
    memset(p->g + hi, 0, (p->n - hi) * sizeof(float));
    dt_comm_allgather_f(g, p->w, p->n);
}

void dt_train_gather_moments_in(dt_comm *g, dt_params *p)
{
    dt_comm_allgather_f(g, p->m, p->n);
    dt_comm_allgather_f(g, p->v, p->n);
}
