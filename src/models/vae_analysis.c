/* What the categorical latents captured: for every variable, the table of its
 * most likely category against digit and against color over the test set, and
 * the normalized mutual information of the variable with each. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/data.h"
#include "dtrain/report.h"
#include "dtrain/vae_analysis.h"

void dt_cat_argmax(uint8_t *codes, const float *q, size_t n, int N, int K)
{
    if (N < 1 || K < 1 || K > 256)
        DT_FATAL("dt_cat_argmax: %d variables of %d categories (need N >= 1, K 1..256)", N, K);
    for (size_t i = 0; i < n * (size_t)N; i++) {
        const float *r = q + i * (size_t)K;
        int best = 0;
        for (int k = 1; k < K; k++)
            if (r[k] > r[best]) best = k;
        codes[i] = (uint8_t)best;
    }
}

static double entropy(const double *p, int n)
{
    double h = 0;
    for (int i = 0; i < n; i++)
        if (p[i] > 0) h -= p[i] * log(p[i]);
    return h;
}

/* NMI = I(X;Y) / sqrt(H(X) H(Y)) from a joint count table (nx, ny) */
static double nmi(const long *t, int nx, int ny)
{
    double total = 0, px[256] = {0}, py[16] = {0}, I = 0;
    for (int i = 0; i < nx * ny; i++) total += (double)t[i];
    if (total <= 0) return 0;
    for (int x = 0; x < nx; x++)
        for (int y = 0; y < ny; y++) {
            double p = (double)t[x * ny + y] / total;
            px[x] += p;
            py[y] += p;
        }
    for (int x = 0; x < nx; x++)
        for (int y = 0; y < ny; y++) {
            double p = (double)t[x * ny + y] / total;
            if (p > 0) I += p * log(p / (px[x] * py[y]));
        }
    double hx = entropy(px, nx), hy = entropy(py, ny);
    return hx > 0 && hy > 0 ? I / sqrt(hx * hy) : 0;
}

void dt_cat_analyze(dt_cat_analysis *a, const uint8_t *codes, const uint8_t *digits, const uint8_t *colors,
                    size_t n, int N, int K)
{
    /* the tables below are indexed by these: a value out of range is a bug upstream */
    if (N < 1 || K < 1 || K > 256)
        DT_FATAL("dt_cat_analyze: %d variables of %d categories (need N >= 1, K 1..256)", N, K);
    for (size_t i = 0; i < n; i++) {
        if (digits[i] >= 10 || colors[i] >= 10)
            DT_FATAL("dt_cat_analyze: image %zu has digit %d, color %d (need 0..9)", i, digits[i], colors[i]);
        for (int v = 0; v < N; v++)
            if (codes[i * (size_t)N + (size_t)v] >= K)
                DT_FATAL("dt_cat_analyze: image %zu, variable %d has category %d of %d", i, v,
                         codes[i * (size_t)N + (size_t)v], K);
    }
    memset(a, 0, sizeof *a);
    a->N = N;
    a->K = K;
    a->by_digit = dt_alloc(sizeof(long) * (size_t)N * K * 10);
    a->by_color = dt_alloc(sizeof(long) * (size_t)N * K * 10);
    a->nmi_digit = dt_alloc(sizeof(double) * (size_t)N);
    a->nmi_color = dt_alloc(sizeof(double) * (size_t)N);
    a->in_use = dt_alloc(sizeof(int) * (size_t)N);
    for (size_t i = 0; i < n; i++)
        for (int v = 0; v < N; v++) {
            int c = codes[i * (size_t)N + (size_t)v];
            a->by_digit[((size_t)v * K + c) * 10 + digits[i]]++;
            a->by_color[((size_t)v * K + c) * 10 + colors[i]]++;
        }
    a->all_in_use = 1;
    for (int v = 0; v < N; v++) {
        const long *td = a->by_digit + (size_t)v * K * 10;
        a->nmi_digit[v] = nmi(td, K, 10);
        a->nmi_color[v] = nmi(a->by_color + (size_t)v * K * 10, K, 10);
        for (int c = 0; c < K; c++) {
            long s = 0;
            for (int d = 0; d < 10; d++) s += td[c * 10 + d];
            a->in_use[v] += s > 0;
        }
        if (a->in_use[v] < K) a->all_in_use = 0;
    }
}

void dt_cat_analysis_free(dt_cat_analysis *a)
{
    dt_free(a->by_digit);
    dt_free(a->by_color);
    dt_free(a->nmi_digit);
    dt_free(a->nmi_color);
    dt_free(a->in_use);
}

static void table(FILE *f, const long *t, int K, const char *what, const char *const *names)
{
    fprintf(f, "| category |");
    for (int d = 0; d < 10; d++) fprintf(f, " %s |", names[d]);
    fprintf(f, "\n|---|");
    for (int d = 0; d < 10; d++) fprintf(f, "---:|");
    fprintf(f, "\n");
    for (int c = 0; c < K; c++) {
        fprintf(f, "| %d |", c);
        for (int d = 0; d < 10; d++) fprintf(f, " %ld |", t[c * 10 + d]);
        fprintf(f, "\n");
    }
    fprintf(f, "\n(test images whose most likely category is the row, by %s)\n\n", what);
}

int dt_cat_analysis_write(const dt_cat_analysis *a, const char *model, const char *dir)
{
    static const char *const digit_names[10] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"};
    char *md = dt_path_join(dir, "latents.md"), *csv = dt_path_join(dir, "latent_mi.csv");
    FILE *f = fopen(md, "w"), *c = fopen(csv, "w");
    int rc = 0;
    if (!f || !c) rc = dt_seterr("cannot write %s", !f ? md : csv);
    if (f && c) {
        fprintf(f, "# What the categorical latents of the %s captured\n\n", model);
        fprintf(f, "| variable | categories in use | NMI with digit | NMI with color |\n|---|---:|---:|---:|\n");
        fprintf(c, "model,variable,categories_in_use,K,nmi_digit,nmi_color\n");
        for (int v = 0; v < a->N; v++) {
            fprintf(f, "| %d | %d of %d | %.3f | %.3f |\n", v, a->in_use[v], a->K, a->nmi_digit[v], a->nmi_color[v]);
            fprintf(c, "%s,%d,%d,%d,%.6f,%.6f\n", model, v, a->in_use[v], a->K, a->nmi_digit[v], a->nmi_color[v]);
        }
        fprintf(f, "\nNMI = I(variable; label) / sqrt(H(variable) H(label)), from each test image's most "
                   "likely category: 1 means the variable determines the label, 0 that it says nothing of it.\n\n");
        for (int v = 0; v < a->N; v++) {
            fprintf(f, "## Variable %d against digit\n\n", v);
            table(f, a->by_digit + (size_t)v * a->K * 10, a->K, "digit", digit_names);
            fprintf(f, "## Variable %d against color\n\n", v);
            table(f, a->by_color + (size_t)v * a->K * 10, a->K, "color", dt_palette_names);
        }
    }
    if (f && fclose(f) != 0) rc = dt_seterr("cannot write %s", md);
    if (c && fclose(c) != 0) rc = dt_seterr("cannot write %s", csv);
    dt_free(md);
    dt_free(csv);
    return rc;
}
