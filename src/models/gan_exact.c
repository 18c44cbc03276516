/* gan_exact: the CycleGAN's gradients summed the same way on any rank count.
 * With several ranks in a domain (4 ranks and more), each backward pass of a
 * network records every image's gradient terms (dt_grad_rec) instead of adding
 * them up; at the pass's end the domain's ranks gather the records of all the
 * pass's images, and each adds, into its block of the parameters (the block
 * its Adam updates), the terms image by image in the batch's order, as one
 * rank adds them in backward. The optimizer step then skips its reduce-scatter
 * (dt_optim.summed). DTRAIN_REDUCE=plain keeps the reduce-scatter. */
#include <string.h>

#include "dtrain/comm.h"
#include "dtrain/core.h"
#include "dtrain/guard.h"
#include "gan_train.h"

void dt_gan_exact_setup(gan *g)
{
    g->exact = 0;
    if (!g->group || dt_comm_size(g->group) < 2 || g->oG[0].plain) return;
    g->exact = 1;
    int X = g->h[0].X;
    size_t n[2] = {dt_gen_rec_size(), dt_disc_rec_size()};
    dt_grad_rec *recs[2] = {&g->G[X].rec, &g->D[X].rec};
    for (int k = 0; k < 2; k++) {
        recs[k]->rec_n = n[k];
        recs[k]->rec = dt_alloc_floats((size_t)g->maxB * n[k]);
    }
    g->rec_all = dt_alloc_floats(g->o.batch * (n[0] > n[1] ? n[0] : n[1]));
    g->fold_scratch = dt_alloc_floats(dt_gan_fold_scratch((int)g->o.batch));
    g->oG[X].summed = g->oD[X].summed = 1;
}

void dt_gan_exact_free(gan *g)
{
    if (!g->exact) return;
    int X = g->h[0].X;
    dt_free(g->G[X].rec.rec);
    dt_free(g->D[X].rec.rec);
    dt_free(g->rec_all);
    dt_free(g->fold_scratch);
}

void dt_gan_fold_pass(gan *g, half *h, int disc, size_t gn)
{
    if (!g->exact) return;
    dt_watch("gradient records exchange");
    double t0 = dt_now();
    int G = dt_comm_size(g->group), rows[G], at[G];
    for (int q = 0; q < G; q++) { /* the loader's blocks of the global batch */
        at[q] = (int)(gn * (size_t)q / (size_t)G);
        rows[q] = (int)(gn * (size_t)(q + 1) / (size_t)G) - at[q];
    }
    dt_params *p = disc ? &g->D[h->X].p : &g->G[h->X].p;
    const dt_grad_rec *r = disc ? &g->D[h->X].rec : &g->G[h->X].rec;
    dt_request req;
    dt_comm_iallgather_rows(g->group, r->rec, g->rec_all, r->rec_n, rows, at, &req);
    dt_comm_wait(&req);
    size_t lo, hi;
    dt_comm_shard(g->group, p->n, &lo, &hi);
    if (disc)
        dt_disc_fold(&g->D[h->X], g->rec_all, (int)gn, lo, hi, g->fold_scratch);
    else
        dt_gen_fold(&g->G[h->X], g->rec_all, (int)gn, lo, hi, g->fold_scratch);
    g->msg_s += dt_now() - t0;
}
