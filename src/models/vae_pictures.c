/* Pictures of a trained VAE (rank 0): reconstructions, prior samples, the
 * latent plane scattered by digit and by color, decodings over the plane. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/plot.h"
#include "dtrain/report.h"
#include "dtrain/vae_analysis.h"
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
    warn_if(dt_png_grid(path, grid, rows * COLS, 3, 28, 28, COLS, 2, "test images and their reconstructions", labels,
                        NULL));
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

/* z layout of every variant: [continuous (2) if any | categorical (N*K) if any] */
typedef struct {
    int cont, cat, zc; /* has a continuous part, a categorical part; where the latter starts */
} zlayout;

static zlayout layout_of(const dt_vae *m)
{
    zlayout l = {0, 0, 0};
    for (int k = 0; k < m->nstats; k++) {
        if (strcmp(m->stat_name[k], "mu") == 0) l.cont = 1;
        if (strcmp(m->stat_name[k], "q") == 0) l.cat = 1;
    }
    l.zc = l.cont ? 2 : 0;
    return l;
}

/* one-hot categories codes (N) into z at the categorical columns */
static void put_codes(const dt_vae *m, zlayout l, float *z, const uint8_t *codes)
{
    int N = m->opts.N, K = m->opts.K;
    memset(z + l.zc, 0, sizeof(float) * (size_t)(N * K));
    for (int v = 0; v < N; v++) z[l.zc + v * K + codes[v]] = 1.0f;
}

static void prior_samples(dt_vae *m, const char *dir)
{
    enum { S = 64 };
    zlayout l = layout_of(m);
    float *z = dt_alloc_floats((size_t)S * m->Z), *imgs = dt_alloc_floats((size_t)S * DT_IMG);
    float std = l.cat ? m->opts.sample_std : 1.0f;
    for (int i = 0; i < S; i++) {
        float *zi = z + (size_t)i * m->Z;
        if (l.cont) {
            dt_rand_normal(zi, 2, (dt_stream){m->opts.seed, DT_RNG_SAMPLE, 0, (uint64_t)i});
            zi[0] *= std;
            zi[1] *= std;
        }
        if (l.cat) {
            uint8_t codes[64];
            for (int v = 0; v < m->opts.N; v++)
                codes[v] = (uint8_t)(dt_rand_u64((dt_stream){m->opts.seed, DT_RNG_SAMPLE, 1, (uint64_t)i}, (uint64_t)v) %
                                     (uint64_t)m->opts.K);
            put_codes(m, l, zi, codes);
        }
    }
    decode_all(m, z, S, imgs);
    char title[96];
    if (l.cont && l.cat)
        snprintf(title, sizeof title, "samples: random categories, continuous part ~ N(0, %g^2)", std);
    else if (l.cat)
        snprintf(title, sizeof title, "samples: a random category for each variable");
    else
        snprintf(title, sizeof title, "samples from the prior N(0, I)");
    char *p = dt_path_join(dir, "samples.png");
    warn_if(dt_png_grid(p, imgs, S, 3, 28, 28, 8, 2, title, NULL, NULL));
    dt_free(p);
    dt_free(z);
    dt_free(imgs);
}

/* the most frequent category of each variable: the code the others are held at */
static void modal_codes(const dt_cat_analysis *a, uint8_t *codes)
{
    for (int v = 0; v < a->N; v++) {
        long best = -1;
        for (int c = 0; c < a->K; c++) {
            long s = 0;
            for (int d = 0; d < 10; d++) s += a->by_digit[((size_t)v * a->K + c) * 10 + d];
            if (s > best) best = s, codes[v] = (uint8_t)c;
        }
    }
}

void dt_vae_plane_codes(float *z, const dt_vae *m, const dt_cat_analysis *a, const float lo[2], const float hi[2],
                        int G)
{
    zlayout l = layout_of(m);
    DT_ASSERT(l.cont && G >= 2 && m->opts.N <= 64);
    uint8_t codes[64] = {0};
    if (l.cat && a) modal_codes(a, codes);
    memset(z, 0, sizeof(float) * (size_t)G * G * m->Z);
    for (int r = 0; r < G; r++)
        for (int c = 0; c < G; c++) {
            float *zi = z + (size_t)(r * G + c) * m->Z;
            zi[0] = lo[0] + (hi[0] - lo[0]) * (float)c / (G - 1);
            zi[1] = hi[1] - (hi[1] - lo[1]) * (float)r / (G - 1); /* z2 grows upwards */
            if (l.cat) put_codes(m, l, zi, codes);
        }
}

/* v with one decimal, never "-0.0" */
static void value_label(char *buf, size_t cap, const char *prefix, float v)
{
    snprintf(buf, cap, "%s%.1f", prefix, fabsf(v) < 0.05f ? 0.0f : v);
}

/* "var 1: NMI color 0.92, digit 0.10": which variable, and what it tells of the labels */
static void var_label(char *buf, size_t cap, const dt_cat_analysis *a, int v)
{
    snprintf(buf, cap, "var %d: NMI color %.2f, digit %.2f", v, a->nmi_color[v], a->nmi_digit[v]);
}

/* labels "0" .. "K-1", each in its own 12 bytes of buf */
static void category_labels(const char **labels, char (*buf)[12], int K)
{
    for (int c = 0; c < K; c++) {
        snprintf(buf[c], 12, "%d", c);
        labels[c] = buf[c];
    }
}

static void latent_plane(dt_vae *m, const float *mu, const uint8_t *digits, const uint8_t *colors, size_t N,
                         const dt_cat_analysis *ca, const char *dir)
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
    float *z = dt_alloc_floats((size_t)G * G * m->Z), *imgs = dt_alloc_floats((size_t)G * G * DT_IMG);
    dt_vae_plane_codes(z, m, ca, lo, hi, G);
    decode_all(m, z, G * G, imgs);
    char rl[G][24], cl[G][16];
    const char *rows[G], *cols[G];
    for (int i = 0; i < G; i++) {
        value_label(rl[i], sizeof rl[i], "z2 = ", z[(size_t)i * G * m->Z + 1]);
        value_label(cl[i], sizeof cl[i], "", z[(size_t)i * m->Z]);
        rows[i] = rl[i], cols[i] = cl[i];
    }
    const char *title = layout_of(m).cat
                            ? "decodings: z1 along columns, z2 along rows; categories at their most frequent"
                            : "decodings over the test set's range: z1 along columns, z2 along rows";
    char *p3 = dt_path_join(dir, "latent_grid.png");
    warn_if(dt_png_grid(p3, imgs, G * G, 3, 28, 28, G, 1, title, rows, cols));
    dt_free(p3);
    dt_free(z);
    dt_free(imgs);
}

/* rows = variables, columns = categories: decoding of each category of each
 * variable, the other variables at their most frequent category (continuous part at 0) */
static void categories(dt_vae *m, const dt_cat_analysis *a, const char *dir)
{
    int N = a->N, K = a->K;
    zlayout l = layout_of(m);
    float *z = dt_alloc_floats((size_t)N * K * m->Z), *imgs = dt_alloc_floats((size_t)N * K * DT_IMG);
    uint8_t base[64], codes[64];
    modal_codes(a, base);
    char(*rl)[48] = dt_alloc(48 * (size_t)N), (*cl)[12] = dt_alloc(12 * (size_t)K);
    const char **rows = dt_alloc(sizeof(char *) * (size_t)N), **cols = dt_alloc(sizeof(char *) * (size_t)K);
    for (int v = 0; v < N; v++) {
        for (int c = 0; c < K; c++) {
            memcpy(codes, base, (size_t)N);
            codes[v] = (uint8_t)c;
            put_codes(m, l, z + ((size_t)v * K + c) * m->Z, codes);
        }
        var_label(rl[v], sizeof rl[v], a, v);
        rows[v] = rl[v];
    }
    category_labels(cols, cl, K);
    decode_all(m, z, N * K, imgs);
    char *p = dt_path_join(dir, "categories.png");
    warn_if(dt_png_grid(p, imgs, N * K, 3, 28, 28, K, 2,
                        l.cont ? "each category of each variable; the others at their most frequent, z1 = z2 = 0"
                               : "each category of each variable; the others at their most frequent",
                        rows, cols));
    dt_free(rows);
    dt_free(cols);
    dt_free(rl);
    dt_free(cl);
    dt_free(p);
    dt_free(z);
    dt_free(imgs);
}

/* jvae: rows = categories of the variable most tied to digit, columns = a
 * traversal of z1 then of z2 (-2..2), the other variables held fixed */
static void traversal(dt_vae *m, const dt_cat_analysis *a, const char *dir)
{
    enum { T = 7 };
    int K = a->K, v = 0;
    for (int i = 1; i < a->N; i++)
        if (a->nmi_digit[i] > a->nmi_digit[v]) v = i;
    zlayout l = layout_of(m);
    int n = K * 2 * T;
    float *z = dt_alloc_floats((size_t)n * m->Z), *imgs = dt_alloc_floats((size_t)n * DT_IMG);
    uint8_t codes[64];
    modal_codes(a, codes);
    for (int c = 0; c < K; c++) {
        codes[v] = (uint8_t)c;
        for (int t = 0; t < 2 * T; t++) {
            float *zi = z + ((size_t)c * 2 * T + t) * m->Z;
            zi[t / T] = -2.0f + 4.0f * (float)(t % T) / (T - 1);
            put_codes(m, l, zi, codes);
        }
    }
    decode_all(m, z, n, imgs);
    char(*rl)[24] = dt_alloc(24 * (size_t)K), cl[2 * T][16];
    const char **rows = dt_alloc(sizeof(char *) * (size_t)K), *cols[2 * T];
    for (int c = 0; c < K; c++) {
        snprintf(rl[c], sizeof rl[c], "var %d = %d", v, c);
        rows[c] = rl[c];
    }
    for (int t = 0; t < 2 * T; t++) {
        value_label(cl[t], sizeof cl[t], t < T ? "z1\n" : "z2\n", -2.0f + 4.0f * (float)(t % T) / (T - 1));
        cols[t] = cl[t];
    }
    char title[128];
    snprintf(title, sizeof title, "each category of variable %d (NMI digit %.2f), z1 then z2 from -2 to 2", v,
             a->nmi_digit[v]);
    char *p = dt_path_join(dir, "traversal.png");
    warn_if(dt_png_grid(p, imgs, n, 3, 28, 28, 2 * T, 2, title, rows, cols));
    dt_free(rows);
    dt_free(rl);
    dt_free(p);
    dt_free(z);
    dt_free(imgs);
}

/* Test images encoded, one latent changed, decoded: for the variable most tied
 * to color and the one most tied to digit (one variable when it is both),
 * every category in turn. */
static void steering(dt_vae *m, dt_split *test, float *const *stats, const uint8_t *codes_all,
                     const dt_cat_analysis *a, const char *dir)
{
    enum { IMGS = 4 };
    int N = a->N, K = a->K, cols = 2 + K;
    zlayout l = layout_of(m);
    int vc = 0, vd = 0;
    for (int i = 1; i < N; i++) {
        if (a->nmi_color[i] > a->nmi_color[vc]) vc = i;
        if (a->nmi_digit[i] > a->nmi_digit[vd]) vd = i;
    }
    int vars[2] = {vc, vd}, nvars = vd != vc ? 2 : 1, rows = IMGS * nvars;
    float *grid = dt_alloc_floats((size_t)rows * cols * DT_IMG), *z = dt_alloc_floats((size_t)cols * m->Z);
    uint8_t *bytes = dt_alloc(DT_IMG);
    char(*rl)[48] = dt_alloc(48 * (size_t)rows), (*cl)[12] = dt_alloc(12 * (size_t)cols);
    const char **rlab = dt_alloc(sizeof(char *) * (size_t)rows), **clab = dt_alloc(sizeof(char *) * (size_t)cols);
    for (int r = 0; r < rows; r++) {
        int img = r % IMGS, v = vars[r / IMGS];
        uint32_t idx = (uint32_t)img;
        if (dt_split_read(test, &idx, 1, bytes, NULL, NULL) < 0) warn_if(-1);
        float *row = grid + (size_t)r * cols * DT_IMG;
        dt_bytes_to_float(row, bytes, DT_IMG);
        uint8_t codes[64];
        for (int c = -1; c < K; c++) { /* -1: the image's own code (reconstruction) */
            float *zi = z + (size_t)(c + 1) * m->Z;
            memcpy(codes, codes_all + (size_t)img * N, (size_t)N);
            if (c >= 0) codes[v] = (uint8_t)c;
            if (l.cont) memcpy(zi, stats[0] + (size_t)img * 2, 2 * sizeof(float));
            put_codes(m, l, zi, codes);
        }
        decode_all(m, z, K + 1, row + DT_IMG);
        var_label(rl[r], sizeof rl[r], a, v);
        rlab[r] = rl[r];
    }
    clab[0] = "input";
    clab[1] = "rec.";
    category_labels(clab + 2, cl + 2, K);
    char *p = dt_path_join(dir, "steering.png");
    warn_if(dt_png_grid(p, grid, rows * cols, 3, 28, 28, cols, 2,
                        "test images, reconstructed, then with the row's variable set to each category",
                        rlab, clab));
    dt_free(rlab);
    dt_free(clab);
    dt_free(rl);
    dt_free(cl);
    dt_free(p);
    dt_free(bytes);
    dt_free(grid);
    dt_free(z);
}

void dt_vae_pictures(dt_vae *m, dt_split *test, float *const *stats, const uint8_t *digits, const uint8_t *colors,
                     size_t N, const char *dir, const dt_cat_analysis *ca, const uint8_t *codes)
{
    reconstructions(m, test, N, dir);
    prior_samples(m, dir);
    zlayout l = layout_of(m);
    if (l.cont) latent_plane(m, stats[0], digits, colors, N, ca, dir);
    if (l.cat && ca) {
        categories(m, ca, dir);
        steering(m, test, stats, codes, ca, dir);
        if (l.cont) traversal(m, ca, dir);
    }
}
