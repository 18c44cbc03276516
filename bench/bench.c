/* dtrain-bench: where the time of a VAE training step goes.
 *
 *   mpirun -np P build/dtrain-bench [--batch 128] [--steps 40] [--threads T]
 *   build/dtrain-bench --conv [--threads T]
 *
 * Times forward+backward, the gradient exchange and the Adam step of a VAE
 * (--model vae|dvae|jvae) on random images (no I/O), counts the step's FLOPs from the
 * layer shapes, and times cblas_sgemm alone on exactly the step's products. With
 * node-shared params the step computes the weight gradients itself: that time
 * counts as compute (it is backward's arithmetic), the rest of the step (Adam,
 * its weight stores, waiting for other ranks) as exchange + Adam.
 * With --conv: the CycleGAN's step (the four networks' forwards and backwards of
 * one iteration) in images/s and GFLOP/s against cblas_sgemm on 1024^3 on the
 * same threads, its parts, and each convolution layer alone.
 * Prints figures; asserts nothing. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/conv.h"
#include "dtrain/core.h"
#include "dtrain/comm.h"
#include "dtrain/gan.h"
#include "dtrain/step.h"
#include "dtrain/vae.h"
#include "dtrain/vae_run.h"

/* the step's products: forward y = x W^T, backward dW += dy^T x, dx = dy W */
typedef struct {
    int in, out;
} layer;

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double sgemm_only(const layer *ls, int nl, int B, int reps, double *flops)
{
    size_t maxw = 0;
    for (int i = 0; i < nl; i++) {
        size_t w = (size_t)(ls[i].in > ls[i].out ? ls[i].in : ls[i].out);
        if (w > maxw) maxw = w;
    }
    float *x = dt_alloc_floats((size_t)B * maxw), *y = dt_alloc_floats((size_t)B * maxw);
    float *W = dt_alloc_floats(maxw * maxw), *dW = dt_alloc_floats(maxw * maxw);
    dt_rand_uniform(x, (size_t)B * maxw, (dt_stream){1, DT_RNG_SAMPLE, 1, 0});
    dt_rand_uniform(W, maxw * maxw, (dt_stream){1, DT_RNG_SAMPLE, 2, 0});
    *flops = 0;
    double t0 = 0;
    for (int r = -2; r < reps; r++) { /* two warm-up rounds */
        if (r == 0) t0 = dt_now();
        for (int i = 0; i < nl; i++) {
            int in = ls[i].in, out = ls[i].out;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, out, in, 1, x, in, W, in, 0, y, out);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, B, 1, y, out, x, in, 1, dW, in);
            if (i != 0) /* the first layer's input needs no gradient */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, B, in, out, 1, y, out, W, in, 0, x, in);
            if (r == 0) *flops += 2.0 * B * in * out * (i != 0 ? 3 : 2);
        }
    }
    double t = (dt_now() - t0) / reps;
    dt_free(x);
    dt_free(y);
    dt_free(W);
    dt_free(dW);
    return t;
}

/* ---- --conv: the CycleGAN step against sgemm on large square matrices --------- */

/* 1 to time the discriminator's input-only backward as training runs it */
#ifndef DT_BENCH_FULL_DISC
#define DT_BENCH_FULL_DISC 0
#endif

/* cblas_sgemm C (n,n) = A (n,n) B (n,n), seconds per product (median of reps) */
static double sgemm_square(int n, int reps)
{
    size_t nn = (size_t)n * n;
    float *A = dt_alloc_floats(nn), *B = dt_alloc_floats(nn), *C = dt_alloc_floats(nn);
    dt_rand_uniform(A, nn, (dt_stream){1, DT_RNG_SAMPLE, 3, 0});
    dt_rand_uniform(B, nn, (dt_stream){1, DT_RNG_SAMPLE, 4, 0});
    double ts[64];
    if (reps > 64) reps = 64;
    for (int r = -1; r < reps; r++) {
        double t0 = dt_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, A, n, B, n, 0, C, n);
        if (r >= 0) ts[r] = dt_now() - t0;
    }
    qsort(ts, (size_t)reps, sizeof *ts, cmp_double);
    dt_free(A), dt_free(B), dt_free(C);
    return ts[reps / 2];
}

/* FLOPs of a convolution's product: 2 B O C k k HW (each of forward, weight
 * gradient and input gradient costs one), the literal count whatever the
 * algorithm (Winograd does fewer multiplications, so its rate reads higher) */
static double conv_flops(int B, int C, int O, int k, int H) { return 2.0 * B * O * C * k * k * H * H; }

typedef struct {
    dt_gen G;
    dt_disc D;
    dt_gen_ctx c1, c2;
    dt_disc_ctx dc;
    float *x, *y, *d_rec, *d_fake_y, *d_fake_x, *d_adv, dl[64];
} gan_half;

/* one iteration's network work on both halves (SPEC model 4; as
 * src/models/cyclegan.c runs it without the optional terms): per half
 * G forward on y (fake_x) and on the partner's fake (the cycle), D forward on
 * fake_x and its input gradient, G backward of both, then D forward and
 * weight-gradient backward on real x and on fake_x. t accumulates per part:
 * 0 G forward, 1 G backward, 2 D forward, 3 D backward */
static void gan_iteration(gan_half *h, int B, double *t)
{
    double t0;
    for (int k = 0; k < 2; k++) {
        t0 = dt_now();
        dt_gen_forward(&h[k].G, &h[k].c2, h[k].y, B);
        t[0] += dt_now() - t0;
    }
    for (int k = 0; k < 2; k++) {
        gan_half *a = &h[k];
        t0 = dt_now();
        dt_gen_forward(&a->G, &a->c1, h[1 - k].c2.y, B);
        double t1 = dt_now();
        dt_disc_forward(&a->D, &a->dc, a->c2.y, B);
        double t2 = dt_now();
#if DT_BENCH_FULL_DISC
        dt_disc_backward(&a->D, &a->dc, a->c2.y, a->dl, a->d_adv, B);
#else
        dt_disc_backward_input(&a->D, &a->dc, a->c2.y, a->dl, a->d_adv, B);
#endif
        double t3 = dt_now();
        dt_gen_backward(&a->G, &a->c1, a->d_rec, a->d_fake_y, B);
        double t4 = dt_now();
        t[0] += t1 - t0, t[2] += t2 - t1, t[3] += t3 - t2, t[1] += t4 - t3;
    }
    for (int k = 0; k < 2; k++) {
        gan_half *a = &h[k];
        t0 = dt_now();
        dt_gen_backward(&a->G, &a->c2, a->d_fake_x, NULL, B);
        t[1] += dt_now() - t0;
        const float *in[2] = {a->x, a->c2.y};
        for (int j = 0; j < 2; j++) {
            t0 = dt_now();
            dt_disc_forward(&a->D, &a->dc, in[j], B);
            double t1 = dt_now();
            dt_disc_backward(&a->D, &a->dc, in[j], a->dl, NULL, B);
            t[2] += t1 - t0, t[3] += dt_now() - t1;
        }
    }
}

/* dt_conv2d forward + backward (with the input gradient) of one layer, seconds (median) */
static double conv_layer_time(int C, int O, int k, int H, int B, int reps)
{
    dt_params p;
    dt_conv2d c;
    dt_params_init(&p, "bench");
    dt_conv2d_declare(&c, &p, "c", C, O, k, k == 3 ? 1 : 0);
    dt_params_alloc(&p);
    dt_conv2d_bind(&c, &p);
    dt_conv2d_init(&c, 1, 0);
    size_t in = (size_t)B * C * H * H, out = (size_t)B * O * H * H;
    float *x = dt_alloc_floats(in), *dx = dt_alloc_floats(in), *y = dt_alloc_floats(out), *dy = dt_alloc_floats(out);
    float *cols = k == 1 ? NULL : dt_alloc_floats(dt_conv2d_cols_size(B, C, O, H, H, k));
    dt_rand_uniform(x, in, (dt_stream){1, DT_RNG_SAMPLE, 5, 0});
    dt_rand_uniform(dy, out, (dt_stream){1, DT_RNG_SAMPLE, 6, 0});
    double ts[64];
    if (reps > 64) reps = 64;
    for (int r = -2; r < reps; r++) {
        double t0 = dt_now();
        dt_conv2d_forward(y, cols, x, c.w, c.b, B, C, H, H, O, k, c.pad);
        dt_conv2d_backward(dx, c.dw, c.db, cols, dy, x, c.w, B, C, H, H, O, k, c.pad);
        if (r >= 0) ts[r] = dt_now() - t0;
    }
    float *all[] = {x, dx, y, dy, cols};
    for (size_t i = 0; i < 5; i++) dt_free(all[i]);
    dt_params_free(&p);
    qsort(ts, (size_t)reps, sizeof *ts, cmp_double);
    return ts[reps / 2];
}

static int bench_conv(int B, int reps, int threads)
{
    enum { IMG = 3 * 28 * 28 };
    /* the step's useful FLOPs (the products; element-wise work not counted) */
    double g1 = conv_flops(B, 3, 32, 3, 28), g2 = conv_flops(B, 32, 40, 3, 28), g3 = conv_flops(B, 40, 3, 1, 28);
    double d1 = conv_flops(B, 3, 32, 3, 28), d2 = conv_flops(B, 32, 64, 3, 14);
    double d3 = 2.0 * B * 3136 * 128 + 2.0 * B * 128;
    double Fg = g1 + g2 + g3, Fd = d1 + d2 + d3;
    /* per half: G 2 forwards, backward with and without dx; D 3 forwards,
     * 1 input-only backward, 2 weight-gradient backwards (conv1's dx skipped) */
    double part_f[4] = {2 * 2 * Fg, 2 * (4 * Fg - g1), 2 * 3 * Fd, 2 * (Fd + 2 * (2 * Fd - d1))};
    double flops = part_f[0] + part_f[1] + part_f[2] + part_f[3];

    gan_half h[2];
    for (int k = 0; k < 2; k++) {
        gan_half *a = &h[k];
        dt_gen_create(&a->G, "g", DT_GEN_RESIDUAL);
        dt_gen_init(&a->G, 1, (uint64_t)k);
        dt_disc_create(&a->D, "d");
        dt_disc_init(&a->D, 1, 2 + (uint64_t)k);
        dt_gen_ctx_create(&a->c1, B);
        dt_gen_ctx_create(&a->c2, B);
        dt_disc_ctx_create(&a->dc, B);
        float **bufs[] = {&a->x, &a->y, &a->d_rec, &a->d_fake_y, &a->d_fake_x, &a->d_adv};
        for (int j = 0; j < 6; j++) {
            *bufs[j] = dt_alloc_floats((size_t)B * IMG);
            dt_rand_uniform(*bufs[j], (size_t)B * IMG, (dt_stream){1, DT_RNG_SAMPLE, (uint64_t)(10 * k + j), 0});
        }
        for (int j = 0; j < B; j++) a->dl[j] = 0.01f * (float)(j % 7) - 0.03f;
    }
    double ts[64], parts[64][4];
    if (reps > 64) reps = 64;
    for (int r = -2; r < reps; r++) {
        double t[4] = {0}, t0 = dt_now();
        gan_iteration(h, B, t);
        if (r >= 0) ts[r] = dt_now() - t0, memcpy(parts[r], t, sizeof t);
    }
    double sorted[64];
    memcpy(sorted, ts, sizeof ts);
    qsort(sorted, (size_t)reps, sizeof *sorted, cmp_double);
    double step = sorted[reps / 2];
    int med = 0; /* the iteration with the median time, for its parts */
    for (int r = 0; r < reps; r++)
        if (ts[r] == step) med = r;
    double sq = sgemm_square(1024, reps), sq_rate = 2.0 * 1024 * 1024 * 1024 / sq / 1e9;

    printf("  products                 dtrain's %s kernels (DTRAIN_GEMM); the reference sgemm: %s, core %s, "
           "%d thread(s)\n",
           dt_gemm_isa(), openblas_get_config(), openblas_get_corename(), threads);
    printf("  CycleGAN step            2 x %d images (one iteration: 4 generator forwards+backwards, 6 discriminator"
           " forwards+backwards), median of %d\n",
           B, reps);
    printf("  step                     %.2f ms, %.0f images/s, %.1f GFLOP/s\n", step * 1e3, 2.0 * B / step,
           flops / step / 1e9);
    printf("  cblas_sgemm 1024^3       %.1f GFLOP/s -> the step at %.0f%% of it\n", sq_rate,
           100.0 * flops / step / 1e9 / sq_rate);
    static const char *pn[4] = {"generator forward", "generator backward", "discriminator forward",
                                "discriminator backward"};
    for (int i = 0; i < 4; i++)
        printf("  %-24s %7.2f ms %6.1f GFLOP/s\n", pn[i], parts[med][i] * 1e3, part_f[i] / parts[med][i] / 1e9);
    static const struct {
        const char *name;
        int C, O, k, H;
    } ls[] = {
        {"generator conv1 3->32 3x3", 3, 32, 3, 28},     {"generator conv2 32->40 3x3", 32, 40, 3, 28},
        {"generator conv3 40->3 1x1", 40, 3, 1, 28},     {"discriminator conv2 32->64 3x3", 32, 64, 3, 14},
    };
    printf("  per layer, batch %d, dt_conv2d forward + backward (weight and input gradients):\n", B);
    for (size_t i = 0; i < sizeof ls / sizeof *ls; i++) {
        double f = 3 * conv_flops(B, ls[i].C, ls[i].O, ls[i].k, ls[i].H);
        double t = conv_layer_time(ls[i].C, ls[i].O, ls[i].k, ls[i].H, B, reps);
        const char *path = dt_conv2d_winograd_fits(ls[i].C, ls[i].O, ls[i].H, ls[i].H, ls[i].k, ls[i].k == 3)
                               ? "winograd"
                               : "im2col";
        printf("  %-32s %7.2f ms %6.1f GFLOP/s  %s\n", ls[i].name, t * 1e3, f / t / 1e9, path);
    }
    for (int k = 0; k < 2; k++) {
        gan_half *a = &h[k];
        float *bufs[] = {a->x, a->y, a->d_rec, a->d_fake_y, a->d_fake_x, a->d_adv};
        for (int j = 0; j < 6; j++) dt_free(bufs[j]);
        dt_gen_ctx_free(&a->c1), dt_gen_ctx_free(&a->c2), dt_disc_ctx_free(&a->dc);
        dt_gen_free(&a->G), dt_disc_free(&a->D);
    }
    return 0;
}

int main(int argc, char **argv)
{
    dt_comm_init(&argc, &argv);
    size_t batch = 128;
    int steps = 40, threads = 0, conv = 0;
    const char *model = "vae";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--conv")) {
            conv = 1;
            continue;
        }
        if (i + 1 == argc) break;
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        if (!strcmp(argv[i], "--batch")) batch = (size_t)atol(argv[i + 1]);
        if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
        i++;
    }
    threads = dt_threads_setup(threads);
    if (conv) {
        int rc = dt_rank() == 0 ? bench_conv(64, steps / 4 > 3 ? steps / 4 : 3, threads) : 0;
        dt_comm_finalize();
        return rc;
    }
    int P = dt_size(), r = dt_rank();
    size_t lo = batch * (size_t)r / (size_t)P, hi = batch * (size_t)(r + 1) / (size_t)P;
    int B = (int)(hi - lo), maxB = (int)((batch + (size_t)P - 1) / (size_t)P);

    dt_vae_opts o;
    dt_vae_opts_default(&o);
    const dt_vae_kind *kind = dt_vae_kind_find(model);
    if (!kind) {
        fprintf(stderr, "dtrain-bench: unknown model %s\n", model);
        return 2;
    }
    dt_vae *m = dt_vae_create(kind, &o, maxB);
    dt_vae_init_params(m, 1);
    dt_adam adam;
    dt_adam_default(&adam, 1e-3f);
    dt_optim opt;
    dt_optim_init(&opt, NULL, &adam, &m->p, DT_VAE_WRITES_GRADS);
    dt_rand_uniform(m->x, (size_t)B * DT_IMG, (dt_stream){1, DT_RNG_SAMPLE, 0, (uint64_t)r});
    uint64_t *gidx = dt_alloc(sizeof(uint64_t) * (size_t)maxB);
    for (int i = 0; i < B; i++) gidx[i] = lo + (size_t)i;

    dt_vae_share(m, &opt);
    double t_comp = 0, t_step = 0, t_wait = 0, t_all = 0;
    double *share = dt_alloc(sizeof(double) * 2 * (size_t)steps); /* per step: exchange + Adam, whole step */
    for (int s = -3; s < steps; s++) {
        if (s == 0) t_comp = t_step = t_wait = 0;
        dt_barrier();
        double t0 = dt_now(), sums[DT_MAX_TERMS] = {0};
        dt_vae_forward(m, B, gidx, (uint64_t)(s + 3), 0, sums);
        dt_step st; /* gradient exchange + Adam; backward says which gradients are final */
        dt_step_begin(&st, &opt);
        dt_backward_hooks hooks = dt_step_hooks(&st);
        dt_vae_backward(m, B, 1.0f / (float)batch, &hooks);
        dt_step_end(&st);
        /* the losses over the ranks, as training sums them: exactly (the
         * same bits for any rank count), or with DTRAIN_REDUCE=plain as
         * doubles in MPI's order */
        if (opt.plain) {
            dt_allreduce_sum_d(sums, (size_t)kind->nparts + 1);
        } else {
            dt_xsum xs[DT_MAX_TERMS] = {0};
            dt_vae_xsums(m, B, xs);
            dt_comm_xsum(NULL, xs, (size_t)kind->nparts + 1);
        }
        double t2 = dt_now();
        double xa = st.secs - st.grad_secs; /* weight gradients are compute */
        t_comp += t2 - t0 - xa;
        t_step += xa;
        t_wait += st.wait_secs;
        if (s == 0) t_all = t0;
        if (s >= 0) share[2 * s] = xa, share[2 * s + 1] = t2 - t0;
    }
    double wall = (dt_now() - t_all) / steps;
    double per[3] = {t_comp / steps, t_step / steps, t_wait / steps};
    dt_allreduce_max_d(per, 3);
    /* the median over steps of each step's share (the slowest rank's exchange
     * time), which a burst of load on a shared machine moves less than the mean */
    dt_allreduce_max_d(share, 2 * (size_t)steps);
    for (int s = 0; s < steps; s++) share[s] = share[2 * s] / share[2 * s + 1];
    qsort(share, (size_t)steps, sizeof *share, cmp_double);
    double median_share = share[steps / 2];
    dt_free(share);

    /* the step's products on this rank's share, through sgemm alone */
    const layer ls[6] = {{DT_IMG, 512}, {512, 256}, {256, m->H}, {m->Z, 256}, {256, 512}, {512, DT_IMG}};
    double flops = 0;
    double t_gemm = sgemm_only(ls, 6, B, steps, &flops);
    double g[2] = {t_gemm, 0};
    dt_allreduce_max_d(g, 1);
    double st_ms[2] = {0, 0};
    const char *stores = dt_step_stores(&opt, st_ms);
    dt_allreduce_max_d(st_ms, 2);
    double rss = (double)dt_peak_rss();
    dt_allreduce_max_d(&rss, 1);

    if (r == 0) {
        printf("  products                 dtrain's %s kernels (DTRAIN_GEMM); the reference sgemm: %s, "
               "core %s\n",
               dt_gemm_isa(), openblas_get_config(), openblas_get_corename());
        double step_rate = flops / per[0] / 1e9, gemm_rate = flops / g[0] / 1e9;
        printf("  model                    %s (%s)\n", model, kind->title);
        printf("  ranks x threads          %d x %d, global batch %zu (local %d)\n", P, threads, batch, B);
        printf("  step                     %.2f ms (compute %.2f, gradient exchange + Adam %.2f)\n", wall * 1e3,
               per[0] * 1e3, per[1] * 1e3);
        printf("  gradient exchange        %s\n", P == 1 ? "none (one rank)" : dt_step_exchange(&opt));
        printf("  reduction                %s\n", opt.plain ? "plain (DTRAIN_REDUCE=plain: rank blocks summed)"
                                                           : "exact (the same bits for any rank count)");
        if (stores)
            printf("  Adam's weight stores     %s; per step through the caches %.2f ms, streamed %.2f ms"
                   " (slowest rank)\n",
                   stores, st_ms[0], st_ms[1]);
        printf("  images/s (no I/O)        %.0f\n", (double)batch / wall);
        printf("  compute FLOP rate        %.1f GFLOP/s per rank; sgemm alone on the same shapes %.1f GFLOP/s"
               " -> %.0f%%\n",
               step_rate, gemm_rate, 100.0 * step_rate / gemm_rate);
        printf("  allreduce + Adam         %.1f%% of the step (median over steps %.1f%%)", 100.0 * per[1] / wall,
               100.0 * median_share);
        if (stores) printf("; waiting for other ranks %.1f%% (most of any rank)", 100.0 * per[2] / wall);
        printf("\n");
        printf("  peak RSS (max over ranks) %.1f MB\n", rss / 1e6);
    }
    dt_free(gidx);
    dt_step_unshare(&opt);
    dt_vae_free(m);
    dt_comm_finalize();
    return 0;
}
