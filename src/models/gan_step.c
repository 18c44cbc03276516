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
 *   Adam on G_X; then D_X's real term BCE(D_X(x), 1), Adam on D_X. */
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
            memcpy(recv[X], send[1 - X], sizeof(float) * IMG * n_recv[X]);
        }
        g->msg_s += dt_now() - t0;
        return;
    }
    int partner = dt_rank() ^ 1;
    dt_sendrecv_f(send[0], n_send[0] * IMG, partner, recv[0], n_recv[0] * IMG, partner, tag);
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

/* ---- losses --------------------------------------------------------------- */

/* BCE of sigmoid(z) against label t, summed; dz = (sigmoid(z) - t) * scale */
static double bce_label(float *dz, const float *z, size_t n, float t, float scale)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        float zi = z[i];
        s += fmaxf(zi, 0.0f) - zi * t + log1pf(expf(-fabsf(zi)));
        if (dz) dz[i] = scale * (1.0f / (1.0f + expf(-zi)) - t);
    }
    return s;
}

/* L1 of y against x over n elements, weighted by lambda and averaged over the
 * global batch's elements (gn images): returns lambda * sum|y - x| / IMG and
 * writes its gradient w.r.t. y into d */
double dt_gan_l1(float *d, const float *y, const float *x, size_t n, float lambda, size_t gn)
{
    float sc = lambda / (float)(gn * IMG);
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        float e = y[i] - x[i];
        s += fabsf(e);
        d[i] = e > 0 ? sc : e < 0 ? -sc : 0.0f;
    }
    return lambda * s / IMG;
}

/* ---- instance noise ------------------------------------------------------------ */

/* the deviation of a noise that falls linearly from s to 0 over the run */
float dt_gan_falling(const gan *g, float s)
{
    if (!(s > 0.0f) || g->step >= g->total_steps) return 0.0f;
    return s * (1.0f - (float)g->step / (float)g->total_steps);
}

/* What D_X sees of n images that sit at [lo, lo + n) of their global batch:
 * the images plus Gaussian noise of deviation --d-noise per pixel and a color
 * shift of deviation --color-noise per image, both falling linearly to 0 over
 * the run. role 0: real x, 1: fake x. The noise depends on the step and the
 * position in the global batch only, so every rank count draws the same.
 * Without noise, the images themselves. */
static const float *d_view(gan *g, int X, int role, float *buf, const float *img, size_t lo, size_t n)
{
    float sd = dt_gan_falling(g, g->o.d_noise), sc = dt_gan_falling(g, g->o.color_noise);
    if (sd == 0.0f && sc == 0.0f) return img;
    for (size_t i = 0; i < n; i++) {
        float *o = buf + i * IMG;
        if (sd == 0.0f) {
            memcpy(o, img + i * IMG, sizeof(float) * IMG);
            continue;
        }
        dt_rand_normal(o, IMG, (dt_stream){g->o.seed, DT_RNG_DNOISE, (uint64_t)g->step * 4 + (uint64_t)(X * 2 + role),
                                           lo + i});
        for (size_t j = 0; j < IMG; j++) o[j] = img[i * IMG + j] + sd * o[j];
    }
    if (sc > 0.0f) dt_gan_color_shift(g, X, role, buf, lo, n, sc);
    return buf;
}

/* where this rank's n of a global batch of gn start */
size_t dt_gan_batch_offset(const gan *g, size_t gn)
{
    size_t lo, hi;
    dt_comm_shard(g->group, gn, &lo, &hi);
    return lo;
}

/* one network's step, over the ranks of its domain */
static void optimizer_step(gan *g, dt_adam *a, dt_params *p)
{
    dt_step s;
    dt_step_begin(&s, g->group, a, p);
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

void dt_gan_iteration(gan *g)
{
    int H = g->nhalves;
    float *send[2] = {NULL, NULL}, *recv[2] = {NULL, NULL};
    size_t ns[2] = {0, 0}, nr[2] = {0, 0};
    exchange_counts(g);
    for (int k = 0; k < H; k++) send[k] = g->h[k].x, recv[k] = g->h[k].y, ns[k] = g->h[k].nx, nr[k] = g->h[k].ny;
    exchange(g, send, ns, recv, nr, 2);
    dt_watch("generator forward");
    for (int k = 0; k < H; k++) { /* fake_x = G_X(y) */
        half *h = &g->h[k];
        dt_gen_forward(&g->G[h->X], &h->c2, h->y, (int)h->ny);
    }
    for (int k = 0; k < H; k++)
        send[k] = g->h[k].c2.y, recv[k] = g->h[k].fake_y, ns[k] = g->h[k].ny, nr[k] = g->h[k].nx;
    exchange(g, send, ns, recv, nr, 3);
    dt_watch("generator losses and backward");
    for (int k = 0; k < H; k++) {
        half *h = &g->h[k];
        dt_gen *G = &g->G[h->X];
        dt_disc *D = &g->D[h->X];
        size_t n = h->nx * IMG;
        /* cycle: rec_x = G_X(fake_y), mean absolute error over the global batch's elements */
        dt_gen_forward(G, &h->c1, h->fake_y, (int)h->nx);
        h->loss[0] += dt_gan_l1(h->d_rec, h->c1.y, h->x, n, g->o.lambda_cyc, h->gx);
        /* D_X sees fake_x once, for two uses: its own step's fake term (fake_x
         * -> 0, weight gradients; D_X does not change before its step) and the
         * adversarial term (D_X should call fake_x real; only the input
         * gradient, which with the noise added is also the one w.r.t. fake_x) */
        const float *fake = d_view(g, h->X, 1, h->noisy_fake, h->c2.y, dt_gan_batch_offset(g, h->gy), h->ny);
        dt_disc_forward(D, &h->dc, fake, (int)h->ny);
        float dl[g->maxB];
        dt_params_zero_grad(&D->p);
        h->loss[3] += bce_label(dl, h->dc.logit, h->ny, 0.0f, 1.0f / (float)h->gy);
        dt_disc_backward(D, &h->dc, fake, dl, NULL, (int)h->ny);
        h->loss[1] += bce_label(dl, h->dc.logit, h->ny, 1.0f, dt_gan_adv_weight(g) / (float)h->gy);
        dt_disc_backward_input(D, &h->dc, fake, dl, h->d_adv, (int)h->ny);
        if (g->o.swap_neg > 0 || g->o.search > 0) dt_gan_real_colors(g, h);
        if (g->o.search > 0) dt_gan_color_search(g, h, D, h->c2.y);
        if (g->o.pair > 0 && g->pair.ok) h->loss[5] += dt_gan_color_pair(g, h, h->c2.y);
        /* the cycle's gradient w.r.t. fake_y, for the partner's generator */
        dt_gen_backward(G, &h->c1, h->d_rec, h->d_fake_y, (int)h->nx);
        if (g->o.lambda_id > 0) { /* identity: G_X should leave a real x alone */
            dt_gen_forward(G, &h->c3, h->x, (int)h->nx);
            h->loss[4] += dt_gan_l1(h->d_rec, h->c3.y, h->x, n, g->o.lambda_id, h->gx);
            dt_gen_backward(G, &h->c3, h->d_rec, NULL, (int)h->nx);
        }
    }
    for (int k = 0; k < H; k++)
        send[k] = g->h[k].d_fake_y, recv[k] = g->h[k].d_recv, ns[k] = g->h[k].nx, nr[k] = g->h[k].ny;
    exchange(g, send, ns, recv, nr, 4);
    for (int k = 0; k < H; k++) {
        half *h = &g->h[k];
        dt_gen *G = &g->G[h->X];
        dt_disc *D = &g->D[h->X];
        size_t n = h->ny * IMG;
        for (size_t i = 0; i < n; i++) h->d_fake_x[i] = h->d_adv[i] + h->d_recv[i];
        if (g->o.search > 0)
            for (size_t i = 0; i < n; i++) h->d_fake_x[i] += h->d_search[i];
        if (g->o.pair > 0 && g->pair.ok)
            for (size_t i = 0; i < n; i++) h->d_fake_x[i] += h->d_pair[i];
        dt_gen_backward(G, &h->c2, h->d_fake_x, NULL, (int)h->ny);
        dt_watch("generator optimizer step");
        if (g->step >= g->o.g_delay)
            optimizer_step(g, &g->aG[h->X], &G->p);
        else /* --g-delay: the discriminators learn first */
            dt_params_zero_grad(&G->p);
        ema_update(&g->E[h->X], G, g->o.ema);
        dt_watch("discriminator forward/backward");
        /* the discriminator: real x -> 1; its fake term (fake_x -> 0, no
         * gradient to G) was added in the generator step */
        float dl[g->maxB];
        const float *real = d_view(g, h->X, 0, h->noisy_x, h->x, dt_gan_batch_offset(g, h->gx), h->nx);
        dt_disc_forward(D, &h->dc, real, (int)h->nx);
        h->loss[2] += bce_label(dl, h->dc.logit, h->nx, 1.0f, 1.0f / (float)h->gx);
        dt_disc_backward(D, &h->dc, real, dl, NULL, (int)h->nx);
        if (g->o.swap_neg > 0) { /* real shapes in the wrong real colors -> 0 */
            float w[g->maxB];
            dt_gan_swapped_negatives(g, h, w);
            float sc = dt_gan_falling(g, g->o.color_noise);
            if (sc > 0.0f) dt_gan_color_shift(g, h->X, 2, h->swapped, dt_gan_batch_offset(g, h->gx), h->nx, sc);
            dt_disc_forward(D, &h->dc, h->swapped, (int)h->nx);
            h->loss[3] += bce_label(dl, h->dc.logit, h->nx, 0.0f, g->o.swap_neg / (float)h->gx);
            for (size_t i = 0; i < h->nx; i++) dl[i] *= w[i];
            dt_disc_backward(D, &h->dc, h->swapped, dl, NULL, (int)h->nx);
        }
        dt_watch("discriminator optimizer step");
        optimizer_step(g, &g->aD[h->X], &D->p);
    }
}
