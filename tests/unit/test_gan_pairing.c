/* The label-free color pairing: the assignment against every permutation,
 * the grouping and pairing of two domains whose colors are a permutation of
 * each other, refusals, and the health figures. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "check_run.h"
#include "dtrain/core.h"
#include "dtrain/gan_pairing.h"

#define PLANE 784
#define IMG (3 * PLANE)

static double perm_cost(const double *c, int n, const int *to)
{
    double s = 0;
    for (int i = 0; i < n; i++) s += c[i * n + to[i]];
    return s;
}

/* the least cost over all permutations of 0..n-1 (Heap's algorithm) */
static double brute_min(const double *c, int n)
{
    int a[8], k[8] = {0};
    for (int i = 0; i < n; i++) a[i] = i;
    double best = perm_cost(c, n, a);
    for (int i = 1; i < n;) {
        if (k[i] < i) {
            int j = i % 2 ? k[i] : 0, t = a[j];
            a[j] = a[i], a[i] = t;
            double s = perm_cost(c, n, a);
            if (s < best) best = s;
            k[i]++, i = 1;
        } else
            k[i++] = 0;
    }
    return best;
}

START_TEST(assignment_is_minimal)
{
    float r[64];
    for (int trial = 0; trial < 200; trial++) {
        int n = 1 + trial % 7;
        dt_rand_uniform(r, (size_t)n * n, (dt_stream){7, DT_RNG_SAMPLE, (uint64_t)trial, 0});
        double c[64];
        for (int i = 0; i < n * n; i++) c[i] = trial % 3 ? r[i] : floorf(4 * r[i]); /* ties too */
        int to[8], seen[8] = {0};
        dt_assign_min_cost(c, n, to);
        for (int i = 0; i < n; i++) {
            ck_assert_int_ge(to[i], 0);
            ck_assert_int_lt(to[i], n);
            ck_assert_int_eq(seen[to[i]]++, 0);
        }
        ck_assert_double_eq_tol(perm_cost(c, n, to), brute_min(c, n), 1e-12);
    }
}
END_TEST

/* an image of "shape" s (a bar at a row that depends on s, intensity g along it)
 * painted in color c */
static void make_image(float *img, int s, const float c[3], float g, int jitter)
{
    memset(img, 0, sizeof(float) * IMG);
    int row = 2 + 2 * s + jitter;
    for (int x = 4 + s; x < 24; x++)
        for (int k = 0; k < 3; k++) img[k * PLANE + row * 28 + x] = g * c[k];
}

static const float PAL[10][3] = {{1, 0, 0}, {0, 1, 0}, {0, 0, 1}, {1, 1, 0}, {1, 0, 1},
                                 {0, 1, 1}, {1, .5f, 0}, {.5f, 0, 1}, {.5f, 1, 0}, {1, 1, 1}};

/* domain A paints shape d in PAL[d], B in PAL[perm[d]]; both hold every shape
 * in a different order and with jitter */
static void two_domains(dt_pair_groups *a, dt_pair_groups *b, const int *perm, int ncolors, int extra_b)
{
    float img[IMG];
    dt_pair_groups_init(a);
    dt_pair_groups_init(b);
    for (int i = 0; i < 300; i++) {
        int d = (i * 7) % ncolors;
        make_image(img, d, PAL[d], 0.4f + 0.6f * (float)(i % 5) / 4, i % 2);
        dt_pair_groups_add(a, img);
        int e = (i * 11 + 1) % ncolors;
        make_image(img, e, PAL[perm[e]], 0.5f + 0.5f * (float)(i % 3) / 2, (i / 3) % 2);
        dt_pair_groups_add(b, img);
    }
    if (extra_b) /* a color A does not have, on enough images to count */
        for (int i = 0; i < 30; i++) {
            make_image(img, i % ncolors, (const float[3]){.2f, .6f, 1}, 1, 0);
            dt_pair_groups_add(b, img);
        }
}

START_TEST(pairs_a_color_permutation)
{
    int perm[10];
    for (int d = 0; d < 10; d++) perm[d] = (d + 3) % 10;
    dt_pair_groups a, b;
    two_domains(&a, &b, perm, 10, 0);
    dt_pairing p;
    ck_assert_int_eq(dt_pairing_from_groups(&p, &a, &b), 0);
    ck_assert(p.ok);
    ck_assert_int_eq(p.nc[0], 10);
    ck_assert_int_eq(p.nc[1], 10);
    for (int d = 0; d < 10; d++) {
        double c[3] = {PAL[d][0], PAL[d][1], PAL[d][2]}, e[3] = {PAL[perm[d]][0], PAL[perm[d]][1], PAL[perm[d]][2]};
        int i = dt_pairing_nearest(&p, 0, c), j = dt_pairing_nearest(&p, 1, e);
        ck_assert_int_ge(i, 0);
        ck_assert_int_eq(p.to[0][i], j);
        ck_assert_int_eq(p.to[1][j], i);
        ck_assert_double_eq_tol(p.share[0][i], 0.1, 1e-12);
        for (int k = 0; k < 3; k++) ck_assert_double_eq_tol(p.color[0][i][k], PAL[d][k], 1e-6);
    }
    /* a color far from all of them is none of them */
    ck_assert_int_eq(dt_pairing_nearest(&p, 0, (const double[3]){.5, .5, .5}), -1);
    dt_pair_groups_free(&a);
    dt_pair_groups_free(&b);
}
END_TEST

START_TEST(refuses_unequal_colors)
{
    int perm[10];
    for (int d = 0; d < 10; d++) perm[d] = d;
    dt_pair_groups a, b;
    two_domains(&a, &b, perm, 6, 1);
    dt_pairing p;
    ck_assert_int_eq(dt_pairing_from_groups(&p, &a, &b), -1);
    ck_assert(!p.ok);
    ck_assert_msg(strstr(dt_lasterr(), "6 colors and B's 7") != NULL, "%s", dt_lasterr());
    dt_pair_groups_free(&a);
    dt_pair_groups_free(&b);
    /* a few stray images are noise, not a color */
    dt_pair_groups_init(&a);
    float img[IMG];
    for (int i = 0; i < 1000; i++) {
        make_image(img, 0, i == 500 ? PAL[4] : PAL[1], 1, 0);
        dt_pair_groups_add(&a, img);
    }
    dt_pairing q;
    ck_assert_int_eq(dt_pairing_from_groups(&q, &a, &a), 0);
    ck_assert_int_eq(q.nc[0], 1);
    dt_pair_groups_free(&a);
}
END_TEST

START_TEST(health_figures)
{
    int perm[10];
    for (int d = 0; d < 10; d++) perm[d] = (d + 3) % 10;
    dt_pair_groups a, b;
    two_domains(&a, &b, perm, 10, 0);
    dt_pairing p;
    ck_assert_int_eq(dt_pairing_from_groups(&p, &a, &b), 0);
    enum { N = 100 };
    float *src = dt_alloc_floats((size_t)N * IMG), *out = dt_alloc_floats((size_t)N * IMG);
    for (int mode = 0; mode < 3; mode++) {
        for (int i = 0; i < N; i++) {
            int d = i % 10;
            make_image(src + (size_t)i * IMG, d, PAL[d], 1, 0);
            /* 0: the right map; 1: the identity (B's colors, wrong places); 2: digit 1 in none of B's colors */
            const float *c = mode == 1 ? PAL[d] : mode == 2 && d == 1 ? (const float[3]){.2f, .6f, 1} : PAL[perm[d]];
            make_image(out + (size_t)i * IMG, d, c, 1, 0);
        }
        dt_pair_tally t;
        memset(&t, 0, sizeof t);
        dt_pairing_tally(&p, 1, src, out, N, &t);
        double tv = dt_pairing_hist_tv(&p, 1, &t);
        const double want_tv[3] = {0, 0, 0.1}, want_agree[3] = {N, 0, N - N / 10};
        ck_assert_double_eq_tol(tv, want_tv[mode], 1e-12);
        ck_assert_double_eq(t.n, N);
        ck_assert_double_eq(t.agree, want_agree[mode]);
        int green = dt_pairing_nearest(&p, 0, (const double[3]){0, 1, 0}); /* digit 1's color in A */
        ck_assert_double_eq(t.from_n[green], N / 10);
        ck_assert_double_eq(t.from_agree[green], mode == 0 ? N / 10 : 0);
    }
    /* a dim violet short of red: its chroma is still violet's, its mean RGB is nearer blue */
    make_image(out, 7, (const float[3]){.33f, 0, 1}, 0.6f, 0);
    double c[3];
    dt_image_color(c, out);
    int violet = dt_pairing_nearest(&p, 0, (const double[3]){.5, 0, 1});
    int blue = dt_pairing_nearest(&p, 0, (const double[3]){0, 0, 1});
    ck_assert_int_eq(dt_pairing_nearest(&p, 0, c), violet);
    ck_assert_int_eq(dt_pairing_nearest_rgb(&p, 0, out), blue);
    memset(out, 0, sizeof(float) * IMG);
    ck_assert_int_eq(dt_pairing_nearest_rgb(&p, 0, out), -1);
    dt_free(src);
    dt_free(out);
    dt_pair_groups_free(&a);
    dt_pair_groups_free(&b);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gan_pairing");
    TCase *tc = tcase_create("pairing");
    tcase_add_test(tc, assignment_is_minimal);
    tcase_add_test(tc, pairs_a_color_permutation);
    tcase_add_test(tc, refuses_unequal_colors);
    tcase_add_test(tc, health_figures);
    suite_add_tcase(s, tc);
    return dt_check_run(s) ? 1 : 0;
}
