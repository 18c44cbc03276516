/* step: the optimizer-step interface (step.h) and its messages strategy
 * (reduce-scatter, Adam on this rank's block, allgather); the node-shared
 * strategy is in step_shared.c. */
#include "dtrain/step.h"

#include <string.h>

#include "dtrain/comm.h"
#include "dtrain/core.h"
#include "step_shared.h"

/* the messages strategy: sum by reduce-scatter, Adam on this rank's block,
 * allgather of the new weights */
static void messages_step(dt_comm *g, dt_adam *a, dt_params *p)
{
    DT_ASSERT(!p->share); /* shared params step through dt_step */
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

void dt_step_begin(dt_step *s, dt_comm *g, dt_adam *a, dt_params *p)
{
    *s = (dt_step){.g = g, .a = a, .p = p};
    if (p->share) s->k = dt_adam_next(a);
}

int dt_step_grads(const dt_step *s) { return !s->p->share; }

void dt_step_rows(dt_step *s, int rows)
{
    if (s->p->share) dt_shared_rows(s->p->share, rows);
}

void dt_step_ready(dt_step *s, size_t from)
{
    if (s->p->share) dt_shared_ready(s->p->share, s->p->n, from);
}

static void hook_rows(void *s, int rows) { dt_step_rows(s, rows); }
static void hook_done(void *s, size_t from) { dt_step_ready(s, from); }

dt_backward_hooks dt_step_hooks(dt_step *s)
{
    return (dt_backward_hooks){.ctx = s, .grads = dt_step_grads(s), .rows = hook_rows, .done = hook_done};
}

void dt_step_end(dt_step *s)
{
    double t0 = dt_now();
    if (s->p->share)
        dt_shared_step(s);
    else
        messages_step(s->g, s->a, s->p);
    s->secs += dt_now() - t0;
}

const char *dt_step_exchange(const dt_params *p)
{
    return p->share ? "node-shared memory" : "reduce-scatter + allgather";
}

void dt_step_gather_moments(dt_comm *g, dt_params *p)
{
    if (p->share) { /* each rank's rows into the shared copy */
        dt_shared_gather_moments(g, p);
        return;
    }
    dt_comm_allgather_f(g, p->m, p->n);
    dt_comm_allgather_f(g, p->v, p->n);
}
