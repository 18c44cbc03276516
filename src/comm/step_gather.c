/* step_gather: the exact messages strategy of the optimizer step (step.h).
 * Every rank gathers each layer's input rows and output-gradient rows of the
 * whole global batch (started as backward finishes the layer), computes the
 * gradient of its block of the parameters as one chain over the global batch
 * in order, which is what one rank computes alone, updates the block with
 * Adam, and an allgather shares the new weights. */
#include "step_gather.h"

#include <stdlib.h>
#include <string.h>

#include "dtrain/comm.h"
#include "dtrain/core.h"

#define MAX_LAYERS 16

typedef struct dt_gather dt_gather;

struct dt_gather {
    int P, nl, cap; /* ranks; layers; rows the gathered buffers hold */
    int *rows, *at; /* this step: each rank's batch rows and where they start */
    int total;      /* the global batch */
    size_t lo, hi;  /* this rank's block of the parameters */
    struct {
        size_t w_off, b_off;
        int in, out, started;
        float **x, **dy;   /* the model's buffers of this rank's rows */
        float *gx, *gdy;   /* the global batch's rows */
        dt_request rx, rdy;
    } l[MAX_LAYERS]; /* in the order backward finishes them (the block's end first) */
};

dt_gather *dt_gather_create(dt_optim *o, int max_rows, const dt_step_layer *ls, int nl)
{
    int P = dt_comm_size(o->g);
    DT_ASSERT(nl <= MAX_LAYERS && max_rows >= 0 && P > 1);
    dt_gather *gt = dt_alloc(sizeof *gt);
    gt->P = P;
    gt->nl = nl;
    gt->cap = P * max_rows;
    gt->rows = dt_alloc(2 * sizeof(int) * (size_t)P);
    gt->at = gt->rows + P;
    dt_comm_shard(o->g, o->p->n, &gt->lo, &gt->hi);
    for (int i = 0; i < nl; i++) { /* backward's order: by offset, the last first */
        int j = i;
        for (; j > 0 && gt->l[j - 1].w_off < ls[i].w_off; j--) gt->l[j] = gt->l[j - 1];
        gt->l[j].w_off = ls[i].w_off;
        gt->l[j].b_off = ls[i].b_off;
        gt->l[j].in = ls[i].in;
        gt->l[j].out = ls[i].out;
        gt->l[j].x = ls[i].x;
        gt->l[j].dy = ls[i].dy;
    }
    for (int i = 0; i < nl; i++) {
        gt->l[i].gx = dt_alloc_floats((size_t)gt->cap * (size_t)gt->l[i].in);
        gt->l[i].gdy = dt_alloc_floats((size_t)gt->cap * (size_t)gt->l[i].out);
    }
    return gt;
}

void dt_gather_free(dt_gather *gt)
{
    if (!gt) return;
    for (int i = 0; i < gt->nl; i++) dt_free(gt->l[i].gx), dt_free(gt->l[i].gdy);
    dt_free(gt->rows);
    dt_free(gt);
}

void dt_gather_rows(dt_optim *o, int rows)
{
    dt_gather *gt = o->gather;
    dt_comm_allgather_int(o->g, rows, gt->rows);
    gt->total = 0;
    for (int q = 0; q < gt->P; q++) gt->at[q] = gt->total, gt->total += gt->rows[q];
    DT_ASSERT(gt->total <= gt->cap);
}

void dt_gather_ready(dt_optim *o, size_t from)
{
    dt_gather *gt = o->gather;
    for (int i = 0; i < gt->nl && gt->l[i].w_off >= from; i++) {
        if (gt->l[i].started) continue;
        dt_comm_iallgather_rows(o->g, *gt->l[i].x, gt->l[i].gx, (size_t)gt->l[i].in, gt->rows, gt->at, &gt->l[i].rx);
        dt_comm_iallgather_rows(o->g, *gt->l[i].dy, gt->l[i].gdy, (size_t)gt->l[i].out, gt->rows, gt->at,
                                &gt->l[i].rdy);
        gt->l[i].started = 1;
    }
}

/* g[e0, e1) of layer i's weights (row-major, in per row), from the global batch */
static void weights_part(const dt_gather *gt, int i, float *g, size_t e0, size_t e1)
{
    size_t in = (size_t)gt->l[i].in;
    for (size_t e = e0; e < e1;) {
        int r = (int)(e / in), c0 = (int)(e % in), r1 = r + 1, c1 = (int)in;
        if (c0 == 0 && e1 - e >= in) /* whole rows */
            r1 = r + (int)((e1 - e) / in);
        else if (e1 - e < in - (size_t)c0)
            c1 = c0 + (int)(e1 - e);
        dt_linear_grad_block(g + e, NULL, gt->l[i].gdy, gt->l[i].gx, gt->total, gt->l[i].in, gt->l[i].out, r, r1, c0,
                             c1, DT_ACC_SET);
        e += (size_t)(r1 - r) * (size_t)(c1 - c0);
    }
}

/* this rank's block of layer i's gradient, into p->g */
static void layer_grads(const dt_gather *gt, int i, float *g)
{
    size_t lo = gt->lo, hi = gt->hi, nw = (size_t)gt->l[i].in * (size_t)gt->l[i].out;
    size_t w0 = gt->l[i].w_off, b0 = gt->l[i].b_off, out = (size_t)gt->l[i].out;
    size_t a = lo > w0 ? lo : w0, b = hi < w0 + nw ? hi : w0 + nw;
    if (a < b) weights_part(gt, i, g + w0, a - w0, b - w0);
    a = lo > b0 ? lo : b0, b = hi < b0 + out ? hi : b0 + out;
    for (size_t o = a; o < b; o++) { /* as backward sums a bias: image by image, from 0 */
        float s = 0;
        for (int k = 0; k < gt->total; k++) s += gt->l[i].gdy[(size_t)k * out + (o - b0)];
        g[o] = s;
    }
}

void dt_gather_step(dt_step *s)
{
    dt_optim *o = s->o;
    dt_gather *gt = o->gather;
    dt_gather_ready(o, 0); /* any layer not yet started */
    for (int i = 0; i < gt->nl; i++) {
        double w0 = dt_now();
        dt_comm_wait(&gt->l[i].rx);
        dt_comm_wait(&gt->l[i].rdy);
        double t0 = dt_now();
        s->wait_secs += t0 - w0;
        layer_grads(gt, i, o->p->g);
        s->grad_secs += dt_now() - t0;
        gt->l[i].started = 0;
    }
    dt_adam_step_range(o->a, o->p, gt->lo, gt->hi);
    dt_comm_allgather_f(o->g, o->p->w, o->p->n);
}
