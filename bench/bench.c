/* dtrain-bench: where the time of a VAE training step goes.
 *
 *   mpirun -np P build/dtrain-bench [--batch 128] [--steps 40] [--threads T]
 *
 * Times forward+backward, the gradient exchange and the Adam step of a VAE
 * (--model vae|dvae|jvae) on random images (no I/O), counts the step's FLOPs from the
 * layer shapes, and times cblas_sgemm alone on exactly the step's products.
 * Prints figures; asserts nothing. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/dist.h"
#include "dtrain/train.h"
#include "dtrain/vae.h"
#include "dtrain/vae_run.h"

/* the step's products: forward y = x W^T, backward dW += dy^T x, dx = dy W */
typedef struct {
    int in, out;
} layer;

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

int main(int argc, char **argv)
{
    dt_dist_init(&argc, &argv);
    size_t batch = 128;
    int steps = 40, threads = 0;
    const char *model = "vae";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        if (!strcmp(argv[i], "--batch")) batch = (size_t)atol(argv[i + 1]);
        if (!strcmp(argv[i], "--steps")) steps = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--threads")) threads = atoi(argv[i + 1]);
    }
    threads = dt_threads_setup(threads);
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
    double t_comp = 0, t_step = 0, t_all = 0;
    for (int s = -3; s < steps; s++) {
        if (s == 0) t_comp = t_step = 0;
        dt_barrier();
        double t0 = dt_now(), sums[DT_MAX_TERMS] = {0};
        dt_vae_forward(m, B, gidx, (uint64_t)(s + 3), 0, sums);
        dt_vae_backward(m, B, 1.0f / (float)batch);
        double t1 = dt_now();
        dt_train_step(&adam, &m->p); /* gradient exchange + Adam */
        double t2 = dt_now();
        t_comp += t1 - t0;
        t_step += t2 - t1;
        if (s == 0) t_all = t0;
    }
    double wall = (dt_now() - t_all) / steps;
    double per[2] = {t_comp / steps, t_step / steps};
    dt_allreduce_max_d(per, 2);

    /* the step's products on this rank's share, through sgemm alone */
    const layer ls[6] = {{DT_IMG, 512}, {512, 256}, {256, m->H}, {m->Z, 256}, {256, 512}, {512, DT_IMG}};
    double flops = 0;
    double t_gemm = sgemm_only(ls, 6, B, steps, &flops);
    double g[2] = {t_gemm, 0};
    dt_allreduce_max_d(g, 1);
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
        printf("  images/s (no I/O)        %.0f\n", (double)batch / wall);
        printf("  compute FLOP rate        %.1f GFLOP/s per rank; sgemm alone on the same shapes %.1f GFLOP/s"
               " -> %.0f%%\n",
               step_rate, gemm_rate, 100.0 * step_rate / gemm_rate);
        printf("  allreduce + Adam         %.1f%% of the step\n", 100.0 * per[1] / wall);
        printf("  peak RSS (max over ranks) %.1f MB\n", rss / 1e6);
    }
    dt_free(gidx);
    dt_vae_free(m);
    dt_dist_finalize();
    return 0;
}
