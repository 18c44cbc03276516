/* The CycleGAN's networks: directional finite differences through every
 * parameter tensor and the input, for both generator outputs and the discriminator. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_run.h"
#include "dtrain/core.h"
#include "dtrain/gan.h"

#define IMG 2352
enum { B = 2 };

static void fill(float *x, size_t n, uint64_t key, float lo, float hi)
{
    dt_rand_uniform(x, n, (dt_stream){99, DT_RNG_SAMPLE, key, 0});
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * x[i];
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* Spread the pre-activations away from the ReLU kinks: with PyTorch's small
 * initialization thousands of units sit within a finite-difference step of
 * zero, and the check would measure kinks instead of gradients. */
static void spread(dt_params *p)
{
    for (int v = 0; v < p->nviews; v++) {
        const dt_view *vw = &p->views[v];
        float *w = p->w + vw->off;
        if (vw->ndim == 1)
            fill(w, vw->n, 500 + v, -0.5f, 0.5f);
        else
            for (size_t i = 0; i < vw->n; i++) w[i] *= 3.0f;
    }
}

typedef double (*loss_fn)(void *net, const float *x, const float *r);

static double gen_loss(void *net, const float *x, const float *r)
{
    static dt_gen_ctx c;
    static int made;
    if (!made) dt_gen_ctx_create(&c, B), made = 1;
    dt_gen_forward(net, &c, x, B);
    return dot(c.y, r, (size_t)B * IMG);
}

static double disc_loss(void *net, const float *x, const float *r)
{
    static dt_disc_ctx c;
    static int made;
    if (!made) dt_disc_ctx_create(&c, B), made = 1;
    dt_disc_forward(net, &c, x, B);
    return dot(c.logit, r, B);
}

/* d/dh L(w + h d) against g . d for a random direction d (elements in
 * [-1, 1]) on each view, and on x. Tens of thousands of ReLUs sit between
 * input and output, and a step that carries some of them across their kink
 * blurs a finite difference; float rounding blurs a too small one. So the
 * check passes when the analytic value is matched at one of three step
 * sizes: a wrong gradient (a transposed index, a missing term) misses at all. */
static const double STEPS[3] = {3e-3, 1e-3, 3e-4};

static void directional(dt_params *p, void *net, loss_fn L, float *x, const float *r, const float *dx)
{
    /* dx NULL: the input gradient is checked elsewhere (it crosses 50,000 ReLUs) */
    float *w0 = dt_alloc_floats(p->n), *d = dt_alloc_floats(p->n);
    memcpy(w0, p->w, p->n * sizeof(float));
    for (int v = 0; v < p->nviews; v++) {
        const dt_view *vw = &p->views[v];
        /* conv2 sits between two layers of ~50,000 ReLUs: any step large enough
         * for float carries hundreds across their kinks. Its gradient is checked
         * against the plain-loop twin in middle_layers_match_naive instead. */
        if (strncmp(vw->name, "conv2.", 6) == 0) continue;
        memset(d, 0, p->n * sizeof(float));
        fill(d + vw->off, vw->n, 300 + v, -1, 1);
        double gd = dot(p->g, d, p->n), best = INFINITY, fd = 0;
        for (int k = 0; k < 3; k++) {
            double h = STEPS[k], Lh[2];
            for (int s = 0; s < 2; s++) {
                for (size_t i = 0; i < p->n; i++) p->w[i] = w0[i] + (float)((s ? -h : h) * d[i]);
                Lh[s] = L(net, x, r);
            }
            double f = (Lh[0] - Lh[1]) / (2 * h);
            if (fabs(f - gd) < best) best = fabs(f - gd), fd = f;
        }
        memcpy(p->w, w0, p->n * sizeof(float));
        ck_assert_msg(best <= 2e-2 * fabs(gd) + 1e-3, "%s %s: fd %g vs analytic %g", p->name, vw->name, fd, gd);
    }
    dt_free(w0);
    dt_free(d);
    if (!dx) return;
    /* the input gradient */
    float *dd = dt_alloc_floats((size_t)B * IMG), *xp = dt_alloc_floats((size_t)B * IMG);
    fill(dd, (size_t)B * IMG, 400, -1, 1);
    double gd = dot(dx, dd, (size_t)B * IMG), best = INFINITY, fd = 0;
    for (int k = 0; k < 3; k++) {
        double h = STEPS[k], Lh[2];
        for (int s = 0; s < 2; s++) {
            for (size_t i = 0; i < (size_t)B * IMG; i++) xp[i] = x[i] + (float)((s ? -h : h) * dd[i]);
            Lh[s] = L(net, xp, r);
        }
        double f = (Lh[0] - Lh[1]) / (2 * h);
        if (fabs(f - gd) < best) best = fabs(f - gd), fd = f;
    }
    ck_assert_msg(best <= 2e-2 * fabs(gd) + 1e-3, "%s input: fd %g vs analytic %g", p->name, fd, gd);
    dt_free(dd);
    dt_free(xp);
}

START_TEST(generator_gradients)
{
    dt_gen g;
    const int kinds[3] = {DT_GEN_SIGMOID, DT_GEN_RESIDUAL, DT_GEN_RECOLOR};
    const char *names[3] = {"gen_sigmoid", "gen_residual", "gen_recolor"};
    dt_gen_create(&g, names[_i], kinds[_i]);
    dt_gen_init(&g, 5, 0);
    /* move the residual generator off the identity so every path carries
     * gradient; the exact derivative (the clamps' inward pass is tested apart) */
    g.true_clamp = 1;
    fill(g.c3.w, 3 * 40, 77, -0.2f, 0.2f);
    spread(&g.p);
    float *x = dt_alloc_floats((size_t)B * IMG), *r = dt_alloc_floats((size_t)B * IMG);
    float *dx = dt_alloc_floats((size_t)B * IMG);
    fill(x, (size_t)B * IMG, 1, 0.3f, 0.7f); /* inside the clamp's open interval */
    if (kinds[_i] == DT_GEN_RECOLOR) /* red the brightest channel by a margin: no kink of the max nearby */
        for (int b = 0; b < B; b++) fill(x + (size_t)b * IMG, 784, 10 + (uint64_t)b, 0.8f, 0.9f);
    fill(r, (size_t)B * IMG, 2, -1, 1);
    dt_gen_ctx c;
    dt_gen_ctx_create(&c, B);
    dt_params_zero_grad(&g.p);
    dt_gen_forward(&g, &c, x, B);
    dt_gen_backward(&g, &c, r, dx, B);
    directional(&g.p, &g, gen_loss, x, r, dx);
    dt_gen_ctx_free(&c);
    dt_free(x);
    dt_free(r);
    dt_free(dx);
    dt_gen_free(&g);
}
END_TEST

/* residual (_i = 0) and recolor (_i = 1) */
START_TEST(generator_starts_as_identity)
{
    dt_gen g;
    dt_gen_create(&g, "g", _i ? DT_GEN_RECOLOR : DT_GEN_RESIDUAL);
    dt_gen_init(&g, 5, 1);
    float *x = dt_alloc_floats((size_t)B * IMG);
    fill(x, (size_t)B * IMG, 3, 0, 1);
    dt_gen_ctx c;
    dt_gen_ctx_create(&c, B);
    dt_gen_forward(&g, &c, x, B);
    ck_assert_mem_eq(c.y, x, sizeof(float) * B * IMG);
    dt_gen_ctx_free(&c);
    dt_free(x);
    dt_gen_free(&g);
}
END_TEST

/* At the start, a green digit sits on the clamps in every channel. A gradient
 * that would move a channel back inside reaches the network (red up from 0,
 * green down from 1); one that pushes further out does not (blue below 0).
 * residual (_i = 0) and recolor (_i = 1) */
START_TEST(clamps_pass_inward_gradients)
{
    dt_gen g;
    dt_gen_create(&g, "g", _i ? DT_GEN_RECOLOR : DT_GEN_RESIDUAL);
    dt_gen_init(&g, 5, 1);
    float *x = dt_alloc_floats((size_t)B * IMG), *dy = dt_alloc_floats((size_t)B * IMG);
    for (int b = 0; b < B; b++)
        for (int q = 0; q < 784; q++) {
            float *xb = x + (size_t)b * IMG, *db = dy + (size_t)b * IMG;
            xb[q] = 0, xb[784 + q] = 1, xb[2 * 784 + q] = 0;   /* green */
            db[q] = -1, db[784 + q] = 1, db[2 * 784 + q] = 1; /* red up, green down, blue down */
        }
    dt_gen_ctx c;
    dt_gen_ctx_create(&c, B);
    dt_params_zero_grad(&g.p);
    dt_gen_forward(&g, &c, x, B);
    dt_gen_backward(&g, &c, dy, NULL, B);
    ck_assert_float_lt(g.c3.db[0], -1.0f); /* every pixel asks for more red */
    ck_assert_float_gt(g.c3.db[1], 1.0f);
    ck_assert_float_eq(g.c3.db[2], 0.0f);
    dt_gen_ctx_free(&c);
    dt_free(x);
    dt_free(dy);
    dt_gen_free(&g);
}
END_TEST

/* a channel pushed far past its clamp (a saturated tanh) gets the inward
 * gradient whole: every pixel's -1 reaches the bias undiminished */
START_TEST(saturated_channels_come_back)
{
    dt_gen g;
    dt_gen_create(&g, "g", _i ? DT_GEN_RECOLOR : DT_GEN_RESIDUAL);
    dt_gen_init(&g, 5, 1);
    g.c3.b[0] = -8.0f; /* red far below 0: tanh'(-8) ~ 5e-7 */
    float *x = dt_alloc_floats((size_t)B * IMG), *dy = dt_alloc_floats((size_t)B * IMG);
    for (size_t i = 0; i < (size_t)B * IMG; i++) x[i] = (i / 784) % 3 == 1, dy[i] = (i / 784) % 3 == 0 ? -1 : 0;
    dt_gen_ctx c;
    dt_gen_ctx_create(&c, B);
    dt_params_zero_grad(&g.p);
    dt_gen_forward(&g, &c, x, B);
    for (int b = 0; b < B; b++) ck_assert_float_eq(c.y[(size_t)b * IMG], 0.0f); /* clamped */
    dt_gen_backward(&g, &c, dy, NULL, B);
    ck_assert_float_eq(g.c3.db[0], -(float)(B * 784));
    g.true_clamp = 1; /* the exact derivative: nothing */
    dt_params_zero_grad(&g.p);
    dt_gen_backward(&g, &c, dy, NULL, B);
    ck_assert_float_eq(g.c3.db[0], 0.0f);
    dt_gen_ctx_free(&c);
    dt_free(x);
    dt_free(dy);
    dt_gen_free(&g);
}
END_TEST

START_TEST(discriminator_gradients)
{
    dt_disc d;
    dt_disc_create(&d, "disc");
    dt_disc_init(&d, 6, 0);
    spread(&d.p);
    float *x = dt_alloc_floats((size_t)B * IMG), *dx = dt_alloc_floats((size_t)B * IMG), r[B] = {0.7f, -1.3f};
    fill(x, (size_t)B * IMG, 4, 0, 1);
    dt_disc_ctx c;
    dt_disc_ctx_create(&c, B);
    dt_params_zero_grad(&d.p);
    dt_disc_forward(&d, &c, x, B);
    dt_disc_backward(&d, &c, x, r, dx, B);
    directional(&d.p, &d, disc_loss, x, r, NULL);
    dt_disc_ctx_free(&c);
    dt_free(x);
    dt_free(dx);
    dt_disc_free(&d);
}
END_TEST

/* the input-only backward: dx the same bits as the full backward's, the
 * parameter gradients untouched */
START_TEST(discriminator_input_gradient_alone)
{
    dt_disc d;
    dt_disc_create(&d, "disc");
    dt_disc_init(&d, 9, 0);
    float *x = dt_alloc_floats((size_t)B * IMG), *dx = dt_alloc_floats((size_t)B * IMG), r[B] = {0.9f, -0.4f};
    float *dxi = dt_alloc_floats((size_t)B * IMG), *g = dt_alloc_floats(d.p.n);
    fill(x, (size_t)B * IMG, 21, 0, 1);
    dt_disc_ctx c;
    dt_disc_ctx_create(&c, B);
    dt_params_zero_grad(&d.p);
    dt_disc_forward(&d, &c, x, B);
    dt_disc_backward(&d, &c, x, r, dx, B);
    for (size_t i = 0; i < d.p.n; i++) d.p.g[i] = (float)(i % 13) - 6.0f;
    memcpy(g, d.p.g, d.p.n * sizeof(float));
    dt_disc_forward(&d, &c, x, B);
    dt_disc_backward_input(&d, &c, x, r, dxi, B);
    ck_assert(!memcmp(dxi, dx, (size_t)B * IMG * sizeof(float)));
    ck_assert(!memcmp(d.p.g, g, d.p.n * sizeof(float)));
    double n = 0;
    for (size_t i = 0; i < (size_t)B * IMG; i++) n += fabs(dxi[i]);
    ck_assert_double_gt(n, 1e-3);
    dt_disc_ctx_free(&c);
    dt_free(x), dt_free(dx), dt_free(dxi), dt_free(g);
    dt_disc_free(&d);
}
END_TEST

static double max_diff(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

/* conv2's gradients inside each network equal the plain-loop twin's, given
 * the gradient that reached its output and the input it saw */
START_TEST(middle_layers_match_naive)
{
    dt_gen g;
    dt_gen_create(&g, "g", DT_GEN_RESIDUAL);
    dt_gen_init(&g, 7, 0);
    fill(g.c3.w, 3 * 40, 78, -0.2f, 0.2f);
    float *x = dt_alloc_floats((size_t)B * IMG), *r = dt_alloc_floats((size_t)B * IMG);
    float *dx = dt_alloc_floats((size_t)B * IMG);
    fill(x, (size_t)B * IMG, 11, 0.2f, 0.8f);
    fill(r, (size_t)B * IMG, 12, -1, 1);
    dt_gen_ctx c;
    dt_gen_ctx_create(&c, B);
    dt_params_zero_grad(&g.p);
    dt_gen_forward(&g, &c, x, B);
    dt_gen_backward(&g, &c, r, dx, B);
    float *dw = dt_alloc_floats(40 * 32 * 9), *db = dt_alloc_floats(40), *dh = dt_alloc_floats((size_t)B * 32 * 784);
    dt_conv2d_backward_naive(dh, dw, db, c.dh2, c.h1, g.c2.w, B, 32, 28, 28, 40, 3, 1);
    ck_assert_double_le(max_diff(dw, g.c2.dw, 40 * 32 * 9), 1e-4);
    ck_assert_double_le(max_diff(db, g.c2.db, 40), 1e-4);
    dt_gen_ctx_free(&c);
    dt_free(dw);
    dt_free(db);
    dt_free(dh);

    dt_disc d;
    dt_disc_create(&d, "d");
    dt_disc_init(&d, 8, 0);
    float dl[B] = {0.5f, -0.25f};
    dt_disc_ctx dc;
    dt_disc_ctx_create(&dc, B);
    dt_params_zero_grad(&d.p);
    dt_disc_forward(&d, &dc, x, B);
    dt_disc_backward(&d, &dc, x, dl, dx, B);
    dw = dt_alloc_floats(64 * 32 * 9);
    db = dt_alloc_floats(64);
    dh = dt_alloc_floats((size_t)B * 32 * 196);
    dt_conv2d_backward_naive(dh, dw, db, dc.da2, dc.p1, d.c2.w, B, 32, 14, 14, 64, 3, 1);
    ck_assert_double_le(max_diff(dw, d.c2.dw, 64 * 32 * 9), 1e-4);
    ck_assert_double_le(max_diff(db, d.c2.db, 64), 1e-4);
    ck_assert_double_le(max_diff(dh, dc.dp1, (size_t)B * 32 * 196), 1e-5);
    /* the discriminator's input gradient, the one the generators learn from */
    float *dw1 = dt_alloc_floats(32 * 27), *db1 = dt_alloc_floats(32), *dxn = dt_alloc_floats((size_t)B * IMG);
    dt_conv2d_backward_naive(dxn, dw1, db1, dc.da1, x, d.c1.w, B, 3, 28, 28, 32, 3, 1);
    ck_assert_double_le(max_diff(dxn, dx, (size_t)B * IMG), 1e-5);
    double nx = 0;
    for (size_t i = 0; i < (size_t)B * IMG; i++) nx += fabs(dx[i]);
    ck_assert_double_gt(nx, 1e-3); /* not trivially zero */
    dt_free(dw1);
    dt_free(db1);
    dt_free(dxn);
    dt_disc_ctx_free(&dc);
    dt_disc_free(&d);
    dt_free(dw);
    dt_free(db);
    dt_free(dh);
    dt_free(x);
    dt_free(r);
    dt_free(dx);
    dt_gen_free(&g);
}
END_TEST

/* Recorded gradients (dt_grad_rec) folded in the batch's order are the bits
 * backward adds: two passes over a batch of 5 images, recorded in two calls
 * (images 0-1 and 2-4, as two ranks of a domain would), folded into the
 * parameter block in three arbitrary pieces (as three ranks' blocks), give
 * the same gradient as the two passes' plain backward, bit for bit: every
 * layer, the Winograd and im2col convolutions and the linear ones (whose
 * pieces cut rows). The same for the generator and the discriminator. */
enum { NB = 5 };

static void net_pass(int disc, void *net, void *ctx, const float *x, const float *r, int n)
{
    float *dx = dt_alloc_floats((size_t)n * IMG), *dy = dt_alloc_floats((size_t)n * IMG);
    if (disc) {
        dt_disc_forward(net, ctx, x, n);
        dt_disc_backward(net, ctx, x, r, dx, n);
    } else {
        dt_gen_forward(net, ctx, x, n);
        for (size_t i = 0; i < (size_t)n * IMG; i++) dy[i] = r[i];
        dt_gen_backward(net, ctx, dy, dx, n);
    }
    dt_free(dx);
    dt_free(dy);
}

START_TEST(recorded_gradients_fold_to_backward_bits)
{
    int disc = _i;
    dt_gen g;
    dt_disc d;
    dt_params *p = disc ? &d.p : &g.p;
    dt_grad_rec *rec = disc ? &d.rec : &g.rec;
    void *net = disc ? (void *)&d : (void *)&g;
    if (disc) {
        dt_disc_create(&d, "d");
        dt_disc_init(&d, 8, 0);
    } else {
        dt_gen_create(&g, "g", DT_GEN_RESIDUAL);
        dt_gen_init(&g, 8, 0);
    }
    spread(p);
    dt_gen_ctx gc;
    dt_disc_ctx dc;
    void *ctx = disc ? (void *)&dc : (void *)&gc;
    if (disc)
        dt_disc_ctx_create(&dc, NB);
    else
        dt_gen_ctx_create(&gc, NB);
    float *x[2], *r[2];
    for (int k = 0; k < 2; k++) {
        x[k] = dt_alloc_floats((size_t)NB * IMG);
        r[k] = dt_alloc_floats((size_t)NB * IMG);
        fill(x[k], (size_t)NB * IMG, 30 + (uint64_t)k, 0, 1);
        fill(r[k], (size_t)NB * IMG, 40 + (uint64_t)k, -1, 1);
    }
    dt_params_zero_grad(p);
    for (int k = 0; k < 2; k++) net_pass(disc, net, ctx, x[k], r[k], NB);
    float *want = dt_alloc_floats(p->n);
    memcpy(want, p->g, sizeof(float) * p->n);
    size_t rn = disc ? dt_disc_rec_size() : dt_gen_rec_size();
    float *recs = dt_alloc_floats(NB * rn), *scratch = dt_alloc_floats(dt_gan_fold_scratch(NB));
    size_t cut[4] = {0, p->n / 3 + 17, 2 * p->n / 3 + 5, p->n};
    dt_params_zero_grad(p);
    *rec = (dt_grad_rec){recs, rn};
    for (int k = 0; k < 2; k++) {
        const int part[3] = {0, 2, NB};
        for (int q = 0; q < 2; q++) { /* the images of one "rank" */
            size_t o = (size_t)part[q], n = (size_t)(part[q + 1] - part[q]);
            rec->rec = recs + o * rn;
            net_pass(disc, net, ctx, x[k] + o * IMG, disc ? r[k] + o : r[k] + o * IMG, (int)n);
        }
        for (int c = 0; c < 3; c++) /* each "rank's" block of the parameters */
            if (disc)
                dt_disc_fold(&d, recs, NB, cut[c], cut[c + 1], scratch);
            else
                dt_gen_fold(&g, recs, NB, cut[c], cut[c + 1], scratch);
    }
    for (size_t i = 0; i < p->n; i++)
        ck_assert_msg(memcmp(&p->g[i], &want[i], sizeof(float)) == 0, "%s element %zu: %.9g != %.9g",
                      disc ? "disc" : "gen", i, p->g[i], want[i]);
    double mag = 0;
    for (size_t i = 0; i < p->n; i++) mag += fabs(want[i]);
    ck_assert(mag > 0); /* gradients that are all zero would prove nothing */
    *rec = (dt_grad_rec){0};
    for (int k = 0; k < 2; k++) dt_free(x[k]), dt_free(r[k]);
    dt_free(want), dt_free(recs), dt_free(scratch);
    if (disc) {
        dt_disc_ctx_free(&dc);
        dt_disc_free(&d);
    } else {
        dt_gen_ctx_free(&gc);
        dt_gen_free(&g);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gan");
    TCase *tc = tcase_create("nets");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, generator_gradients, 0, 3);
    tcase_add_loop_test(tc, generator_starts_as_identity, 0, 2);
    tcase_add_loop_test(tc, clamps_pass_inward_gradients, 0, 2);
    tcase_add_loop_test(tc, saturated_channels_come_back, 0, 2);
    tcase_add_test(tc, discriminator_gradients);
    tcase_add_test(tc, discriminator_input_gradient_alone);
    tcase_add_test(tc, middle_layers_match_naive);
    tcase_add_loop_test(tc, recorded_gradients_fold_to_backward_bits, 0, 2);
    suite_add_tcase(s, tc);
    int failed = dt_check_run(s);
    return failed ? 1 : 0;
}
