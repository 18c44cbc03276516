/* gan_eval: the CycleGAN's color pairing, the sharing of its networks between
 * ranks, the evaluation of its translations, and its pictures. */
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
#include "dtrain/engine.h"
#include "gan_train.h"

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
void dt_gan_build_pairing(gan *g, dt_split *const *train)
{
    enum { BLK = 256 };
    int ok = 1;
    if (dt_rank() == 0) {
        dt_pair_groups gr[2];
        uint8_t *bytes = dt_alloc((size_t)BLK * DT_IMG);
        float *x = dt_alloc_floats((size_t)BLK * DT_IMG);
        uint32_t idx[BLK];
        for (int X = 0; X < 2; X++) dt_pair_groups_init(&gr[X]);
        for (int X = 0; X < 2 && ok; X++) {
            size_t n = dt_split_len(train[X]);
            for (size_t i = 0; i < n && ok; i += BLK) {
                size_t m = n - i < BLK ? n - i : BLK;
                for (size_t j = 0; j < m; j++) idx[j] = (uint32_t)(i + j);
                ok = dt_split_read(train[X], idx, m, bytes, NULL, NULL) == 0;
                if (!ok) break;
                dt_bytes_to_float(x, bytes, m * DT_IMG);
                for (size_t j = 0; j < m; j++) dt_pair_groups_add(&gr[X], x + j * DT_IMG);
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
void dt_gan_share_networks(gan *g, int moments)
{
    for (int X = 0; X < 2 && g->P > 1; X++) dt_bcast(g->E[X].p.w, g->E[X].p.n * sizeof(float), leader(g, X));
    for (int X = 0; X < 2; X++) {
        dt_params *ps[2] = {&g->G[X].p, &g->D[X].p};
        dt_adam *as[2] = {&g->aG[X], &g->aD[X]};
        dt_optim *os[2] = {&g->oG[X], &g->oD[X]};
        for (int k = 0; k < 2; k++) {
            if (moments && g->nhalves == 1 && g->h[0].X == X) dt_step_gather_moments(os[k]);
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

/* Translate every test image of domain S into the other domain (the generator
 * into T = 1 - S); rank blocks over all ranks, each image's scores summed
 * exactly (the same bits on any rank count). */
int dt_gan_evaluate(gan *g, dt_split *const *test, gan_eval *ev)
{
    double sums[4], counts[2] = {0, 0};
    dt_xsum xs[4] = {{{0}}};
    dt_pair_tally *tally = ev->tally;
    memset(tally, 0, sizeof ev->tally);
    int ok = 1;
    dt_gen_ctx *c = &g->h[0].c1;
    uint8_t *bytes = dt_alloc((size_t)g->maxB * DT_IMG), *digits = dt_alloc((size_t)g->maxB);
    float *x = dt_alloc_floats((size_t)g->maxB * DT_IMG);
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
            dt_bytes_to_float(x, bytes, n * DT_IMG);
            dt_gen_forward(&g->E[T], c, x, (int)n);
            for (size_t j = 0; j < n; j++) target[j] = g->mapping[T][digits[j] % 10];
            for (size_t j = 0; j < n; j++) {
                dt_xsum_add(&xs[2 * S], dt_color_accuracy(c->y + j * DT_IMG, target + j, 1));
                dt_xsum_add(&xs[2 * S + 1], dt_shape_correlation(x + j * DT_IMG, c->y + j * DT_IMG));
            }
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
    dt_comm_xsum(NULL, xs, 4);
    for (int k = 0; k < 4; k++) sums[k] = dt_xsum_value(&xs[k]);
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
void dt_gan_log_off_pairs(const gan *g, const gan_eval *ev)
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
void dt_gan_translation_grid(gan *g, dt_split *const *test, const char *dir)
{
    float *grid = dt_alloc_floats((size_t)6 * 10 * DT_IMG), *x = dt_alloc_floats((size_t)10 * DT_IMG);
    uint8_t *bytes = dt_alloc((size_t)10 * DT_IMG), digit;
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
        dt_bytes_to_float(x, bytes, (size_t)10 * DT_IMG);
        float *rows = grid + (size_t)S * 30 * DT_IMG;
        memcpy(rows, x, sizeof(float) * 10 * DT_IMG);
        dt_gen_forward(&g->E[1 - S], c, x, 10);
        memcpy(rows + (size_t)10 * DT_IMG, c->y, sizeof(float) * 10 * DT_IMG);
        memcpy(x, c->y, sizeof(float) * 10 * DT_IMG);
        dt_gen_forward(&g->E[S], c, x, 10);
        memcpy(rows + (size_t)20 * DT_IMG, c->y, sizeof(float) * 10 * DT_IMG);
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

void dt_gan_curves(const char *dir, const float *hist, int epochs)
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
