/* step: the optimizer-step interface (step.h) and its plain messages
 * strategy (reduce-scatter, Adam on this rank's block, allgather); the
 * exact messages strategy is in step_gather.c, the node-shared one in
 * step_shared.c. */
#include "dtrain/step.h"

#include <stdlib.h>
#include <string.h>

#include "dtrain/comm.h"
#include "dtrain/core.h"
#include "step_gather.h"
#include "step_shared.h"

/* the messages strategy: sum by reduce-scatter, Adam on this rank's block,
 * allgather of the new weights */
static void messages_step(dt_optim *o)
{
    dt_comm *g = o->g;
    dt_params *p = o->p;
    size_t lo, hi;
    dt_comm_shard(g, p->n, &lo, &hi);
    if (!o->summed) dt_comm_reduce_scatter_sum_f(g, p->g, p->n);
    dt_adam_step_range(o->a, p, lo, hi); /* clears g[lo, hi) */
    dt_comm_allgather_f(g, p->w, p->n);
    if (!o->g_written) {
        memset(p->g, 0, lo * sizeof(float));
        memset(p->g + hi, 0, (p->n - hi) * sizeof(float));
    }
}

/* DTRAIN_REDUCE: "exact" (the default) or "plain" */
static int reduce_plain(void)
{
    static int plain = -1;
    if (plain < 0) {
        const char *v = getenv("DTRAIN_REDUCE");
        plain = v && strcmp(v, "plain") == 0;
        if (v && *v && !plain && strcmp(v, "exact") != 0)
            dt_warn("DTRAIN_REDUCE=%s is not one of exact, plain: using exact", v);
    }
    return plain;
}

const char *dt_step_reduction(void) { return reduce_plain() ? "plain" : "exact"; }

void dt_optim_init(dt_optim *o, dt_comm *g, dt_adam *a, dt_params *p, int g_written)
{
    *o = (dt_optim){.g = g, .a = a, .p = p, .g_written = g_written, .plain = reduce_plain()};
}

void dt_step_begin(dt_step *s, dt_optim *o)
{
    *s = (dt_step){.o = o};
    if (o->share) s->k = dt_adam_next(o->a);
}

static int step_grads(const dt_step *s) { return !s->o->share && !s->o->gather; }

void dt_step_rows(dt_step *s, int rows)
{
    if (s->o->share) dt_shared_rows(s->o->share, rows);
    if (s->o->gather) dt_gather_rows(s->o, rows);
}

void dt_step_ready(dt_step *s, size_t from)
{
    if (s->o->share) dt_shared_ready(s->o->share, s->o->p->n, from);
    if (s->o->gather) dt_gather_ready(s->o, from);
}

static void hook_rows(void *s, int rows) { dt_step_rows(s, rows); }
static void hook_done(void *s, size_t from) { dt_step_ready(s, from); }

dt_backward_hooks dt_step_hooks(dt_step *s)
{
    return (dt_backward_hooks){.ctx = s, .grads = step_grads(s), .rows = hook_rows, .done = hook_done};
}

void dt_step_end(dt_step *s)
{
    double t0 = dt_now();
    if (s->o->share)
        dt_shared_step(s);
    else if (s->o->gather)
        dt_gather_step(s);
    else
        messages_step(s->o);
    s->secs += dt_now() - t0;
}

const char *dt_step_exchange(const dt_optim *o)
{
    return o->share ? "node-shared memory" : o->gather ? "allgather of activations" : "reduce-scatter + allgather";
}

int dt_step_share(dt_optim *o, int max_rows, const dt_step_layer *ls, int nl)
{
    if (dt_shared_create(o, max_rows, ls, nl)) return 1;
    if (!o->gather && !o->plain && dt_comm_size(o->g) > 1) o->gather = dt_gather_create(o, max_rows, ls, nl);
    return 0;
}

void dt_step_unshare(dt_optim *o)
{
    dt_shared_free(o);
    dt_gather_free(o->gather);
    o->gather = NULL;
}

void dt_step_gather_moments(dt_optim *o)
{
    if (o->share) { /* each rank's rows into the shared copy */
        dt_shared_gather_moments(o);
        return;
    }
    dt_comm_allgather_f(o->g, o->p->m, o->p->n);
    dt_comm_allgather_f(o->g, o->p->v, o->p->n);
}
