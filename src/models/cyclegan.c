/* `dtrain cyclegan`: the color-translation CycleGAN with domain A and domain B
 * on separate ranks.
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
#include "dtrain/vae_run.h"

#define IMG 2352

typedef struct {
    const char *data, *out, *gen_out;
    dt_run_opts run; /* --resume, --stop-signal, --step-timeout */
    int epochs, threads, lr_decay_from;
    size_t batch;
    float lr, lr_d, beta1, lambda_cyc, lambda_id, d_noise, color_noise, swap_neg, search;
    float pair, pair_focus, adv_ramp, g_gain, ema;
    uint64_t seed;
    long checkpoint_every, max_steps, g_delay;
    dt_settings settings; /* every option's value, for the checkpoints */
    char data_sha256[65]; /* of the data file */
    int64_t epoch_steps;  /* steps in one epoch */
} gan_opts;

typedef struct {
    int X;                 /* 0: A, 1: B */
    dt_loader *ld;
    dt_gen_ctx c1, c2, c3; /* rec_x = G_X(fake_y); fake_x = G_X(y); id_x = G_X(x) (identity loss) */
    dt_disc_ctx dc;
    float *x, *y, *fake_y, *d_fake_y, *d_fake_x, *d_adv, *d_rec, *d_recv;
    float *noisy_x, *noisy_fake; /* what D_X sees with instance noise (--d-noise) */
    float *swapped;              /* real x painted with another real x's color (--swap-neg) */
    float *cand, *d_search;      /* --color-search: a repainted fake_x, and its pull's gradient */
    float *d_pair;               /* --color-pair: the pull's gradient w.r.t. fake_x */
    double *colors;              /* (gx, 3): the color of each real x of the global batch */
    size_t nx, ny, gx, gy; /* local and global counts of x and y */
    double loss[6];        /* cycle, adversarial (G), D real, D fake, identity, pair pull: sums per image */
} half;

typedef struct {
    gan_opts o;
    int P, nhalves;
    dt_comm *group;        /* the ranks of this rank's domain (NULL with one rank) */
    dt_gen G[2];           /* G[X] makes X images; every rank has all four networks */
    dt_gen E[2];           /* the moving average of G[X]'s weights (--gen-ema): what is evaluated and saved */
    dt_disc D[2];
    dt_adam aG[2], aD[2];
    half h[2];
    int maxB;
    uint8_t mapping[2][10]; /* palette index of digit d in domain A, B (to score only) */
    dt_pairing pair;        /* the colors of A and B and which goes with which, from the images */
    double msg_s;           /* time spent in the partner exchanges */
    int64_t step, total_steps;
} gan;

static const char *const DOMAIN[2] = {"A", "B"};

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
static double l1_loss(float *d, const float *y, const float *x, size_t n, float lambda, size_t gn)
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

/* the intensity of pixel q of an image (3,28,28): its largest channel */
static float pixel_intensity(const float *x, size_t q)
{
    return fmaxf(x[q], fmaxf(x[q + IMG / 3], x[q + 2 * IMG / 3]));
}

/* the deviation of a noise that falls linearly from s to 0 over the run */
static float falling(const gan *g, float s)
{
    if (!(s > 0.0f) || g->step >= g->total_steps) return 0.0f;
    return s * (1.0f - (float)g->step / (float)g->total_steps);
}

/* --color-noise: each image's foreground repainted by a random color shift,
 * img += m * delta with m a pixel's intensity (its largest channel) and delta
 * three Gaussians of deviation sd per image, so D_X judges shape against a
 * blurred color and its verdict varies smoothly with the color the generator
 * paints. In place; the same draws for every rank count (position lo + i). */
static void color_shift(const gan *g, int X, int role, float *img, size_t lo, size_t n, float sd)
{
    for (size_t i = 0; i < n; i++) {
        float d[3], *x = img + i * IMG;
        dt_rand_normal(d, 3, (dt_stream){g->o.seed, DT_RNG_CNOISE, (uint64_t)g->step * 6 + (uint64_t)(X * 3 + role),
                                         lo + i});
        for (size_t q = 0; q < IMG / 3; q++) {
            float m = pixel_intensity(x, q);
            for (int k = 0; k < 3; k++) x[q + (size_t)k * IMG / 3] += m * sd * d[k];
        }
    }
}

/* What D_X sees of n images that sit at [lo, lo + n) of their global batch:
 * the images plus Gaussian noise of deviation --d-noise per pixel and a color
 * shift of deviation --color-noise per image, both falling linearly to 0 over
 * the run. role 0: real x, 1: fake x. The noise depends on the step and the
 * position in the global batch only, so every rank count draws the same.
 * Without noise, the images themselves. */
static const float *d_view(gan *g, int X, int role, float *buf, const float *img, size_t lo, size_t n)
{
    float sd = falling(g, g->o.d_noise), sc = falling(g, g->o.color_noise);
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
    if (sc > 0.0f) color_shift(g, X, role, buf, lo, n, sc);
    return buf;
}

/* where this rank's n of a global batch of gn start */
static size_t batch_offset(const gan *g, size_t gn)
{
    size_t lo, hi;
    dt_comm_shard(g->group, gn, &lo, &hi);
    return lo;
}

/* ---- color-swapped negatives (--swap-neg) ------------------------------------------ */

/* h->colors: the color of every real x of the global batch (dt_image_color;
 * collective over the domain's ranks) */
static void real_colors(gan *g, half *h)
{
    size_t lo = batch_offset(g, h->gx);
    memset(h->colors, 0, sizeof(double) * 3 * h->gx);
    for (size_t i = 0; i < h->nx; i++) dt_image_color(h->colors + 3 * (lo + i), h->x + i * IMG);
    dt_comm_allreduce_sum_d(g->group, h->colors, 3 * h->gx); /* each slot has one writer */
}

/* out (n images) = the intensity (largest channel) of each pixel of src times c */
static void paint(float *out, const float *src, size_t n, const double c[3])
{
    for (size_t i = 0; i < n; i++) {
        const float *x = src + i * IMG;
        float *y = out + i * IMG;
        for (size_t q = 0; q < IMG / 3; q++) {
            float m = pixel_intensity(x, q);
            for (int k = 0; k < 3; k++) y[q + (size_t)k * IMG / 3] = m * (float)c[k];
        }
    }
}

/* Negatives for D_X without labels: each real x (global position p) repainted,
 * pixel intensity kept, with the color of the real image at p + 1 of the same
 * global batch, so their shapes and colors are real but their pairing is not.
 * Pairs whose colors already agree get weight 0. Writes h->swapped and w;
 * h->colors must be current. */
static void swapped_negatives(gan *g, half *h, float *w)
{
    size_t gx = h->gx, lo = batch_offset(g, gx);
    for (size_t i = 0; i < h->nx; i++) {
        const double *mine = h->colors + 3 * (lo + i), *other = h->colors + 3 * ((lo + i + 1) % gx);
        double d = 0;
        for (int k = 0; k < 3; k++) d += (mine[k] - other[k]) * (mine[k] - other[k]);
        w[i] = d > 0.01 ? 1.0f : 0.0f;
        paint(h->swapped + i * IMG, h->x + i * IMG, 1, other);
    }
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
static void color_search(gan *g, half *h, dt_disc *D, const float *fake)
{
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
        paint(h->cand, h->y, n, cand[k]);
        dt_disc_forward(D, &h->dc, h->cand, (int)n);
        for (size_t i = 0; i < n; i++)
            if (k == 0 || h->dc.logit[i] > best[i]) best[i] = h->dc.logit[i], pick[i] = k;
    }
    if (K == 0) {
        memset(h->d_search, 0, sizeof(float) * n * IMG);
        return;
    }
    for (size_t i = 0; i < n; i++) paint(h->cand + i * IMG, h->y + i * IMG, 1, cand[pick[i]]);
    l1_loss(h->d_search, fake, h->cand, n * IMG, g->o.search, h->gy);
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
 * Images whose color is none of Y's get no pull. Writes h->d_pair; returns
 * the pull's loss. */
static double color_pair(gan *g, half *h, const float *fake)
{
    int Y = 1 - h->X;
    float sc = 2.0f * g->o.pair / (float)(h->gy * IMG);
    double s = 0;
    for (size_t i = 0; i < h->ny; i++) {
        const float *y = h->y + i * IMG, *f = fake + i * IMG;
        float *d = h->d_pair + i * IMG, *t = h->cand + i * IMG;
        double c[3];
        int k = dt_image_color(c, y) ? dt_pairing_nearest(&g->pair, Y, c) : -1;
        if (k < 0) {
            memset(d, 0, sizeof(float) * IMG);
            continue;
        }
        int want = g->pair.to[Y][k];
        const float *to = g->pair.color[h->X][want];
        paint(t, y, 1, (const double[3]){to[0], to[1], to[2]});
        float w = dt_pairing_nearest_rgb(&g->pair, h->X, f) == want ? 1.0f : 1.0f + g->o.pair_focus;
        double e2 = 0;
        for (size_t j = 0; j < IMG; j++) {
            float e = f[j] - t[j];
            e2 += (double)e * e;
            d[j] = w * sc * e;
        }
        s += w * g->o.pair * e2 / IMG;
    }
    return s;
}

/* The adversarial term's weight in the generators' loss: with --adv-ramp E,
 * rising linearly from 0 at the first step to 1 after E epochs (the
 * discriminators learn from the start); 1 otherwise. */
static float adv_weight(const gan *g)
{
    double ramp = (double)g->o.adv_ramp * (double)g->o.epoch_steps;
    if (!(ramp > 0) || (double)g->step >= ramp) return 1.0f;
    return (float)((double)g->step / ramp);
}

/* E = d E + (1 - d) w after each step of G: what the run evaluates, draws and
 * keeps is this average, so a step that knocks one class out of its color for
 * a few dozen iterations does not show in an epoch's figures */
/* one network's step, over the ranks of its domain */
static void optimizer_step(gan *g, dt_adam *a, dt_params *p)
{
    dt_step s;
    dt_step_begin(&s, g->group, a, p);
    dt_step_end(&s);
}

static void ema_update(dt_gen *E, const dt_gen *G, float d)
{
    for (size_t i = 0; i < G->p.n; i++) E->p.w[i] = d * E->p.w[i] + (1.0f - d) * G->p.w[i];
}

/* ---- one iteration ----------------------------------------------------------- */

static void iteration(gan *g)
{
    int H = g->nhalves;
    float *send[2], *recv[2];
    size_t ns[2], nr[2];
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
        h->loss[0] += l1_loss(h->d_rec, h->c1.y, h->x, n, g->o.lambda_cyc, h->gx);
        /* D_X sees fake_x once, for two uses: its own step's fake term (fake_x
         * -> 0, weight gradients; D_X does not change before its step) and the
         * adversarial term (D_X should call fake_x real; only the input
         * gradient, which with the noise added is also the one w.r.t. fake_x) */
        const float *fake = d_view(g, h->X, 1, h->noisy_fake, h->c2.y, batch_offset(g, h->gy), h->ny);
        dt_disc_forward(D, &h->dc, fake, (int)h->ny);
        float dl[g->maxB];
        dt_params_zero_grad(&D->p);
        h->loss[3] += bce_label(dl, h->dc.logit, h->ny, 0.0f, 1.0f / (float)h->gy);
        dt_disc_backward(D, &h->dc, fake, dl, NULL, (int)h->ny);
        h->loss[1] += bce_label(dl, h->dc.logit, h->ny, 1.0f, adv_weight(g) / (float)h->gy);
        dt_disc_backward_input(D, &h->dc, fake, dl, h->d_adv, (int)h->ny);
        if (g->o.swap_neg > 0 || g->o.search > 0) real_colors(g, h);
        if (g->o.search > 0) color_search(g, h, D, h->c2.y);
        if (g->o.pair > 0 && g->pair.ok) h->loss[5] += color_pair(g, h, h->c2.y);
        /* the cycle's gradient w.r.t. fake_y, for the partner's generator */
        dt_gen_backward(G, &h->c1, h->d_rec, h->d_fake_y, (int)h->nx);
        if (g->o.lambda_id > 0) { /* identity: G_X should leave a real x alone */
            dt_gen_forward(G, &h->c3, h->x, (int)h->nx);
            h->loss[4] += l1_loss(h->d_rec, h->c3.y, h->x, n, g->o.lambda_id, h->gx);
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
        const float *real = d_view(g, h->X, 0, h->noisy_x, h->x, batch_offset(g, h->gx), h->nx);
        dt_disc_forward(D, &h->dc, real, (int)h->nx);
        h->loss[2] += bce_label(dl, h->dc.logit, h->nx, 1.0f, 1.0f / (float)h->gx);
        dt_disc_backward(D, &h->dc, real, dl, NULL, (int)h->nx);
        if (g->o.swap_neg > 0) { /* real shapes in the wrong real colors -> 0 */
            float w[g->maxB];
            swapped_negatives(g, h, w);
            float sc = falling(g, g->o.color_noise);
            if (sc > 0.0f) color_shift(g, h->X, 2, h->swapped, batch_offset(g, h->gx), h->nx, sc);
            dt_disc_forward(D, &h->dc, h->swapped, (int)h->nx);
            h->loss[3] += bce_label(dl, h->dc.logit, h->nx, 0.0f, g->o.swap_neg / (float)h->gx);
            for (size_t i = 0; i < h->nx; i++) dl[i] *= w[i];
            dt_disc_backward(D, &h->dc, h->swapped, dl, NULL, (int)h->nx);
        }
        dt_watch("discriminator optimizer step");
        optimizer_step(g, &g->aD[h->X], &D->p);
    }
}

/* ---- the color pairing ------------------------------------------------------------ */

/* "#rrggbb" of a color in [0,1]^3 */
static void hex_color(char out[8], const float *c)
{
    int v[3];
    for (int k = 0; k < 3; k++) v[k] = (int)lrintf(255.0f * fminf(fmaxf(c[k], 0.0f), 1.0f));
    snprintf(out, 8, "#%02x%02x%02x", v[0], v[1], v[2]);
}

/* Collective. Rank 0 groups every training image of both domains by its color
 * and pairs the groups (no labels are read); every rank gets the pairing. */
static void build_pairing(gan *g, dt_split *const *train)
{
    enum { BLK = 256 };
    int ok = 1;
    if (dt_rank() == 0) {
        dt_pair_groups gr[2];
        uint8_t *bytes = dt_alloc((size_t)BLK * IMG);
        float *x = dt_alloc_floats((size_t)BLK * IMG);
        uint32_t idx[BLK];
        for (int X = 0; X < 2; X++) dt_pair_groups_init(&gr[X]);
        for (int X = 0; X < 2 && ok; X++) {
            size_t n = dt_split_len(train[X]);
            for (size_t i = 0; i < n && ok; i += BLK) {
                size_t m = n - i < BLK ? n - i : BLK;
                for (size_t j = 0; j < m; j++) idx[j] = (uint32_t)(i + j);
                ok = dt_split_read(train[X], idx, m, bytes, NULL, NULL) == 0;
                if (!ok) break;
                dt_bytes_to_float(x, bytes, m * IMG);
                for (size_t j = 0; j < m; j++) dt_pair_groups_add(&gr[X], x + j * IMG);
            }
        }
        if (ok && dt_pairing_from_groups(&g->pair, &gr[0], &gr[1]) < 0)
            dt_warn("%s: no color pairing%s", dt_lasterr(), g->o.pair > 0 ? " (--color-pair has no effect)" : "");
        for (int X = 0; X < 2; X++) dt_pair_groups_free(&gr[X]);
        dt_free(bytes);
        dt_free(x);
    }
    dt_check_all(ok);
    dt_bcast(&g->pair, sizeof g->pair, 0);
    if (dt_rank() != 0 || !g->pair.ok) return;
    char line[DT_PAIR_MAXC * 20 + 1] = "", a[8], b[8];
    for (int i = 0; i < g->pair.nc[0]; i++) {
        hex_color(a, g->pair.color[0][i]);
        hex_color(b, g->pair.color[1][g->pair.to[0][i]]);
        snprintf(line + strlen(line), sizeof line - strlen(line), " %s>%s", a, b);
    }
    dt_log("dtrain cyclegan: color pairing A>B from the training images' colors and shapes (no labels):%s\n", line);
}

/* ---- sharing networks between ranks ---------------------------------------------- */

/* world rank holding domain X's networks first: 0 for A, 1 for B (0 alone) */
static int leader(const gan *g, int X) { return g->P == 1 ? 0 : X; }

/* every rank gets the weights (and, with moments, Adam's state) of all four
 * networks, and the averaged generators' weights */
static void share_networks(gan *g, int moments)
{
    for (int X = 0; X < 2 && g->P > 1; X++) dt_bcast(g->E[X].p.w, g->E[X].p.n * sizeof(float), leader(g, X));
    for (int X = 0; X < 2; X++) {
        dt_params *ps[2] = {&g->G[X].p, &g->D[X].p};
        dt_adam *as[2] = {&g->aG[X], &g->aD[X]};
        for (int k = 0; k < 2; k++) {
            if (moments && g->nhalves == 1 && g->h[0].X == X) dt_step_gather_moments(g->group, ps[k]);
            if (g->P == 1) continue;
            dt_bcast(ps[k]->w, ps[k]->n * sizeof(float), leader(g, X));
            if (moments) {
                dt_bcast(ps[k]->m, ps[k]->n * sizeof(float), leader(g, X));
                dt_bcast(ps[k]->v, ps[k]->n * sizeof(float), leader(g, X));
                dt_bcast(as[k], sizeof *as[k], leader(g, X));
            }
        }
    }
}

/* ---- evaluation ------------------------------------------------------------------ */

typedef struct {
    double acc[2], shape[2]; /* [0]: A->B, [1]: B->A; with the test labels */
    double tv[2], agree[2];  /* label-free: color-histogram distance, agreement with the pairing */
    dt_pair_tally tally[2];
} gan_eval;

/* Translate every test image of domain S into the other domain (the generator
 * into T = 1 - S); rank blocks over all ranks, sums agreed. */
static int evaluate(gan *g, dt_split *const *test, gan_eval *ev)
{
    double sums[4] = {0, 0, 0, 0}, counts[2] = {0, 0};
    dt_pair_tally *tally = ev->tally;
    memset(tally, 0, sizeof ev->tally);
    int ok = 1;
    dt_gen_ctx *c = &g->h[0].c1;
    uint8_t *bytes = dt_alloc((size_t)g->maxB * IMG), *digits = dt_alloc((size_t)g->maxB);
    float *x = dt_alloc_floats((size_t)g->maxB * IMG);
    uint32_t *idx = dt_alloc(sizeof(uint32_t) * (size_t)g->maxB);
    uint8_t *target = dt_alloc((size_t)g->maxB);
    for (int S = 0; S < 2 && ok; S++) {
        int T = 1 - S;
        size_t lo, hi;
        dt_block_range(dt_split_len(test[S]), &lo, &hi);
        for (size_t i = lo; i < hi && ok; i += (size_t)g->maxB) {
            size_t n = hi - i < (size_t)g->maxB ? hi - i : (size_t)g->maxB;
            for (size_t j = 0; j < n; j++) idx[j] = (uint32_t)(i + j);
            if (dt_split_read(test[S], idx, n, bytes, digits, NULL) < 0) {
                ok = 0;
                break;
            }
            dt_bytes_to_float(x, bytes, n * IMG);
            dt_gen_forward(&g->E[T], c, x, (int)n);
            for (size_t j = 0; j < n; j++) target[j] = g->mapping[T][digits[j] % 10];
            sums[2 * S] += dt_color_accuracy(c->y, target, n) * (double)n;
            sums[2 * S + 1] += dt_shape_score(x, c->y, n) * (double)n;
            counts[S] += (double)n;
            dt_pairing_tally(&g->pair, T, x, c->y, n, &tally[S]);
        }
    }
    dt_free(bytes);
    dt_free(digits);
    dt_free(x);
    dt_free(idx);
    dt_free(target);
    if (!dt_all_ok(ok)) return -1;
    dt_allreduce_sum_d(sums, 4);
    dt_allreduce_sum_d(counts, 2);
    dt_allreduce_sum_d((double *)tally, 2 * (sizeof(dt_pair_tally) / sizeof(double)));
    for (int S = 0; S < 2; S++) {
        ev->acc[S] = counts[S] > 0 ? sums[2 * S] / counts[S] : 0;
        ev->shape[S] = counts[S] > 0 ? sums[2 * S + 1] / counts[S] : 0;
        ev->tv[S] = dt_pairing_hist_tv(&g->pair, 1 - S, &tally[S]);
        ev->agree[S] = tally[S].n > 0 ? tally[S].agree / tally[S].n : 0;
    }
    return 0;
}

/* Rank 0: the source colors whose translations mostly miss their paired color
 * (label-free), e.g. "A>B #00ff00 12%": what a stuck class looks like. */
static void log_off_pairs(const gan *g, const gan_eval *ev)
{
    if (!g->pair.ok) return;
    char line[DT_PAIR_MAXC * 2 * 24 + 1] = "", c[8];
    for (int S = 0; S < 2; S++)
        for (int i = 0; i < g->pair.nc[S]; i++) {
            const dt_pair_tally *t = &ev->tally[S];
            if (t->from_n[i] == 0 || t->from_agree[i] >= 0.9 * t->from_n[i]) continue;
            hex_color(c, g->pair.color[S][i]);
            snprintf(line + strlen(line), sizeof line - strlen(line), " %s %s %.0f%%", S ? "B>A" : "A>B", c,
                     100.0 * t->from_agree[i] / t->from_n[i]);
        }
    if (line[0]) dt_log("           test images of a color that under 90%% reach its paired color:%s\n", line);
}

/* ---- pictures (rank 0) ------------------------------------------------------------- */

/* For one test image of every digit of each domain: real | translated | back. */
static void translation_grid(gan *g, dt_split *const *test, const char *dir)
{
    float *grid = dt_alloc_floats((size_t)6 * 10 * IMG), *x = dt_alloc_floats((size_t)10 * IMG);
    uint8_t *bytes = dt_alloc((size_t)10 * IMG), digit;
    dt_gen_ctx *c = &g->h[0].c1;
    for (int S = 0; S < 2; S++) {
        size_t n = dt_split_len(test[S]);
        uint32_t pick[10];
        int found = 0, seen[10] = {0};
        for (uint32_t i = 0; i < n && found < 10; i++) {
            if (dt_split_read(test[S], &i, 1, NULL, &digit, NULL) < 0) break;
            if (digit < 10 && !seen[digit]) seen[digit] = 1, pick[digit] = i, found++;
        }
        if (found < 10) continue;
        if (dt_split_read(test[S], pick, 10, bytes, NULL, NULL) < 0) continue;
        dt_bytes_to_float(x, bytes, (size_t)10 * IMG);
        float *rows = grid + (size_t)S * 30 * IMG;
        memcpy(rows, x, sizeof(float) * 10 * IMG);
        dt_gen_forward(&g->E[1 - S], c, x, 10);
        memcpy(rows + (size_t)10 * IMG, c->y, sizeof(float) * 10 * IMG);
        memcpy(x, c->y, sizeof(float) * 10 * IMG);
        dt_gen_forward(&g->E[S], c, x, 10);
        memcpy(rows + (size_t)20 * IMG, c->y, sizeof(float) * 10 * IMG);
    }
    const char *labels[6] = {"real A", "A->B", "A->B->A", "real B", "B->A", "B->A->B"};
    char *p = dt_path_join(dir, "translations.png");
    const char *digits[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    if (dt_png_grid(p, grid, 60, 3, 28, 28, 10, 2, "a test digit of each domain, translated and back", labels,
                    digits) < 0)
        dt_warn("%s", dt_lasterr());
    dt_free(p);
    dt_free(grid);
    dt_free(x);
    dt_free(bytes);
}

#define HIST 8 /* per epoch: G_AB, G_BA, D_A, D_B, acc_ab, acc_ba, tv_ab, tv_ba */

static void curves(const char *dir, const float *hist, int epochs)
{
    float *x = dt_alloc_floats((size_t)epochs), *y = dt_alloc_floats((size_t)HIST * epochs);
    for (int e = 0; e < epochs; e++) {
        x[e] = (float)(e + 1);
        for (int s = 0; s < HIST; s++) y[(size_t)s * epochs + e] = hist[(size_t)e * HIST + s];
    }
    const char *ln[4] = {"G_AB (adv + cycle)", "G_BA (adv + cycle)", "D_A", "D_B"};
    const char *an[4] = {"A->B accuracy", "B->A accuracy", "A->B color-hist. dist.", "B->A color-hist. dist."};
    char *p1 = dt_path_join(dir, "losses.png"), *p2 = dt_path_join(dir, "color_accuracy.png");
    const dt_lines_opts per_epoch = {.xint = 1}, fraction = {.ymin = 0, .ymax = 1, .xint = 1};
    if (dt_plot_lines(p1, x, y, 4, epochs, ln, "training losses per image", "epoch", "loss", &per_epoch) < 0)
        dt_warn("%s", dt_lasterr());
    if (dt_plot_lines(p2, x, y + (size_t)4 * epochs, 4, epochs, an,
                      "test translations: accuracy (labels), color-histogram distance (none)", "epoch",
                      "accuracy / distance", &fraction) < 0)
        dt_warn("%s", dt_lasterr());
    dt_free(p1);
    dt_free(p2);
    dt_free(x);
    dt_free(y);
}

/* ---- checkpoints ------------------------------------------------------------------- */

static void arch_of(const gan *g, char *buf, size_t len)
{
    snprintf(buf, len, "cyclegan gen=%s batch=%zu ema", g->o.gen_out, g->o.batch);
}

static int write_checkpoint(gan *g, const char *path, int64_t step, int64_t epoch, int64_t batch)
{
    dt_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    snprintf(meta.model, sizeof meta.model, "cyclegan");
    arch_of(g, meta.arch, sizeof meta.arch);
    meta.step = step;
    meta.epoch = epoch;
    meta.batch = batch;
    meta.epoch_steps = g->o.epoch_steps;
    meta.seed = g->o.seed;
    meta.nsums = 1;
    memcpy(meta.data_sha256, g->o.data_sha256, sizeof meta.data_sha256);
    meta.settings = g->o.settings;
    meta.ranks = g->P;
    meta.threads = g->o.threads;
    dt_params *nets[6] = {&g->G[0].p, &g->G[1].p, &g->D[0].p, &g->D[1].p, &g->E[0].p, &g->E[1].p};
    dt_adam opts[6] = {g->aG[0], g->aG[1], g->aD[0], g->aD[1], g->aG[0], g->aG[1]}; /* E has no optimizer */
    if (dt_ckpt_save(path, &meta, nets, opts, 6) == 0) return 0;
    dt_run_checkpoint_failed(path, step);
    return -1;
}

/* Collective. A checkpoint that cannot be written stops the run (status 2),
 * as for the VAEs. */
static void save(gan *g, const char *path, int64_t step, int64_t epoch, int64_t batch)
{
    dt_watch_pause("checkpoint");
    share_networks(g, 1); /* collective: rank 0 gathers all four networks */
    int ok = dt_rank() != 0 || write_checkpoint(g, path, step, epoch, batch) == 0;
    dt_check_all(ok);
}

/* rank 0: the checkpoint at path into the four networks */
static int load_nets(gan *g, const char *path, dt_ckpt_meta *meta)
{
    char arch[128];
    arch_of(g, arch, sizeof arch);
    dt_params *nets[6] = {&g->G[0].p, &g->G[1].p, &g->D[0].p, &g->D[1].p, &g->E[0].p, &g->E[1].p};
    dt_adam opts[6];
    int rc = dt_ckpt_load(path, "cyclegan", arch, g->o.epoch_steps, meta, nets, opts, 6);
    if (rc == 0) g->aG[0] = opts[0], g->aG[1] = opts[1], g->aD[0] = opts[2], g->aD[1] = opts[3];
    return rc;
}

/* what rank 0 loaded, to every rank */
static void share_loaded(gan *g)
{
    dt_params *nets[6] = {&g->G[0].p, &g->G[1].p, &g->D[0].p, &g->D[1].p, &g->E[0].p, &g->E[1].p};
    dt_bcast(g->aG, sizeof g->aG, 0);
    dt_bcast(g->aD, sizeof g->aD, 0);
    for (int k = 0; k < 6; k++) {
        dt_bcast(nets[k]->w, nets[k]->n * sizeof(float), 0);
        dt_bcast(nets[k]->m, nets[k]->n * sizeof(float), 0);
        dt_bcast(nets[k]->v, nets[k]->n * sizeof(float), 0);
    }
}

/* --gen-out's names, indexed by DT_GEN_*; -1 for an unknown name */
static int gen_out_kind(const char *name)
{
    static const char *const names[] = {[DT_GEN_SIGMOID] = "sigmoid", [DT_GEN_RESIDUAL] = "residual",
                                        [DT_GEN_RECOLOR] = "recolor"};
    for (int k = 0; k < (int)(sizeof names / sizeof *names); k++)
        if (!strcmp(name, names[k])) return k;
    return -1;
}

/* The rate's factor in epoch e (from 0): 1 before --lr-decay-from E (counted
 * from 1), then falling linearly so that the last epoch still learns a little:
 * 1 - (e - E + 2) / (epochs - E + 2). */
static float lr_factor(const gan_opts *o, int64_t e)
{
    int E = o->lr_decay_from;
    if (E <= 0 || e + 1 < E) return 1.0f;
    return 1.0f - (float)(e - E + 2) / (float)(o->epochs - E + 2);
}

/* ---- the command -------------------------------------------------------------------- */

/* Collective: the command line, then, when resuming, the checkpoint's
 * settings (info: what is resumed; it must outlive o). */
static void parse(gan_opts *o, int argc, char **argv, dt_resume_info *info)
{
    *o = (gan_opts){.data = DT_DATA_DEFAULT_PATH,
                    .out = "results/cyclegan",
                    .gen_out = "residual",
                    .epochs = 10,
                    .lr_decay_from = 4,
                    .batch = 64,
                    .lr = 3e-3f,
                    .beta1 = 0.5f,
                    .pair = 50,
                    .pair_focus = 4,
                    .g_gain = 3,
                    .ema = 0.97f,
                    .lambda_cyc = 10.0f,
                    .seed = 1};
    dt_run_opts_default(&o->run);
    dt_opt opts[] = {
        {"data", DT_OPT_STR, &o->data, "FILE", "colored-MNIST HDF5 file (prepared if missing)", 1, 0},
        {"epochs", DT_OPT_INT, &o->epochs, "N", "epochs (over the smaller of the two training sets)", 0, 100000},
        {"batch", DT_OPT_SIZE, &o->batch, "N", "global batch size of each domain", 1, 4096},
        {"lr", DT_OPT_FLOAT, &o->lr, "X", "Adam learning rate of all four networks", 0, 10},
        {"beta1", DT_OPT_FLOAT, &o->beta1, "X", "Adam beta1", 0, 0.9999},
        {"lr-d", DT_OPT_FLOAT, &o->lr_d, "X", "learning rate of the discriminators (0: --lr)", 0, 10},
        {"lr-decay-from", DT_OPT_INT, &o->lr_decay_from, "E",
         "from epoch E on, lower the rates linearly towards 0 at the end (0: constant)", 0, 100000},
        {"swap-neg", DT_OPT_FLOAT, &o->swap_neg, "W",
         "also train each discriminator to call real images repainted with another real image's color fake, "
         "weight W (0: off)",
         0, 100},
        {"d-noise", DT_OPT_FLOAT, &o->d_noise, "S",
         "instance noise: Gaussian noise of deviation S on what the discriminators see, falling linearly to 0", 0, 10},
        {"color-noise", DT_OPT_FLOAT, &o->color_noise, "S",
         "color noise: each image the discriminators see repainted by a random color shift of deviation S, "
         "falling linearly to 0",
         0, 10},
        {"color-search", DT_OPT_FLOAT, &o->search, "W",
         "also pull each translation (L1, weight W) toward its source's shape painted in the real color the "
         "discriminator finds most real (0: off)",
         0, 1000},
        {"color-pair", DT_OPT_FLOAT, &o->pair, "W",
         "also pull each translation (squared error, weight W) toward its source's shape painted in the color "
         "paired with the source's color: each domain's training images are grouped by color, and the groups of A "
         "and B are paired by their mean shapes (no labels; 0: off)",
         0, 1000},
        {"color-pair-focus", DT_OPT_FLOAT, &o->pair_focus, "K",
         "a translation not yet nearest its paired color gets 1 + K times the pull", 0, 1000},
        {"adv-ramp", DT_OPT_FLOAT, &o->adv_ramp, "E",
         "raise the adversarial term's weight in the generators' loss linearly from 0 to 1 over the first E "
         "epochs (0: full weight from the start)",
         0, 100000},
        {"g-delay", DT_OPT_LONG, &o->g_delay, "N",
         "leave the generators as they are for the first N iterations while the discriminators learn", 0, 1e12},
        {"lambda-cyc", DT_OPT_FLOAT, &o->lambda_cyc, "X", "weight of the L1 cycle-consistency loss", 0, 1000},
        {"lambda-id", DT_OPT_FLOAT, &o->lambda_id, "X", "weight of the identity loss (0: off)", 0, 1000},
        {"gen-ema", DT_OPT_FLOAT, &o->ema, "D",
         "evaluate, draw and keep the generators' weights averaged over the steps, E = D E + (1 - D) w after each "
         "step (0: the last weights)",
         0, 0.9999},
        {"gen-init-gain", DT_OPT_FLOAT, &o->g_gain, "X",
         "the generators' first two convolutions start with X times PyTorch's default initial weights", 0, 100},
        {"gen-out", DT_OPT_STR, &o->gen_out, "KIND",
         "generator output: residual (x + tanh, starts as the identity), recolor (the source's intensity times a "
         "color per pixel) or sigmoid (the report's)",
         1, 0},
        {"seed", DT_OPT_U64, &o->seed, "N", "seed of initialization and data order", 1, 0},
        {"out", DT_OPT_STR, &o->out, "DIR", "output folder", 1, 0},
        DT_RUN_OPT_RESUME(&o->run),
        DT_RUN_OPT_OVERWRITE(&o->run),
        {"checkpoint-every", DT_OPT_LONG, &o->checkpoint_every, "N", "also checkpoint every N steps", 0, 1e12},
        {"max-steps", DT_OPT_LONG, &o->max_steps, "N", "stop after N iterations in all (0: no limit)", 0, 1e15},
        {"threads", DT_OPT_INT, &o->threads, "N", "threads per rank (0: auto)", 0, 1024},
        DT_RUN_OPT_STOP(&o->run),
        DT_RUN_OPT_TIMEOUT(&o->run),
    };
    int n = (int)(sizeof opts / sizeof *opts);
    unsigned char given[sizeof opts / sizeof *opts];
    int rc = dt_opts_parse_or_exit(
        opts, n, argc, argv,
        "usage: [mpirun -np N] dtrain cyclegan [options]    (N = 1 or even)\n\n"
        "Train the CycleGAN that recolors digits between domain A (digit d in palette[d]) and\n"
        "domain B (palette[(d+3) mod 10]). With 2k ranks, even ranks hold A's generator and\n"
        "discriminator, odd ranks B's; images and gradients cross between partner ranks.\n",
        given);
    dt_check_all(rc == 0);
    dt_run_resume(&o->run, o->out, "cyclegan", info);
    if (info->resumed) {
        /* --resume auto: the folder that held the checkpoint is the run's */
        const char *const keep[] = {strcmp(o->run.resume, "auto") == 0 ? "out" : NULL, NULL};
        dt_check_all(dt_opts_resume(opts, n, given, &info->meta.settings, keep, info->from) == 0);
    }
    rc = dt_opts_settings(opts, n, &o->settings);
    if (rc == 0 && gen_out_kind(o->gen_out) < 0)
        rc = dt_seterr("--gen-out: '%s' is not one of residual, recolor, sigmoid", o->gen_out);
    if (rc == 0 && dt_size() > 1 && dt_size() % 2)
        rc = dt_seterr("cyclegan runs on 1 rank or an even number of ranks (pairs of an A and a B rank), not %d",
                       dt_size());
    dt_check_all(rc == 0);
    if (dt_size() > 1 && o->batch < (size_t)dt_size() / 2) {
        dt_seterr("--batch %zu is smaller than the %d ranks of each domain", o->batch, dt_size() / 2);
        dt_check_all(0);
    }
}

int dt_cmd_cyclegan(int argc, char **argv)
{
    double t_start = dt_now();
    gan *g = dt_alloc(sizeof *g);
    dt_resume_info rinfo;
    parse(&g->o, argc, argv, &rinfo);
    g->o.threads = dt_threads_setup(g->o.threads);
    dt_run_begin(&g->o.run);
    g->P = dt_size();
    g->nhalves = g->P == 1 ? 2 : 1;
    dt_run_claim(&g->o.run, g->o.out);
    dt_ensure_data(g->o.data);
    dt_dataset *ds = dt_dataset_open(g->o.data);
    int ok = ds != NULL;
    if (ok && !dt_dataset_has(ds, "cyclegan"))
        ok = dt_seterr("%s has no /cyclegan group; run `dtrain prepare --out %s`", g->o.data, g->o.data) == 0;
    dt_check_all(ok);
    dt_data_identify(ds, &rinfo, g->o.data_sha256);
    for (int X = 0; X < 2; X++) dt_check_all(dt_dataset_mapping(ds, X, g->mapping[X]) == 0);
    dt_split *train[2], *test[2];
    for (int X = 0; X < 2; X++) {
        char name[64];
        snprintf(name, sizeof name, "cyclegan/%s/train", DOMAIN[X]);
        train[X] = dt_split_open(ds, name);
        dt_check_all(train[X] != NULL);
        snprintf(name, sizeof name, "cyclegan/%s/test", DOMAIN[X]);
        test[X] = dt_split_open(ds, name);
        dt_check_all(test[X] != NULL);
    }
    build_pairing(g, train);
    size_t per_domain = g->P == 1 ? 1 : (size_t)g->P / 2;
    g->maxB = (int)((g->o.batch + per_domain - 1) / per_domain);
    if (g->maxB < 16) g->maxB = 16; /* evaluation and pictures work in blocks of at least 10 */
    int out = gen_out_kind(g->o.gen_out);
    const char *gname[2] = {"G_BA", "G_AB"}, *dname[2] = {"D_A", "D_B"};
    for (int X = 0; X < 2; X++) {
        dt_gen_create(&g->G[X], gname[X], out);
        dt_gen_init(&g->G[X], g->o.seed, (uint64_t)X);
        dt_gen_init_gain(&g->G[X], g->o.g_gain);
        char ename[16];
        snprintf(ename, sizeof ename, "%s_avg", gname[X]);
        dt_gen_create(&g->E[X], ename, out);
        memcpy(g->E[X].p.w, g->G[X].p.w, sizeof(float) * g->G[X].p.n);
        dt_disc_create(&g->D[X], dname[X]);
        dt_disc_init(&g->D[X], g->o.seed, 2 + (uint64_t)X);
        dt_adam_default(&g->aG[X], g->o.lr);
        dt_adam_default(&g->aD[X], g->o.lr);
        g->aG[X].beta1 = g->aD[X].beta1 = g->o.beta1;
    }
    if (g->P > 1) g->group = dt_comm_split(dt_rank() % 2, dt_rank());
    for (int k = 0; k < g->nhalves; k++) {
        half *h = &g->h[k];
        h->X = g->P == 1 ? k : dt_rank() % 2;
        h->ld = dt_loader_create_in(g->group, train[h->X], g->o.batch, g->o.seed * 2 + (uint64_t)h->X, 1);
        dt_gen_ctx_create(&h->c1, g->maxB);
        dt_gen_ctx_create(&h->c2, g->maxB);
        if (g->o.lambda_id > 0) dt_gen_ctx_create(&h->c3, g->maxB);
        dt_disc_ctx_create(&h->dc, g->maxB);
        float **bufs[] = {&h->x,     &h->y,     &h->fake_y,  &h->d_fake_y,   &h->d_fake_x,
                          &h->d_adv, &h->d_rec, &h->d_recv,  &h->noisy_x,    &h->noisy_fake, &h->swapped,
                          &h->cand,  &h->d_search, &h->d_pair};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) *bufs[i] = dt_alloc_floats((size_t)g->maxB * IMG);
        h->colors = dt_alloc(sizeof(double) * 3 * g->o.batch);
    }
    size_t nbA = (dt_split_len(train[0]) + g->o.batch - 1) / g->o.batch;
    size_t nbB = (dt_split_len(train[1]) + g->o.batch - 1) / g->o.batch;
    size_t nb = nbA < nbB ? nbA : nbB;
    g->total_steps = (int64_t)nb * g->o.epochs;
    g->o.epoch_steps = (int64_t)nb;

    int64_t step = 0, epoch0 = 0, batch0 = 0;
    if (rinfo.resumed) {
        int loaded = dt_rank() != 0 || load_nets(g, rinfo.from, &rinfo.meta) == 0;
        dt_check_all(loaded);
        share_loaded(g);
        step = rinfo.meta.step, epoch0 = rinfo.meta.epoch, batch0 = rinfo.meta.batch;
    }
    dt_run_record_start(g->o.out, "cyclegan", g->o.threads, &g->o.run, &rinfo);
    int idle = dt_run_nothing_left(&rinfo, "cyclegan", g->o.out, g->o.epochs, g->o.max_steps);
    char *ckpt = dt_path_join(g->o.out, "checkpoint.h5"), *csv_path = dt_path_join(g->o.out, "metrics.csv");
    FILE *csv = NULL;
    if (dt_rank() == 0 && !idle) {
        csv = dt_csv_open(csv_path, "epoch,step,cycle_a,cycle_b,adv_g_ab,adv_g_ba,d_a,d_b,color_acc_ab,color_acc_ba,"
                                    "shape_ab,shape_ba,hist_tv_ab,hist_tv_ba,pair_agree_ab,pair_agree_ba,pair_loss,"
                                    "images_per_s,epoch_s,wall_s");
        if (!csv) dt_warn("%s", dt_lasterr());
    }
    dt_log("dtrain cyclegan: %zu A / %zu B train images from %s, %d rank(s) (%s), products %s, batch %zu, %d epochs, "
           "%s generator\n",
           dt_split_len(train[0]), dt_split_len(train[1]), g->o.data, g->P,
           g->P == 1 ? "both domains on one rank" : "A on even ranks, B on odd", dt_gemm_isa(), g->o.batch,
           g->o.epochs, g->o.gen_out);
    size_t nhist = (size_t)(g->o.epochs > 0 ? g->o.epochs : 1) * HIST;
    float *hist = dt_alloc_floats(nhist);
    for (size_t i = 0; i < nhist; i++) hist[i] = NAN; /* epochs before a resume are not drawn */
    gan_eval ev;
    memset(&ev, 0, sizeof ev);
    double train_time = 0, images = 0;
    int stopped = g->o.max_steps > 0 && step >= g->o.max_steps;
    int64_t epoch_at = epoch0; /* the epoch of the last step taken, from 1 */
    dt_progress prog;
    dt_progress_init(&prog);
    for (int64_t epoch = epoch0; epoch < g->o.epochs && !stopped; epoch++) {
        double te0 = dt_now(), ep_images = 0;
        float f = lr_factor(&g->o, epoch);
        for (int X = 0; X < 2; X++) {
            g->aG[X].lr = g->o.lr * f;
            g->aD[X].lr = (g->o.lr_d > 0 ? g->o.lr_d : g->o.lr) * f;
        }
        for (int k = 0; k < g->nhalves; k++) {
            if (epoch == epoch0 && batch0 > 0)
                dt_loader_seek(g->h[k].ld, (uint64_t)epoch, (size_t)batch0);
            else
                dt_loader_start_epoch(g->h[k].ld, (uint64_t)epoch);
            memset(g->h[k].loss, 0, sizeof g->h[k].loss);
        }
        for (size_t b = epoch == epoch0 ? (size_t)batch0 : 0; b < nb; b++) {
            double t0 = dt_now();
            int got = 1;
            dt_watch_step(step);
            dt_watch("data loading");
            for (int k = 0; k < g->nhalves; k++) {
                dt_batch bt;
                int r = dt_loader_next(g->h[k].ld, &bt);
                if (r != 1) got = r;
                g->h[k].nx = bt.n;
                g->h[k].gx = bt.global_n;
                memcpy(g->h[k].x, bt.x, sizeof(float) * bt.n * IMG);
            }
            /* one reduction per step agrees on the batches and on a stop */
            int sig = dt_check_all_max(got == 1, dt_run_stop_local(step));
            if (sig) {
                save(g, ckpt, step, epoch, (int64_t)b);
                dt_run_stop(sig, step, epoch + 1, ckpt);
            }
            g->step = step;
            iteration(g);
            step++;
            epoch_at = epoch + 1;
            double dt = dt_now() - t0;
            train_time += dt;
            images += (double)(g->h[0].gx + g->h[0].gy);
            ep_images += (double)(g->h[0].gx + g->h[0].gy);
            if (prog.tty) {
                char st[96];
                snprintf(st, sizeof st, "epoch %lld/%d  %.0f img/s", (long long)epoch + 1, g->o.epochs, images / train_time);
                dt_progress_draw(&prog, (long)b + 1, (long)nb, st);
            }
            int last = b + 1 == nb;
            if (!last && g->o.max_steps > 0 && step >= g->o.max_steps) {
                save(g, ckpt, step, epoch, (int64_t)b + 1);
                stopped = 1;
                break;
            }
            if (!last && g->o.checkpoint_every > 0 && step % g->o.checkpoint_every == 0)
                save(g, ckpt, step, epoch, (int64_t)b + 1);
        }
        dt_progress_clear(&prog);
        if (stopped) {
            dt_log("dtrain cyclegan: stopped after %lld steps (--max-steps); resume with --resume %s\n", (long long)step, ckpt);
            break;
        }
        /* losses per image of the epoch: [cycle A, cycle B, adv G_AB, adv G_BA, D_A, D_B, pair pull] */
        double L[8] = {0};
        for (int k = 0; k < g->nhalves; k++) {
            int X = g->h[k].X;
            L[X] = g->h[k].loss[0];
            L[2 + (1 - X)] = g->h[k].loss[1]; /* G_X's adversarial term: G_BA for X = A */
            L[4 + X] = g->h[k].loss[2] + g->h[k].loss[3];
            L[6] += g->h[k].loss[5];
        }
        dt_allreduce_sum_d(L, 7);
        double per = (double)nb * (double)g->o.batch;
        for (int k = 0; k < 7; k++) L[k] /= per;
        dt_watch_pause("evaluation");
        share_networks(g, 0);
        dt_check_all(evaluate(g, test, &ev) == 0);
        double ips = ep_images / (dt_now() - te0), elapsed = dt_now() - t_start;
        char el[32], eta[32];
        dt_fmt_duration(el, sizeof el, elapsed);
        dt_fmt_duration(eta, sizeof eta, (elapsed / (double)(epoch - epoch0 + 1)) * (double)(g->o.epochs - epoch - 1));
        dt_log("epoch %3lld/%d  color acc A->B %.3f B->A %.3f  shape %.3f %.3f  color-hist dist %.3f %.3f  cycle %.3f "
               "%.3f  D %.3f %.3f  %.0f img/s  elapsed %s  ETA %s\n",
               (long long)epoch + 1, g->o.epochs, ev.acc[0], ev.acc[1], ev.shape[0], ev.shape[1], ev.tv[0], ev.tv[1],
               L[0], L[1], L[4], L[5], ips, el, eta);
        log_off_pairs(g, &ev);
        float *hrow = hist + (size_t)epoch * HIST;
        hrow[0] = (float)(L[1] + L[2]); /* G_AB: its adversarial term and the cycle it closes on B */
        hrow[1] = (float)(L[0] + L[3]);
        hrow[2] = (float)L[4];
        hrow[3] = (float)L[5];
        hrow[4] = (float)ev.acc[0];
        hrow[5] = (float)ev.acc[1];
        hrow[6] = (float)ev.tv[0];
        hrow[7] = (float)ev.tv[1];
        if (csv) {
            fprintf(csv,
                    "%lld,%lld,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.1f,%.3f,%.3f\n",
                    (long long)epoch + 1, (long long)step, L[0], L[1], L[2], L[3], L[4], L[5], ev.acc[0], ev.acc[1],
                    ev.shape[0], ev.shape[1], ev.tv[0], ev.tv[1], ev.agree[0], ev.agree[1], L[6], ips, dt_now() - te0,
                    elapsed);
            fflush(csv);
        }
        save(g, ckpt, step, epoch + 1, 0);
        /* a stop asked for during the evaluation or the checkpoint: this one will do */
        int sig = dt_run_stop_poll();
        if (sig) dt_run_stop(sig, step, epoch + 1, ckpt);
        if (g->o.max_steps > 0 && step >= g->o.max_steps) stopped = 1;
    }
    dt_watch_pause("final evaluation");
    dt_stop_defer(0); /* no step boundary from here on: a stop signal ends the job at once */
    if (csv) fclose(csv);
    if (idle) goto finish; /* a run that trained nothing leaves its results as they are */
    share_networks(g, 0);
    dt_check_all(evaluate(g, test, &ev) == 0);
    if (dt_rank() == 0) {
        translation_grid(g, test, g->o.out);
        int ep = g->o.epochs;
        curves(g->o.out, hist, ep);
        char *sum = dt_path_join(g->o.out, "summary.json");
        dt_json j;
        if (dt_json_open(&j, sum) == 0) {
            dt_json_str(&j, "model", "cyclegan");
            dt_json_num(&j, "color_acc_ab", ev.acc[0]);
            dt_json_num(&j, "color_acc_ba", ev.acc[1]);
            dt_json_num(&j, "shape_ab", ev.shape[0]);
            dt_json_num(&j, "shape_ba", ev.shape[1]);
            dt_json_num(&j, "hist_tv_ab", ev.tv[0]);
            dt_json_num(&j, "hist_tv_ba", ev.tv[1]);
            dt_json_num(&j, "pair_agree_ab", ev.agree[0]);
            dt_json_num(&j, "pair_agree_ba", ev.agree[1]);
            dt_json_num(&j, "images_per_s", train_time > 0 ? images / train_time : 0);
            /* rank 0's time in the partner exchanges (waiting for the partner included) */
            dt_json_num(&j, "message_share", train_time > 0 ? g->msg_s / train_time : 0);
            dt_json_num(&j, "wall_s", dt_now() - t_start);
            dt_json_int(&j, "ranks", g->P);
            dt_json_int(&j, "threads", g->o.threads);
            dt_json_int(&j, "epochs", g->o.epochs);
            dt_json_int(&j, "steps", step);
            dt_json_int(&j, "batch", (long long)g->o.batch);
            dt_json_int(&j, "seed", (long long)g->o.seed);
            dt_json_str(&j, "gen_out", g->o.gen_out);
            dt_json_num(&j, "lambda_cyc", g->o.lambda_cyc);
            dt_json_num(&j, "lr", g->o.lr);
            dt_json_str(&j, "data", g->o.data);
            dt_json_str(&j, "version", DT_VERSION);
            if (rinfo.resumed) dt_json_str(&j, "resumed_from", rinfo.from);
            if (dt_json_close(&j) < 0) dt_warn("%s", dt_lasterr());
        }
        dt_free(sum);
        dt_log("dtrain cyclegan: color accuracy A->B %.3f, B->A %.3f; shape %.3f, %.3f; results in %s/\n", ev.acc[0],
               ev.acc[1], ev.shape[0], ev.shape[1], g->o.out);
    }
finish:
    dt_run_finish(step, epoch_at, idle ? "nothing to train" : stopped ? "--max-steps reached" : "finished");
    for (int k = 0; k < g->nhalves; k++) {
        half *h = &g->h[k];
        dt_loader_free(h->ld);
        dt_gen_ctx_free(&h->c1);
        dt_gen_ctx_free(&h->c2);
        if (g->o.lambda_id > 0) dt_gen_ctx_free(&h->c3);
        dt_disc_ctx_free(&h->dc);
        float *bufs[] = {h->x,     h->y,     h->fake_y,  h->d_fake_y,   h->d_fake_x,
                         h->d_adv, h->d_rec, h->d_recv,  h->noisy_x,    h->noisy_fake, h->swapped,
                         h->cand,  h->d_search, h->d_pair};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) dt_free(bufs[i]);
        dt_free(h->colors);
    }
    for (int X = 0; X < 2; X++) {
        dt_gen_free(&g->G[X]);
        dt_gen_free(&g->E[X]);
        dt_disc_free(&g->D[X]);
        dt_split_close(train[X]);
        dt_split_close(test[X]);
    }
    dt_comm_free(g->group);
    dt_dataset_close(ds);
    dt_free(hist);
    dt_free(ckpt);
    dt_free(csv_path);
    dt_free(g);
    return 0;
}
