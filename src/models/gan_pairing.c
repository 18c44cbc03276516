/* The CycleGAN's label-free color pairing and health figures (see
 * include/dtrain/gan_pairing.h). */
#include "dtrain/gan_pairing.h"

#include <math.h>
#include <string.h>

#include "dtrain/core.h"
#include "dtrain/data.h"

size_t dt_image_color(double c[3], const float *img)
{
    double s[3] = {0, 0, 0};
    size_t n = 0;
    for (size_t q = 0; q < DT_PLANE; q++) {
        float r = img[q], g = img[q + DT_PLANE], b = img[q + 2 * DT_PLANE];
        float m = fmaxf(r, fmaxf(g, b));
        if (m <= 0.3f) continue;
        s[0] += r / m, s[1] += g / m, s[2] += b / m, n++;
    }
    for (int k = 0; k < 3; k++) c[k] = n ? s[k] / (double)n : 0.0;
    return n;
}

static double dist2(const double *a, const float *b)
{
    double d = 0;
    for (int k = 0; k < 3; k++) d += (a[k] - b[k]) * (a[k] - b[k]);
    return d;
}

int dt_pairing_nearest(const dt_pairing *p, int X, const double c[3])
{
    int best = -1;
    double bd = DT_PAIR_MATCH2;
    for (int i = 0; i < p->nc[X]; i++) {
        double d = dist2(c, p->color[X][i]);
        if (d < bd) bd = d, best = i;
    }
    return best;
}

int dt_pairing_nearest_rgb(const dt_pairing *p, int X, const float *img)
{
    double s[3] = {0, 0, 0}, n = 0;
    for (size_t q = 0; q < DT_PLANE; q++) {
        float r = img[q], g = img[q + DT_PLANE], b = img[q + 2 * DT_PLANE];
        if (fmaxf(r, fmaxf(g, b)) <= 0.3f) continue;
        s[0] += r, s[1] += g, s[2] += b, n += 1;
    }
    if (n == 0) return -1;
    for (int k = 0; k < 3; k++) s[k] /= n;
    int best = -1;
    double bd = INFINITY;
    for (int i = 0; i < p->nc[X]; i++) {
        double d = dist2(s, p->color[X][i]);
        if (d < bd) bd = d, best = i;
    }
    return best;
}

void dt_pair_groups_init(dt_pair_groups *gr)
{
    memset(gr, 0, sizeof *gr);
    gr->shape_sum = dt_alloc(sizeof(double) * DT_PAIR_MAXC * DT_PLANE);
    memset(gr->shape_sum, 0, sizeof(double) * DT_PAIR_MAXC * DT_PLANE);
}

void dt_pair_groups_free(dt_pair_groups *gr)
{
    dt_free(gr->shape_sum);
    gr->shape_sum = NULL;
}

/* an image joins the first group whose first color is within DT_PAIR_TOL2 of
 * its own, or starts a group */
void dt_pair_groups_add(dt_pair_groups *gr, const float *img)
{
    double c[3];
    gr->images += 1;
    if (dt_image_color(c, img) == 0) {
        gr->unplaced += 1;
        return;
    }
    int k = 0;
    while (k < gr->n && dist2(c, gr->lead[k]) >= DT_PAIR_TOL2) k++;
    if (k == gr->n) {
        if (gr->n == DT_PAIR_MAXC) {
            gr->unplaced += 1;
            return;
        }
        for (int j = 0; j < 3; j++) gr->lead[k][j] = (float)c[j];
        gr->n++;
    }
    for (int j = 0; j < 3; j++) gr->color_sum[k][j] += c[j];
    gr->count[k] += 1;
    double *s = gr->shape_sum + (size_t)k * DT_PLANE;
    for (size_t q = 0; q < DT_PLANE; q++) s[q] += dt_pixel_intensity(img, q);
}

/* the groups that hold at least DT_PAIR_MIN_SHARE of the images: their colors
 * and shares into p (domain X), their mean shapes into shapes; the count */
static int keep_groups(dt_pairing *p, int X, const dt_pair_groups *gr, double *shapes)
{
    int n = 0;
    double kept = 0;
    for (int k = 0; k < gr->n; k++)
        if (gr->count[k] >= DT_PAIR_MIN_SHARE * gr->images) kept += gr->count[k];
    for (int k = 0; k < gr->n; k++) {
        if (gr->count[k] < DT_PAIR_MIN_SHARE * gr->images) continue;
        for (int j = 0; j < 3; j++) p->color[X][n][j] = (float)(gr->color_sum[k][j] / gr->count[k]);
        p->share[X][n] = gr->count[k] / kept;
        for (size_t q = 0; q < DT_PLANE; q++)
            shapes[(size_t)n * DT_PLANE + q] = gr->shape_sum[(size_t)k * DT_PLANE + q] / gr->count[k];
        n++;
    }
    p->nc[X] = n;
    return n;
}

int dt_pairing_from_groups(dt_pairing *p, const dt_pair_groups *a, const dt_pair_groups *b)
{
    memset(p, 0, sizeof *p);
    double *shapes = dt_alloc(sizeof(double) * 2 * DT_PAIR_MAXC * DT_PLANE);
    int na = keep_groups(p, 0, a, shapes), nb = keep_groups(p, 1, b, shapes + (size_t)DT_PAIR_MAXC * DT_PLANE);
    int rc = 0;
    if (na == 0 || nb == 0)
        rc = dt_seterr("color pairing: a domain's training images have no colored foreground");
    else if (na != nb)
        rc = dt_seterr("color pairing: domain A's images have %d colors and B's %d", na, nb);
    else if (a->n == DT_PAIR_MAXC || b->n == DT_PAIR_MAXC)
        rc = dt_seterr("color pairing: more than %d colors in a domain", DT_PAIR_MAXC - 1);
    if (rc == 0) {
        double cost[DT_PAIR_MAXC * DT_PAIR_MAXC] = {0};
        for (int i = 0; i < na; i++)
            for (int j = 0; j < nb; j++) {
                const double *u = shapes + (size_t)i * DT_PLANE, *v = shapes + ((size_t)DT_PAIR_MAXC + j) * DT_PLANE;
                double d = 0;
                for (size_t q = 0; q < DT_PLANE; q++) d += (u[q] - v[q]) * (u[q] - v[q]);
                cost[i * na + j] = d;
            }
        dt_assign_min_cost(cost, na, p->to[0]);
        for (int i = 0; i < na; i++) p->to[1][p->to[0][i]] = i, p->cost[i] = cost[i * na + p->to[0][i]];
        p->ok = 1;
    }
    dt_free(shapes);
    return rc;
}

/* Hungarian method with potentials (rows u, columns v), 1-based inside. */
void dt_assign_min_cost(const double *cost, int n, int *to)
{
    enum { N = 65 };
    DT_ASSERT(n > 0 && n < N);
    double u[N] = {0}, v[N] = {0}, minv[N];
    int p[N] = {0}, way[N] = {0}, used[N];
    for (int i = 1; i <= n; i++) {
        p[0] = i;
        int j0 = 0;
        for (int j = 0; j <= n; j++) minv[j] = INFINITY, used[j] = 0;
        do {
            used[j0] = 1;
            int i0 = p[j0], j1 = 0;
            double delta = INFINITY;
            for (int j = 1; j <= n; j++) {
                if (used[j]) continue;
                double cur = cost[(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
                if (cur < minv[j]) minv[j] = cur, way[j] = j0;
                if (minv[j] < delta) delta = minv[j], j1 = j;
            }
            for (int j = 0; j <= n; j++) {
                if (used[j])
                    u[p[j]] += delta, v[j] -= delta;
                else
                    minv[j] -= delta;
            }
            j0 = j1;
        } while (p[j0] != 0);
        do {
            int j1 = way[j0];
            p[j0] = p[j1];
            j0 = j1;
        } while (j0);
    }
    for (int j = 1; j <= n; j++) to[p[j] - 1] = j - 1;
}

void dt_pairing_tally(const dt_pairing *p, int T, const float *src, const float *out, size_t n, dt_pair_tally *t)
{
    for (size_t i = 0; i < n; i++) {
        double c[3], s[3];
        int k = dt_image_color(c, out + i * 3 * DT_PLANE) ? dt_pairing_nearest(p, T, c) : -1;
        int from = dt_image_color(s, src + i * 3 * DT_PLANE) ? dt_pairing_nearest(p, 1 - T, s) : -1;
        int right = from >= 0 && p->ok && p->to[1 - T][from] == dt_pairing_nearest_rgb(p, T, out + i * 3 * DT_PLANE);
        t->hist[k < 0 ? p->nc[T] : k] += 1;
        t->n += 1;
        t->agree += right;
        if (from >= 0) t->from_n[from] += 1, t->from_agree[from] += right;
    }
}

double dt_pairing_hist_tv(const dt_pairing *p, int T, const dt_pair_tally *t)
{
    int nc = p->nc[T];
    double total = 0, tv = 0;
    for (int k = 0; k <= nc; k++) total += t->hist[k];
    if (total <= 0) return 1.0;
    for (int k = 0; k < nc; k++) tv += fabs(t->hist[k] / total - p->share[T][k]);
    tv += t->hist[nc] / total; /* real images all have one of T's colors */
    return 0.5 * tv;
}
