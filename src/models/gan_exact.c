/* gan_exact: the CycleGAN's gradients summed the same way on any rank count.
 * With several ranks in a domain (4 ranks and more), each backward pass of a
 * network records every image's gradient terms (dt_grad_rec) instead of adding
 * them up; at the pass's end each rank of the domain receives, from every
 * rank, the parts of that rank's records its own block of the parameters
 * needs (the block its Adam updates), and adds them image by image in the
 * batch's order, as one rank adds them in backward. The optimizer step then
 * skips its reduce-scatter (dt_optim.summed). DTRAIN_REDUCE=plain keeps the
 * reduce-scatter. */
#include <string.h>

#include "dtrain/comm.h"
#include "dtrain/core.h"
#include "gan_train.h"

/* the parts of a record that domain rank q's block needs: n (offset, length) pairs */
static int segments_of(const gan *g, int X, int disc, int q, size_t *seg)
{
    int G = dt_comm_size(g->group);
    const dt_params *p = disc ? &g->D[X].p : &g->G[X].p;
    size_t lo = p->n * (size_t)q / (size_t)G, hi = p->n * (size_t)(q + 1) / (size_t)G;
    return disc ? dt_disc_rec_segments(&g->D[X], lo, hi, seg, DT_REC_SEGMENTS)
                : dt_gen_rec_segments(&g->G[X], lo, hi, seg, DT_REC_SEGMENTS);
}

static size_t floats_of(const size_t *seg, int n)
{
    size_t f = 0;
    for (int s = 0; s < n; s++) f += seg[2 * s + 1];
    return f;
}

void dt_gan_exact_setup(gan *g)
{
    g->exact = 0;
    if (!g->group || dt_comm_size(g->group) < 2 || g->oG[0].plain) return;
    g->exact = 1;
    int X = g->h[0].X, G = dt_comm_size(g->group);
    size_t n[2] = {dt_gen_rec_size(), dt_disc_rec_size()}, most = 0;
    dt_grad_rec *recs[2] = {&g->G[X].rec, &g->D[X].rec};
    g->seg = dt_alloc(sizeof(size_t) * 2 * DT_REC_SEGMENTS);
    for (int k = 0; k < 2; k++) {
        recs[k]->rec_n = n[k];
        recs[k]->rec = dt_alloc_floats((size_t)g->maxB * n[k]);
        size_t all = 0; /* what this rank sends of one image: every rank's parts */
        for (int q = 0; q < G; q++) all += floats_of(g->seg, segments_of(g, X, k, q, g->seg));
        most = all > most ? all : most;
    }
    g->rec_send = dt_alloc_floats((size_t)g->maxB * most);
    g->rec_recv = dt_alloc_floats(g->o.batch * (n[0] > n[1] ? n[0] : n[1]));
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
    float *bufs[] = {g->rec_send, g->rec_recv, g->rec_all, g->fold_scratch};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) dt_free(bufs[i]);
    dt_free(g->seg);
}

/* rank q's parts of this rank's n records into out, one image after another; the floats written */
static size_t pack(const gan *g, int X, int disc, int q, const dt_grad_rec *r, size_t n, float *out)
{
    int ns = segments_of(g, X, disc, q, g->seg);
    size_t o = 0;
    for (size_t i = 0; i < n; i++)
        for (int s = 0; s < ns; s++) {
            memcpy(out + o, r->rec + i * r->rec_n + g->seg[2 * s], sizeof(float) * g->seg[2 * s + 1]);
            o += g->seg[2 * s + 1];
        }
    return o;
}

void dt_gan_fold_pass(gan *g, half *h, int disc, size_t gn)
{
    if (!g->exact) return; /* (the watchdog's phase stays the backward's: the fold is part of it) */
    double t0 = dt_now();
    int G = dt_comm_size(g->group), me = dt_comm_rank(g->group), X = h->X;
    size_t rows[G], at[G], send[G], sdispl[G], recv[G], rdispl[G], o = 0;
    for (int q = 0; q < G; q++) { /* the loader's blocks of the global batch */
        at[q] = gn * (size_t)q / (size_t)G;
        rows[q] = gn * (size_t)(q + 1) / (size_t)G - at[q];
    }
    const dt_grad_rec *r = disc ? &g->D[X].rec : &g->G[X].rec;
    for (int q = 0; q < G; q++) {
        size_t f = pack(g, X, disc, q, r, rows[me], g->rec_send + o);
        sdispl[q] = o * sizeof(float), send[q] = f * sizeof(float), o += f;
    }
    int ns = segments_of(g, X, disc, me, g->seg);
    size_t mine = floats_of(g->seg, ns); /* of each image, what this rank's block needs */
    for (int q = 0; q < G; q++) rdispl[q] = at[q] * mine * sizeof(float), recv[q] = rows[q] * mine * sizeof(float);
    dt_comm_alltoallv_bytes(g->group, g->rec_send, send, sdispl, g->rec_recv, recv, rdispl);
    const float *in = g->rec_recv; /* each image's parts back into its record's places */
    for (size_t i = 0; i < gn; i++)
        for (int s = 0; s < ns; s++) {
            memcpy(g->rec_all + i * r->rec_n + g->seg[2 * s], in, sizeof(float) * g->seg[2 * s + 1]);
            in += g->seg[2 * s + 1];
        }
    size_t lo = (disc ? g->D[X].p.n : g->G[X].p.n) * (size_t)me / (size_t)G;
    size_t hi = (disc ? g->D[X].p.n : g->G[X].p.n) * (size_t)(me + 1) / (size_t)G;
    if (disc)
        dt_disc_fold(&g->D[X], g->rec_all, (int)gn, lo, hi, g->fold_scratch);
    else
        dt_gen_fold(&g->G[X], g->rec_all, (int)gn, lo, hi, g->fold_scratch);
    g->msg_s += dt_now() - t0;
}
