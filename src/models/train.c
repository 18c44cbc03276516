/* The data-parallel optimizer step (see include/dtrain/train.h). */
#include "dtrain/train.h"

#include <string.h>

#include "dtrain/dist.h"

void dt_train_step(dt_adam *a, dt_params *p)
{
    size_t lo, hi;
    dt_shard(p->n, &lo, &hi);
    dt_reduce_scatter_sum_f(p->g, p->n);
    dt_adam_step_range(a, p, lo, hi); /* zeroes g[lo, hi) */
    memset(p->g, 0, lo * sizeof(float));
    memset(p->g + hi, 0, (p->n - hi) * sizeof(float));
    dt_allgather_f(p->w, p->n);
}

void dt_train_gather_moments(dt_params *p)
{
    dt_allgather_f(p->m, p->n);
    dt_allgather_f(p->v, p->n);
}
