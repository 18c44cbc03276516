/* gan_step: one CycleGAN iteration, with domain A and domain B on separate
 * ranks.
 *
 * A "half" X (A or B) owns the generator into X (G_X: Y -> X), the
 * discriminator D_X and the real X images. With 2k ranks, even ranks hold
 * half A and odd ranks half B; ranks 2i and 2i+1 are partners, and each
 * domain's k ranks are data parallel among themselves. One rank alone holds
 * both halves and passes between them what partners send each other.
 *
 * One iteration, on every half X with partner half Y:
 *   exchange 1: send the real x, receive the real y
 *   fake_x = G_X(y)                                    (context 2)
 *   exchange 2: send fake_x, receive fake_y = G_Y(x)
 *   rec_x = G_X(fake_y)                                (context 1)
 *   D_X(fake_x) once: D_X's fake term BCE(., 0) into its weight gradients
 *   (D_X is unchanged until its step), and L_G's adversarial term
 *   L_G = lambda_cyc * mean|rec_x - x| + BCE(D_X(fake_x), 1) [+ --color-pair]
 *   backward of the cycle term through context 1 -> d fake_y
 *   exchange 3: send d fake_y, receive d fake_x (partner's cycle term)
 *   backward of d fake_x (adversarial + cycle) through context 2
 *   Adam on G_X; then D_X's real term BCE(D_X(x), 1), Adam on D_X.
 * With several ranks per domain, each backward pass's gradient terms are
 * recorded image by image and folded in the batch's order (gan_exact.c), and
 * the losses summed exactly: the same bits on any rank count. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtrain/ckpt.h"
#include "dtrain/cli.h"
#include "dtrain/core.h"
#include "dtrain/data.h"
#include "dtrain/comm.h"
#include "dtrain/gan.h"
#include "dtrain/gan_metrics.h"
#include "dtrain/gan_pairing.h"
#include "dtrain/guard.h"
#include "dtrain/plot.h"
#include "dtrain/report.h"
#include "dtrain/runctl.h"
#include "dtrain/step.h"
#include "gan_train.h"

/* ---- exchanges between partner halves -------------------------------------- */

/* send[X] (n_send[X] images) goes to the partner of X, recv[X] receives
 * n_recv[X] images from it. One rank: a copy between its two halves. */
static void exchange(gan *g, float *const *send, const size_t *n_send, float *const *recv, const size_t *n_recv, int tag)
{
    dt_watch("partner exchange");
    double t0 = dt_now();
    if (g->nhalves == 2) {
        for (int X = 0; X < 2; X++) {
            DT_ASSERT(n_recv[X] == n_send[1 - X]);
            memcpy(recv[X], send[1 - X], sizeof(float) * DT_IMG * n_recv[X]);
        }
        g->msg_s += dt_now() - t0;
        return;
    }
    int partner = dt_rank() ^ 1;
    dt_sendrecv_f(send[0], n_send[0] * DT_IMG, partner, recv[0], n_recv[0] * DT_IMG, partner, tag);
    g->msg_s += dt_now() - t0;
}

/* the partner's local and global batch counts */
static void exchange_counts(gan *g)
{
    dt_watch("partner exchange");
    if (g->nhalves == 2) {
        for (int X = 0; X < 2; X++) g->h[X].ny = g->h[1 - X].nx, g->h[X].gy = g->h[1 - X].gx;
        return;
    }
    float mine[2] = {(float)g->h[0].nx, (float)g->h[0].gx}, theirs[2];
    int partner = dt_rank() ^ 1;
    dt_sendrecv_f(mine, 2, partner, theirs, 2, partner, 1);
    g->h[0].ny = (size_t)theirs[0];
    g->h[0].gy = (size_t)theirs[1];
}

/* ---- losses ---------------------------------------------------------------- */

/* L1 of y against x over n images, weighted by lambda and averaged over the
 * global batch's elements (gn images): returns lambda * sum|y - x| / DT_IMG,
 * adds each image's term to s (NULL: not) and writes the gradient w.r.t. y
 * into d */
double dt_gan_l1(dt_xsum *s, float *d, const float *y, const float *x, size_t n, float lambda, size_t gn)
{
    double total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t o = i * DT_IMG;
        double v = lambda * dt_l1(d + o, y + o, x + o, DT_IMG, lambda / (float)(gn * DT_IMG)) / DT_IMG;
        if (s) dt_xsum_add(s, v);
        total += v;
    }
    return total;
}

/* BCE of n logits against one label (dt_bce_label), each image's term added to s */
void dt_gan_bce(dt_xsum *s, float *d, const float *logit, size_t n, float label, float scale)
{
    for (size_t i = 0; i < n; i++) dt_xsum_add(s, dt_bce_label(d + i, logit + i, 1, label, scale));
}

/* ---- instance noise ------------------------------------------------------------ */

/* the deviation of a noise that falls linearly from s to 0 over the run */
float dt_gan_falling(const gan *g, float s)
{
    if (!(s > 0.0f) || g->step >= g->total_steps) return 0.0f;
    return s * (1.0f - (float)g->step / (float)g->total_steps);
}

/* where this rank's n of a global batch of gn start */
size_t dt_gan_batch_offset(const gan *g, size_t gn)
{
    size_t lo, hi;
    dt_comm_shard(g->group, gn, &lo, &hi);
    return lo;
}

/* one network's step, over the ranks of its domain */
static void optimizer_step(dt_optim *o)
{
    dt_step s;
    dt_step_begin(&s, o);
    dt_step_end(&s);
}

/* E = d E + (1 - d) w after each step of G: what the run evaluates, draws and
 * keeps is this average, so a step that knocks one class out of its color for
 * a few dozen iterations does not show in an epoch's figures */
static void ema_update(dt_gen *E, const dt_gen *G, float d)
{
    for (size_t i = 0; i < G->p.n; i++) E->p.w[i] = d * E->p.w[i] + (1.0f - d) * G->p.w[i];
}

/* ---- one iteration ----------------------------------------------------------- */

/* the two halves' buffers of one exchange (the second unused with one half per rank) */
#define BOTH(f) {g->h[0].f, g->h[g->nhalves - 1].f}

/* SPEC's generator losses of half X, with the recipe's terms: the cycle
 * rec_x = G_X(fake_y), D_X's fake term and the adversarial term on fake_x,
 * the color search and pull, the cycle's gradient w.r.t. fake_y for the
 * partner, the identity term */
static void generator_losses(gan *g, half *h)
{
    dt_gen *G = &g->G[h->X];
    dt_disc *D = &g->D[h->X];
    /* cycle: rec_x = G_X(fake_y), mean absolute error over the global batch's elements */
    dt_gen_forward(G, &h->c1, h->fake_y, (int)h->nx);
    dt_gan_l1(&h->step[0], h->d_rec, h->c1.y, h->x, h->nx, g->o.lambda_cyc, h->gx);
    /* D_X sees fake_x once, for two uses: its own step's fake term (fake_x
     * -> 0, weight gradients; D_X does not change before its step) and the
     * adversarial term (D_X should call fake_x real; only the input
     * gradient, which with the noise added is also the one w.r.t. fake_x) */
    const float *fake = dt_gan_d_view(g, h->X, 1, h->noisy_fake, h->c2.y, dt_gan_batch_offset(g, h->gy), h->ny);
    dt_disc_forward(D, &h->dc, fake, (int)h->ny);
    float dl[g->maxB];
    dt_params_zero_grad(&D->p);
    dt_gan_bce(&h->step[3], dl, h->dc.logit, h->ny, 0.0f, 1.0f / (float)h->gy);
    dt_disc_backward(D, &h->dc, fake, dl, NULL, (int)h->ny);
    dt_gan_fold_pass(g, h, 1, h->gy);
    dt_gan_bce(&h->step[1], dl, h->dc.logit, h->ny, 1.0f, dt_gan_adv_weight(g) / (float)h->gy);
    dt_disc_backward_input(D, &h->dc, fake, dl, h->d_adv, (int)h->ny);
    if (g->o.swap_neg > 0 || g->o.search > 0) dt_gan_real_colors(g, h);
    if (g->o.search > 0) dt_gan_color_search(g, h);
    if (g->o.pair > 0 && g->pair.ok) dt_gan_color_pair(g, h);
    /* the cycle's gradient w.r.t. fake_y, for the partner's generator */
    dt_gen_backward(G, &h->c1, h->d_rec, h->d_fake_y, (int)h->nx);
    dt_gan_fold_pass(g, h, 0, h->gx);
    if (g->o.lambda_id > 0) dt_gan_identity(g, h);
}

/* G_X's step: the gradient w.r.t. fake_x (adversarial + the partner's cycle
 * term + the recipe's pulls) back through G_X, Adam, the average */
static void generator_step(gan *g, half *h)
{
    dt_gen *G = &g->G[h->X];
    size_t n = h->ny * DT_IMG;
    for (size_t i = 0; i < n; i++) h->d_fake_x[i] = h->d_adv[i] + h->d_recv[i];
    if (g->o.search > 0)
        for (size_t i = 0; i < n; i++) h->d_fake_x[i] += h->d_search[i];
    if (g->o.pair > 0 && g->pair.ok)
        for (size_t i = 0; i < n; i++) h->d_fake_x[i] += h->d_pair[i];
    dt_gen_backward(G, &h->c2, h->d_fake_x, NULL, (int)h->ny);
    dt_gan_fold_pass(g, h, 0, h->gy);
    dt_watch("generator optimizer step");
    if (g->step >= g->o.g_delay)
        optimizer_step(&g->oG[h->X]);
    else /* --g-delay: the discriminators learn first */
        dt_params_zero_grad(&G->p);
    ema_update(&g->E[h->X], G, g->o.ema);
}

/* D_X's step: real x -> 1 (its fake term, fake_x -> 0, was added with the
 * generator's losses), the swapped negatives, Adam */
static void discriminator_step(gan *g, half *h)
{
    dt_disc *D = &g->D[h->X];
    dt_watch("discriminator forward/backward");
    float dl[g->maxB];
    const float *real = dt_gan_d_view(g, h->X, 0, h->noisy_x, h->x, dt_gan_batch_offset(g, h->gx), h->nx);
    dt_disc_forward(D, &h->dc, real, (int)h->nx);
    dt_gan_bce(&h->step[2], dl, h->dc.logit, h->nx, 1.0f, 1.0f / (float)h->gx);
    dt_disc_backward(D, &h->dc, real, dl, NULL, (int)h->nx);
    dt_gan_fold_pass(g, h, 1, h->gx);
    if (g->o.swap_neg > 0) dt_gan_swapped_negatives(g, h);
    dt_watch("discriminator optimizer step");
    optimizer_step(&g->oD[h->X]);
}

/* One iteration, SPEC's schedule: see the top of this file. */
void dt_gan_iteration(gan *g)
{
    int H = g->nhalves;
    exchange_counts(g);
    /* exchange 1: send the real x, receive the real y */
    exchange(g, (float *[])BOTH(x), (size_t[])BOTH(nx), (float *[])BOTH(y), (size_t[])BOTH(ny), 2);
    dt_watch("generator forward");
    for (int k = 0; k < H; k++) dt_gen_forward(&g->G[g->h[k].X], &g->h[k].c2, g->h[k].y, (int)g->h[k].ny);
    /* exchange 2: send fake_x = G_X(y), receive fake_y = G_Y(x) */
    exchange(g, (float *[])BOTH(c2.y), (size_t[])BOTH(ny), (float *[])BOTH(fake_y), (size_t[])BOTH(nx), 3);
    dt_watch("generator losses and backward");
    for (int k = 0; k < H; k++) generator_losses(g, &g->h[k]);
    /* exchange 3: send d fake_y, receive d fake_x (the partner's cycle term) */
    exchange(g, (float *[])BOTH(d_fake_y), (size_t[])BOTH(nx), (float *[])BOTH(d_recv), (size_t[])BOTH(ny), 4);
    for (int k = 0; k < H; k++) {
        generator_step(g, &g->h[k]);
        discriminator_step(g, &g->h[k]);
    }
    for (int k = 0; k < H; k++) { /* the step's losses over the domain's ranks, exactly */
        half *h = &g->h[k];
        dt_comm_xsum(g->group, h->step, 6);
        for (int t = 0; t < 6; t++) h->loss[t] += dt_xsum_value(&h->step[t]);
        memset(h->step, 0, sizeof h->step);
    }
}
