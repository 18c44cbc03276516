/* Pictures of a trained VAE (rank 0): reconstructions, prior samples, the
 * latent plane scattered by digit and by color, decodings over the plane. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/plot.h"
#include "dtrain/report.h"
#include "dtrain/vae_run.h"

static void warn_if(int rc)
{
    if (rc < 0) dt_warn("%s", dt_lasterr());
}

/* Decode n latent codes (n, Z) into imgs (n, 2352), in blocks of maxB. */
static void decode_all(dt_vae *m, const float *z, int n, float *imgs)
{
    for (int i = 0; i < n; i += m->maxB) {
        int B = n - i < m->maxB ? n - i : m->maxB;
        dt_vae_decode(m, z + (size_t)i * m->Z, B);
        memcpy(imgs + (size_t)i * DT_IMG, m->xhat, sizeof(float) * (size_t)B * DT_IMG);
    }
}

static void reconstructions(dt_vae *m, dt_split *test, size_t N, const char *dir)
{
    enum { COLS = 8, PAIRS = 4, N_IMG = COLS * PAIRS };
    int n = N < N_IMG ? (int)N : N_IMG;
    uint32_t idx[N_IMG];
    uint64_t gidx[N_IMG];
    uint8_t *bytes = dt_alloc((size_t)N_IMG * DT_IMG);
    for (int i = 0; i < n; i++) idx[i] = (uint32_t)i, gidx[i] = (uint64_t)i;
    if (dt_split_read(test, idx, (size_t)n, bytes, NULL, NULL) < 0) {
        warn_if(-1);
        dt_free(bytes);
        return;
    }
    float *grid = dt_alloc_floats((size_t)2 * N_IMG * DT_IMG);
    double sums[DT_MAX_TERMS] = {0};
    int done = 0;
    while (done < n) {
        int B = n - done < m->maxB ? n - done : m->maxB;
        dt_bytes_to_float(m->x, bytes + (size_t)done * DT_IMG, (size_t)B * DT_IMG);
        dt_vae_forward(m, B, gidx + done, 0, 1, sums);
        dt_sigmoid_forward(m->xhat, m->logits, (size_t)B * DT_IMG);
        for (int i = 0; i < B; i++) {
            int k = done + i, row = k / COLS, col = k % COLS;
            memcpy(grid + ((size_t)(2 * row) * COLS + col) * DT_IMG, m->x + (size_t)i * DT_IMG, sizeof(float) * DT_IMG);
            memcpy(grid + ((size_t)(2 * row + 1) * COLS + col) * DT_IMG, m->xhat + (size_t)i * DT_IMG,
                   sizeof(float) * DT_IMG);
        }
        done += B;
    }
    const char *labels[2 * PAIRS];
    for (int r = 0; r < 2 * PAIRS; r++) labels[r] = r % 2 ? "recon" : "input";
    char *path = dt_path_join(dir, "reconstructions.png");
    int rows = 2 * ((n + COLS - 1) / COLS);
    warn_if(dt_png_grid(path, grid, rows * COLS, 3, 28, 28, COLS, 2, "test images and their reconstructions", labels));
    dt_free(path);
    dt_free(grid);
    dt_free(bytes);
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* q-quantile of column c of a (n, w) array */
static float quantile(const float *a, size_t n, int w, int c, double q)
{
    float *t = dt_alloc_floats(n);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(a[i * (size_t)w + (size_t)c])) t[k++] = a[i * (size_t)w + (size_t)c];
    float v = 0;
    if (k) {
        qsort(t, k, sizeof(float), cmp_float);
        v = t[(size_t)(q * (double)(k - 1))];
    }
    dt_free(t);
    return v;
}

static void latent_plane(dt_vae *m, const float *mu, const uint8_t *digits, const uint8_t *colors, size_t N,
                         const char *dir)
{
    float *x = dt_alloc_floats(N), *y = dt_alloc_floats(N);
    for (size_t i = 0; i < N; i++) x[i] = mu[2 * i], y[i] = mu[2 * i + 1];
    static const char *const digit_names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    char *p1 = dt_path_join(dir, "latent_by_digit.png"), *p2 = dt_path_join(dir, "latent_by_color.png");
    warn_if(dt_plot_scatter(p1, x, y, digits, N, 10, NULL, digit_names, "test set mu, colored by digit", "z1", "z2"));
    warn_if(dt_plot_scatter(p2, x, y, colors, N, 10, dt_palette, dt_palette_names, "test set mu, colored by color",
                            "z1", "z2"));
    dt_free(p1);
    dt_free(p2);
    dt_free(x);
    dt_free(y);

    /* decodings over the part of the plane the test set occupies */
    enum { G = 16 };
    float lo[2], hi[2];
    for (int c = 0; c < 2; c++) {
        lo[c] = quantile(mu, N, 2, c, 0.01);
        hi[c] = quantile(mu, N, 2, c, 0.99);
        if (!(hi[c] > lo[c])) lo[c] -= 1, hi[c] += 1;
    }
    float *z = dt_alloc_floats((size_t)G * G * 2), *imgs = dt_alloc_floats((size_t)G * G * DT_IMG);
    for (int r = 0; r < G; r++)
        for (int c = 0; c < G; c++) {
            z[2 * (r * G + c)] = lo[0] + (hi[0] - lo[0]) * (float)c / (G - 1);
            z[2 * (r * G + c) + 1] = hi[1] - (hi[1] - lo[1]) * (float)r / (G - 1); /* z2 grows upwards */
        }
    decode_all(m, z, G * G, imgs);
    char title[128];
    snprintf(title, sizeof title, "decodings: z1 %.1f..%.1f (left to right), z2 %.1f..%.1f (bottom to top)", lo[0],
             hi[0], lo[1], hi[1]);
    char *p3 = dt_path_join(dir, "latent_grid.png");
    warn_if(dt_png_grid(p3, imgs, G * G, 3, 28, 28, G, 1, title, NULL));
    dt_free(p3);
    dt_free(z);
    dt_free(imgs);
}

static void prior_samples(dt_vae *m, const char *dir)
{
    enum { S = 64 };
    float *z = dt_alloc_floats((size_t)S * m->Z), *imgs = dt_alloc_floats((size_t)S * DT_IMG);
    dt_rand_normal(z, (size_t)S * m->Z, (dt_stream){m->opts.seed, DT_RNG_SAMPLE, 0, 0});
    decode_all(m, z, S, imgs);
    char *p = dt_path_join(dir, "samples.png");
    warn_if(dt_png_grid(p, imgs, S, 3, 28, 28, 8, 2, "samples from the prior N(0, I)", NULL));
    dt_free(p);
    dt_free(z);
    dt_free(imgs);
}

void dt_vae_pictures(dt_vae *m, dt_split *test, float *const *stats, const uint8_t *digits, const uint8_t *colors,
                     size_t N, const char *dir)
{
    reconstructions(m, test, N, dir);
    prior_samples(m, dir);
    if (m->kind->nstats > 0 && strcmp(m->kind->stats[0], "mu") == 0 && m->kind->stat_width(&m->opts, 0) == 2)
        latent_plane(m, stats[0], digits, colors, N, dir);
}
