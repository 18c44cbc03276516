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
 * With --conv: the CycleGAN's convolution layers (im2col + sgemm, forward and
 * backward) against sgemm alone on the same lowered products.
 * Prints figures; asserts nothing. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/conv.h"
#include "dtrain/core.h"
#include "dtrain/dist.h"
#include "dtrain/train.h"
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

/* ---- --conv: the CycleGAN's convolution layers against sgemm alone ---------- */

typedef struct {
    const char *name;
    int C, O, k, H; /* square H x H, stride 1, "same" padding */
} conv_layer;

/* the lowered products per image b, on batch-sized buffers as in training:
 * y_b (O,HW) = W (O,K) A_b (K,HW); dW (O,K) += y_b A_bᵀ; A_b = Wᵀ y_b */
static double conv_sgemm_only(const conv_layer *l, int B, int reps)
{
    size_t K = (size_t)(l->C * l->k * l->k), HW = (size_t)(l->H * l->H), O = (size_t)l->O;
    float *A = dt_alloc_floats((size_t)B * K * HW), *W = dt_alloc_floats(O * K);
    float *y = dt_alloc_floats((size_t)B * O * HW), *dW = dt_alloc_floats(O * K);
    dt_rand_uniform(A, (size_t)B * K * HW, (dt_stream){1, DT_RNG_SAMPLE, 3, 0});
    dt_rand_uniform(W, O * K, (dt_stream){1, DT_RNG_SAMPLE, 4, 0});
    int k = (int)K, hw = (int)HW, o = (int)O;
    double t0 = 0;
    for (int r = -2; r < reps; r++) {
        if (r == 0) t0 = dt_now();
        for (int b = 0; b < B; b++) {
            float *Ab = A + (size_t)b * K * HW, *yb = y + (size_t)b * O * HW;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, o, hw, k, 1, W, k, Ab, hw, 0, yb, hw);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, o, k, hw, 1, yb, hw, Ab, hw, 1, dW, k);
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, k, hw, o, 1, W, k, yb, hw, 0, Ab, hw);
        }
    }
    double t = (dt_now() - t0) / reps;
    float *all[] = {A, W, y, dW};
    for (size_t i = 0; i < 4; i++) dt_free(all[i]);
    return t;
}

/* dt_conv2d forward + backward (with the input gradient), as training runs them */
static double conv_layer_time(const conv_layer *l, int B, int reps)
{
    dt_params p;
    dt_conv2d c;
    dt_params_init(&p, "bench");
    dt_conv2d_declare(&c, &p, "c", l->C, l->O, l->k, l->k == 3 ? 1 : 0);
    dt_params_alloc(&p);
    dt_conv2d_bind(&c, &p);
    dt_conv2d_init(&c, 1, 0);
    size_t in = (size_t)B * l->C * l->H * l->H, out = (size_t)B * l->O * l->H * l->H;
    float *x = dt_alloc_floats(in), *dx = dt_alloc_floats(in), *y = dt_alloc_floats(out), *dy = dt_alloc_floats(out);
    float *cols = l->k == 1 ? NULL : dt_alloc_floats(dt_conv2d_cols_size(B, l->C, l->H, l->H, l->k));
    dt_rand_uniform(x, in, (dt_stream){1, DT_RNG_SAMPLE, 5, 0});
    dt_rand_uniform(dy, out, (dt_stream){1, DT_RNG_SAMPLE, 6, 0});
    double t0 = 0;
    for (int r = -2; r < reps; r++) {
        if (r == 0) t0 = dt_now();
        dt_conv2d_forward(y, cols, x, c.w, c.b, B, l->C, l->H, l->H, l->O, l->k, c.pad);
        dt_conv2d_backward(dx, c.dw, c.db, cols, dy, x, c.w, B, l->C, l->H, l->H, l->O, l->k, c.pad);
    }
    double t = (dt_now() - t0) / reps;
    float *all[] = {x, dx, y, dy, cols};
    for (size_t i = 0; i < 5; i++) dt_free(all[i]);
    dt_params_free(&p);
    return t;
}

static int bench_conv(int B, int reps)
{
    static const conv_layer ls[] = {
        {"generator conv1 3->32 3x3", 3, 32, 3, 28},     {"generator conv2 32->40 3x3", 32, 40, 3, 28},
        {"generator conv3 40->3 1x1", 40, 3, 1, 28},     {"discriminator conv1 3->32 3x3", 3, 32, 3, 28},
        {"discriminator conv2 32->64 3x3", 32, 64, 3, 14},
    };
    printf("  OpenBLAS                 %s, core %s\n", openblas_get_config(), openblas_get_corename());
    printf("  batch %d, forward + backward (weights and input gradients), GFLOP/s:\n", B);
    printf("  %-32s %9s %9s %6s\n", "layer", "dt_conv2d", "sgemm", "ratio");
    double tc = 0, tg = 0, ftot = 0;
    for (size_t i = 0; i < sizeof ls / sizeof *ls; i++) {
        const conv_layer *l = &ls[i];
        double flops = 3.0 * 2.0 * B * l->O * l->C * l->k * l->k * l->H * l->H;
        double a = conv_layer_time(l, B, reps), g = conv_sgemm_only(l, B, reps);
        printf("  %-32s %9.1f %9.1f %5.0f%%\n", l->name, flops / a / 1e9, flops / g / 1e9, 100.0 * g / a);
        tc += a, tg += g, ftot += flops;
    }
    printf("  %-32s %9.1f %9.1f %5.0f%%\n", "all five (time-weighted)", ftot / tc / 1e9, ftot / tg / 1e9, 100.0 * tg / tc);
    return 0;
}

int main(int argc, char **argv)
{
    dt_dist_init(&argc, &argv);
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
        int rc = dt_rank() == 0 ? bench_conv(64, steps / 4 > 2 ? steps / 4 : 2) : 0;
        dt_dist_finalize();
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
    dt_rand_uniform(m->x, (size_t)B * DT_IMG, (dt_stream){1, DT_RNG_SAMPLE, 0, (uint64_t)r});
    uint64_t *gidx = dt_alloc(sizeof(uint64_t) * (size_t)maxB);
    for (int i = 0; i < B; i++) gidx[i] = lo + (size_t)i;

    dt_vae_share(m);
    double t_comp = 0, t_step = 0, t_wait = 0, t_all = 0;
    double *share = dt_alloc(sizeof(double) * 2 * (size_t)steps); /* per step: exchange + Adam, whole step */
    for (int s = -3; s < steps; s++) {
        if (s == 0) t_comp = t_step = t_wait = 0;
        dt_barrier();
        double t0 = dt_now(), sums[DT_MAX_TERMS] = {0};
        dt_vae_forward(m, B, gidx, (uint64_t)(s + 3), 0, sums);
        dt_step st; /* gradient exchange + Adam; backward says which gradients are final */
        dt_step_begin(&st, NULL, &adam, &m->p);
        dt_vae_backward(m, B, 1.0f / (float)batch, &st);
        dt_step_end(&st);
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
    const char *stores = dt_train_stores(&m->p, st_ms);
    dt_allreduce_max_d(st_ms, 2);
    double rss = (double)dt_peak_rss();
    dt_allreduce_max_d(&rss, 1);

    if (r == 0) {
        printf("  OpenBLAS                 %s, core %s\n", openblas_get_config(), openblas_get_corename());
        double step_rate = flops / per[0] / 1e9, gemm_rate = flops / g[0] / 1e9;
        printf("  model                    %s (%s)\n", model, kind->title);
        printf("  ranks x threads          %d x %d, global batch %zu (local %d)\n", P, threads, batch, B);
        printf("  step                     %.2f ms (compute %.2f, gradient exchange + Adam %.2f)\n", wall * 1e3,
               per[0] * 1e3, per[1] * 1e3);
        printf("  gradient exchange        %s\n", P == 1 ? "none (one rank)" : dt_train_exchange(&m->p));
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
    dt_vae_free(m);
    dt_dist_finalize();
    return 0;
}
