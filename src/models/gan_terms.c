/* gan_terms: the CycleGAN recipe's extra terms beside SPEC's losses: instance
 * and color noise on what the discriminators see, color-swapped negatives,
 * the color search, the label-free color pairing's pull, the adversarial ramp. */
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

/* --color-noise: each image's foreground repainted by a random color shift,
 * img += m * delta with m a pixel's intensity (its largest channel) and delta
 * three Gaussians of deviation sd per image, so D_X judges shape against a
 * blurred color and its verdict varies smoothly with the color the generator
 * paints. In place; the same draws for every rank count (position lo + i). */
void dt_gan_color_shift(const gan *g, int X, int role, float *img, size_t lo, size_t n, float sd)
{
    for (size_t i = 0; i < n; i++) {
        float d[3], *x = img + i * DT_IMG;
        dt_rand_normal(d, 3, (dt_stream){g->o.seed, DT_RNG_CNOISE, (uint64_t)g->step * 6 + (uint64_t)(X * 3 + role),
                                         lo + i});
        for (size_t q = 0; q < DT_PLANE; q++) {
            float m = dt_pixel_intensity(x, q);
            for (int k = 0; k < 3; k++) x[q + (size_t)k * DT_PLANE] += m * sd * d[k];
        }
    }
}

/* What D_X sees of n images that sit at [lo, lo + n) of their global batch:
 * the images plus Gaussian noise of deviation --d-noise per pixel and a color
 * shift of deviation --color-noise per image, both falling linearly to 0 over
 * the run. role 0: real x, 1: fake x. The noise depends on the step and the
 * position in the global batch only, so every rank count draws the same.
 * Without noise, the images themselves. */
const float *dt_gan_d_view(gan *g, int X, int role, float *buf, const float *img, size_t lo, size_t n)
{
    float sd = dt_gan_falling(g, g->o.d_noise), sc = dt_gan_falling(g, g->o.color_noise);
    if (sd == 0.0f && sc == 0.0f) return img;
    for (size_t i = 0; i < n; i++) {
        float *o = buf + i * DT_IMG;
        if (sd == 0.0f) {
            memcpy(o, img + i * DT_IMG, sizeof(float) * DT_IMG);
            continue;
        }
        dt_rand_normal(o, DT_IMG, (dt_stream){g->o.seed, DT_RNG_DNOISE, (uint64_t)g->step * 4 + (uint64_t)(X * 2 + role),
                                           lo + i});
        for (size_t j = 0; j < DT_IMG; j++) o[j] = img[i * DT_IMG + j] + sd * o[j];
    }
    if (sc > 0.0f) dt_gan_color_shift(g, X, role, buf, lo, n, sc);
    return buf;
}

/* ---- color-swapped negatives (--swap-neg) ------------------------------------------ */

/* h->colors: the color of every real x of the global batch (dt_image_color;
 * collective over the domain's ranks) */
void dt_gan_real_colors(gan *g, half *h)
{
    size_t lo = dt_gan_batch_offset(g, h->gx);
    memset(h->colors, 0, sizeof(double) * 3 * h->gx);
    for (size_t i = 0; i < h->nx; i++) dt_image_color(h->colors + 3 * (lo + i), h->x + i * DT_IMG);
    dt_comm_allreduce_sum_d(g->group, h->colors, 3 * h->gx); /* each slot has one writer */
}

/* out (n images) = the intensity (largest channel) of each pixel of src times c */
void dt_gan_paint(float *out, const float *src, size_t n, const double c[3])
{
    for (size_t i = 0; i < n; i++) {
        const float *x = src + i * DT_IMG;
        float *y = out + i * DT_IMG;
        for (size_t q = 0; q < DT_PLANE; q++) {
            float m = dt_pixel_intensity(x, q);
            for (int k = 0; k < 3; k++) y[q + (size_t)k * DT_PLANE] = m * (float)c[k];
        }
    }
}

/* Negatives for D_X without labels: each real x (global position p) repainted,
 * pixel intensity kept, with the color of the real image at p + 1 of the same
 * global batch, so their shapes and colors are real but their pairing is not.
 * Pairs whose colors already agree get weight 0. Writes h->swapped and w;
 * h->colors must be current. */
static void swapped_paint(gan *g, half *h, float *w)
{
    size_t gx = h->gx, lo = dt_gan_batch_offset(g, gx);
    for (size_t i = 0; i < h->nx; i++) {
        const double *mine = h->colors + 3 * (lo + i), *other = h->colors + 3 * ((lo + i + 1) % gx);
        double d = 0;
        for (int k = 0; k < 3; k++) d += (mine[k] - other[k]) * (mine[k] - other[k]);
        w[i] = d > 0.01 ? 1.0f : 0.0f;
        dt_gan_paint(h->swapped + i * DT_IMG, h->x + i * DT_IMG, 1, other);
    }
}

/* --swap-neg W: D_X trained to call the swapped negatives fake (BCE against
 * 0, weight W), pairs whose colors already agree left out; with
 * --color-noise they get their own color shift */
void dt_gan_swapped_negatives(gan *g, half *h)
{
    dt_disc *D = &g->D[h->X];
    float w[g->maxB], dl[g->maxB];
    swapped_paint(g, h, w);
    float sc = dt_gan_falling(g, g->o.color_noise);
    if (sc > 0.0f) dt_gan_color_shift(g, h->X, 2, h->swapped, dt_gan_batch_offset(g, h->gx), h->nx, sc);
    dt_disc_forward(D, &h->dc, h->swapped, (int)h->nx);
    dt_gan_bce(&h->step[3], dl, h->dc.logit, h->nx, 0.0f, g->o.swap_neg / (float)h->gx);
    for (size_t i = 0; i < h->nx; i++) dl[i] *= w[i];
    dt_disc_backward(D, &h->dc, h->swapped, dl, NULL, (int)h->nx);
    dt_gan_fold_pass(g, h, 1, h->gx);
}

/* --color-search W: the discriminator's choice among the real colors. Each
 * fake_x's source shape (the intensity of y) is painted in every distinct
 * color of this step's real x images and shown to D_X; the fake is pulled
 * (L1, weight W, as the cycle term) toward the painting D_X finds most real.
 * The adversarial gradient only says which way is more real nearby; this
 * jumps between the colors real images have, so a digit class painted in a
 * wrong color that D_X rejects is not stuck next to it. No labels: the
 * candidates are the colors of real images, the choice is D_X's. Writes
 * h->d_search. */
void dt_gan_color_search(gan *g, half *h)
{
    dt_disc *D = &g->D[h->X];
    const float *fake = h->c2.y;
    enum { MAXC = 32 };
    double cand[MAXC][3];
    int K = 0;
    for (size_t i = 0; i < h->gx && K < MAXC; i++) { /* distinct colors, in batch order */
        const double *c = h->colors + 3 * i;
        int dup = c[0] + c[1] + c[2] == 0.0; /* no foreground */
        for (int k = 0; k < K && !dup; k++) {
            double d = 0;
            for (int j = 0; j < 3; j++) d += (c[j] - cand[k][j]) * (c[j] - cand[k][j]);
            dup = d < 0.01;
        }
        if (!dup) memcpy(cand[K++], c, sizeof cand[0]);
    }
    size_t n = h->ny;
    float best[g->maxB];
    int pick[g->maxB];
    for (int k = 0; k < K; k++) {
        dt_gan_paint(h->cand, h->y, n, cand[k]);
        dt_disc_forward(D, &h->dc, h->cand, (int)n);
        for (size_t i = 0; i < n; i++)
            if (k == 0 || h->dc.logit[i] > best[i]) best[i] = h->dc.logit[i], pick[i] = k;
    }
    if (K == 0) {
        memset(h->d_search, 0, sizeof(float) * n * DT_IMG);
        return;
    }
    for (size_t i = 0; i < n; i++) dt_gan_paint(h->cand + i * DT_IMG, h->y + i * DT_IMG, 1, cand[pick[i]]);
    dt_gan_l1(NULL, h->d_search, fake, h->cand, n, g->o.search, h->gy);
}

/* --color-pair W: each fake_x = G_X(y) pulled (mean squared error over the
 * global batch's elements, weight W) toward y's shape painted in the color of
 * X that the pairing gives y's color. Squared, not absolute: the classes still
 * in a wrong color then outweigh the many pixels already close to their
 * target, whose L1 signs would be as loud. A fake whose mean color is not
 * yet nearest its target color (dt_pairing_nearest_rgb) gets 1 + --color-pair-focus
 * times the pull (per image, so no rank needs another's images), which pulls
 * a class that sits in a wrong color, or that the adversarial term knocked out
 * of its own, back sooner, and finishes the translations still too pale.
 * Images whose color is none of Y's get no pull. Writes h->d_pair; adds the
 * pull's loss to h->step[5]. */
void dt_gan_color_pair(gan *g, half *h)
{
    const float *fake = h->c2.y;
    int Y = 1 - h->X;
    float sc = 2.0f * g->o.pair / (float)(h->gy * DT_IMG);
    for (size_t i = 0; i < h->ny; i++) {
        const float *y = h->y + i * DT_IMG, *f = fake + i * DT_IMG;
        float *d = h->d_pair + i * DT_IMG, *t = h->cand + i * DT_IMG;
        double c[3];
        int k = dt_image_color(c, y) ? dt_pairing_nearest(&g->pair, Y, c) : -1;
        if (k < 0) {
            memset(d, 0, sizeof(float) * DT_IMG);
            continue;
        }
        int want = g->pair.to[Y][k];
        const float *to = g->pair.color[h->X][want];
        dt_gan_paint(t, y, 1, (const double[3]){to[0], to[1], to[2]});
        float w = dt_pairing_nearest_rgb(&g->pair, h->X, f) == want ? 1.0f : 1.0f + g->o.pair_focus;
        double e2 = 0;
        for (size_t j = 0; j < DT_IMG; j++) {
            float e = f[j] - t[j];
            e2 += (double)e * e;
            d[j] = w * sc * e;
        }
        dt_xsum_add(&h->step[5], w * g->o.pair * e2 / DT_IMG);
    }
}

/* The adversarial term's weight in the generators' loss: with --adv-ramp E,
 * rising linearly from 0 at the first step to 1 after E epochs (the
 * discriminators learn from the start); 1 otherwise. */
float dt_gan_adv_weight(const gan *g)
{
    double ramp = (double)g->o.adv_ramp * (double)g->o.epoch_steps;
    if (!(ramp > 0) || (double)g->step >= ramp) return 1.0f;
    return (float)((double)g->step / ramp);
}

/* --lambda-id X: G_X should leave a real x alone (L1, weight X); into G_X's
 * weight gradients, the loss into h->step[4] */
void dt_gan_identity(gan *g, half *h)
{
    dt_gen *G = &g->G[h->X];
    dt_gen_forward(G, &h->c3, h->x, (int)h->nx);
    dt_gan_l1(&h->step[4], h->d_rec, h->c3.y, h->x, h->nx, g->o.lambda_id, h->gx);
    dt_gen_backward(G, &h->c3, h->d_rec, NULL, (int)h->nx);
    dt_gan_fold_pass(g, h, 0, h->gx);
}
