/* Winograd F(2x2,3x3): forward, input and weight gradients against the
 * direct loops over many shapes (B = 1, odd channel counts, the CycleGAN's
 * layers), each image's numbers independent of the others in the call, the
 * workspace's bounds, which layers dt_conv2d_forward/backward send there, and
 * whole convolutions' bits on every path of the product kernels. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "check_run.h"
#include "dtrain/conv.h"
#include "dtrain/core.h"
#include "dtrain/nn.h"

static void fill(float *x, size_t n, uint64_t key, float lo, float hi)
{
    dt_rand_uniform(x, n, (dt_stream){5151, DT_RNG_SAMPLE, key, 0});
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * x[i];
}

/* max |a - b| relative to max |b| */
static double max_rel(const float *a, const float *b, size_t n)
{
    double m = 0, scale = 1e-6;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]) / scale);
    return m;
}

static int same_bits(const void *a, const void *b, size_t nfloats) { return !memcmp(a, b, nfloats * sizeof(float)); }

typedef struct {
    int B, C, O, H, W;
} shape;

/* small and odd channel counts, B = 1, non-square planes, the smallest plane,
 * and the CycleGAN's layers (generator conv2, discriminator conv2) */
static const shape shapes[] = {
    {1, 1, 1, 2, 2},   {1, 3, 5, 4, 6},    {2, 7, 3, 6, 4},     {3, 5, 9, 8, 8},
    {1, 17, 1, 2, 10}, {2, 32, 40, 28, 28}, {1, 32, 64, 14, 14}, {5, 32, 64, 14, 14},
};
#define NSHAPES ((int)(sizeof shapes / sizeof shapes[0]))
#define GUARD 64 /* floats past the workspace that must stay untouched */

typedef struct {
    size_t nx, ny, nw, nws;
    float *x, *y, *yn, *W, *b, *dy, *ws;
} bufs;

static bufs make(shape s, uint64_t key)
{
    bufs u;
    size_t HW = (size_t)s.H * s.W;
    u.nx = (size_t)s.B * s.C * HW;
    u.ny = (size_t)s.B * s.O * HW;
    u.nw = (size_t)s.O * s.C * 9;
    u.nws = dt_conv2d_winograd_size(s.B, s.C, s.O, s.H, s.W);
    u.x = dt_alloc_floats(u.nx);
    u.y = dt_alloc_floats(u.ny);
    u.yn = dt_alloc_floats(u.ny);
    u.dy = dt_alloc_floats(u.ny);
    u.W = dt_alloc_floats(u.nw);
    u.b = dt_alloc_floats(s.O);
    u.ws = dt_alloc_floats(u.nws + GUARD);
    fill(u.x, u.nx, key, -1, 1);
    fill(u.W, u.nw, key + 1, -0.5f, 0.5f);
    fill(u.b, (size_t)s.O, key + 2, -0.5f, 0.5f);
    fill(u.dy, u.ny, key + 3, -1, 1);
    for (int i = 0; i < GUARD; i++) u.ws[u.nws + i] = 12345.0f;
    return u;
}

static void guard_intact(const bufs *u)
{
    for (int i = 0; i < GUARD; i++) ck_assert_float_eq(u->ws[u->nws + i], 12345.0f);
}

static void unmake(bufs *u)
{
    float *all[] = {u->x, u->y, u->yn, u->dy, u->W, u->b, u->ws};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) dt_free(all[i]);
}

START_TEST(winograd_forward_matches_naive)
{
    shape s = shapes[_i];
    bufs u = make(s, 10 + 10 * (uint64_t)_i);
    dt_conv2d_forward_naive(u.yn, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, 3, 1);
    dt_conv2d_winograd_forward(u.y, u.ws, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, 0);
    ck_assert_double_le(max_rel(u.y, u.yn, u.ny), 1e-5);
    /* the fused ReLU: the same bits as the ReLU after */
    float *yr = dt_alloc_floats(u.ny);
    dt_conv2d_winograd_forward(yr, u.ws, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, 1);
    dt_relu_forward(u.y, u.y, u.ny);
    ck_assert(same_bits(yr, u.y, u.ny));
    guard_intact(&u);
    dt_free(yr);
    unmake(&u);
}
END_TEST

/* dW accumulates (from a nonzero start), dx is overwritten, each of them
 * skipped when NULL without changing the other; relu_x masks dx by x > 0 */
START_TEST(winograd_backward_matches_naive)
{
    shape s = shapes[_i];
    bufs u = make(s, 500 + 10 * (uint64_t)_i);
    float *dx = dt_alloc_floats(u.nx), *dxn = dt_alloc_floats(u.nx), *dx2 = dt_alloc_floats(u.nx);
    float *dW = dt_alloc_floats(u.nw), *dWn = dt_alloc_floats(u.nw), *dW2 = dt_alloc_floats(u.nw);
    float *db = dt_alloc_floats(s.O), *W0 = dt_alloc_floats(u.nw);
    fill(W0, u.nw, 600 + (uint64_t)_i, -2, 2);
    memset(dWn, 0, u.nw * sizeof(float));
    memset(db, 0, (size_t)s.O * sizeof(float));
    dt_conv2d_backward_naive(dxn, dWn, db, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, 3, 1);

    memcpy(dW, W0, u.nw * sizeof(float));
    for (size_t i = 0; i < u.nx; i++) dx[i] = 1e6f;
    dt_conv2d_winograd_forward(u.y, u.ws, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, 0);
    dt_conv2d_winograd_backward(dx, dW, 0, u.ws, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, 0);
    ck_assert_double_le(max_rel(dx, dxn, u.nx), 1e-5);
    for (size_t i = 0; i < u.nw; i++) dW[i] -= W0[i];
    ck_assert_double_le(max_rel(dW, dWn, u.nw), 1e-5);
    guard_intact(&u);

    /* each alone: the same bits */
    memcpy(dW2, W0, u.nw * sizeof(float));
    dt_conv2d_winograd_backward(NULL, dW2, 0, u.ws, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, 0);
    for (size_t i = 0; i < u.nw; i++) dW2[i] -= W0[i];
    ck_assert(same_bits(dW2, dW, u.nw));
    dt_conv2d_winograd_backward(dx2, NULL, 0, u.ws, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, 0);
    ck_assert(same_bits(dx2, dx, u.nx));

    /* the input as a ReLU's output: dx is masked where x <= 0 */
    dt_conv2d_winograd_backward(dx2, NULL, 0, u.ws, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, 1);
    dt_relu_backward(dx, dx, u.x, u.nx);
    ck_assert(same_bits(dx2, dx, u.nx));
    size_t zero = 0;
    for (size_t i = 0; i < u.nx; i++) zero += dx2[i] == 0.0f;
    if (u.nx > 8) ck_assert(zero > 0 && zero < u.nx);
    guard_intact(&u);
    float *all[] = {dx, dxn, dx2, dW, dWn, dW2, db, W0};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) dt_free(all[i]);
    unmake(&u);
}
END_TEST

/* image i alone (B = 1) gives the bits it gets among B = 5, forward and
 * input gradient: the discriminator's layer (several images per chunk, the
 * last chunk short) and a small one (all five in one chunk) */
START_TEST(winograd_images_independent)
{
    static const shape ss[] = {{5, 32, 64, 14, 14}, {5, 3, 5, 4, 6}, {5, 32, 40, 28, 28}};
    shape s = ss[_i];
    bufs u = make(s, 800 + 10 * (uint64_t)_i);
    size_t HW = (size_t)s.H * s.W, xi = (size_t)s.C * HW, yi = (size_t)s.O * HW;
    float *dx = dt_alloc_floats(u.nx), *y1 = dt_alloc_floats(yi), *dx1 = dt_alloc_floats(xi);
    float *ws1 = dt_alloc_floats(dt_conv2d_winograd_size(1, s.C, s.O, s.H, s.W));
    dt_conv2d_winograd_forward(u.y, u.ws, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, 1);
    dt_conv2d_winograd_backward(dx, NULL, 0, u.ws, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, 1);
    for (int i = 0; i < s.B; i++) {
        dt_conv2d_winograd_forward(y1, ws1, u.x + i * xi, u.W, u.b, 1, s.C, s.H, s.W, s.O, 1);
        dt_conv2d_winograd_backward(dx1, NULL, 0, ws1, u.dy + i * yi, u.x + i * xi, u.W, 1, s.C, s.H, s.W, s.O, 1);
        ck_assert(same_bits(y1, u.y + i * yi, yi));
        ck_assert(same_bits(dx1, dx + i * xi, xi));
    }
    dt_free(dx), dt_free(y1), dt_free(dx1), dt_free(ws1);
    unmake(&u);
}
END_TEST

/* The product kernels' paths (AVX-512, AVX2, scalar: those this CPU has)
 * give whole convolutions the same bits, forward and backward, on each kind
 * of layer the CycleGAN has: im2col 3x3 (3->32), Winograd (32->40, 32->64),
 * 1x1 (40->3). */
START_TEST(conv_same_bits_on_every_path)
{
    static const struct {
        int B, C, O, H, k;
    } L[] = {{3, 3, 32, 28, 3}, {2, 32, 40, 28, 3}, {3, 32, 64, 14, 3}, {2, 40, 3, 28, 1}};
    int best = dt_gemm_set_level(DT_GEMM_AVX512);
    for (size_t l = 0; l < sizeof L / sizeof *L; l++) {
        int B = L[l].B, C = L[l].C, O = L[l].O, H = L[l].H, k = L[l].k, pad = k == 3;
        size_t nx = (size_t)B * C * H * H, ny = (size_t)B * O * H * H, nw = (size_t)O * C * k * k;
        float *x = dt_alloc_floats(nx), *W = dt_alloc_floats(nw), *b = dt_alloc_floats(O), *dy = dt_alloc_floats(ny);
        float *cols = dt_alloc_floats(dt_conv2d_cols_size(B, C, O, H, H, k) + 1);
        float *out[3][4]; /* per path: y, dx, dW, db */
        fill(x, nx, 900 + l, -1, 1), fill(W, nw, 910 + l, -0.5f, 0.5f), fill(b, O, 920 + l, -0.1f, 0.1f);
        fill(dy, ny, 930 + l, -1, 1);
        for (int level = 0; level <= best; level++) {
            dt_gemm_set_level(level);
            float *y = out[level][0] = dt_alloc_floats(ny), *dx = out[level][1] = dt_alloc_floats(nx);
            float *dW = out[level][2] = dt_alloc_floats(nw), *db = out[level][3] = dt_alloc_floats(O);
            dt_conv2d_forward(y, cols, x, W, b, B, C, H, H, O, k, pad);
            dt_conv2d_backward(dx, dW, db, cols, dy, x, W, B, C, H, H, O, k, pad);
            if (level == 0) continue;
            size_t n[4] = {ny, nx, nw, (size_t)O};
            for (int q = 0; q < 4; q++)
                ck_assert_msg(same_bits(out[level][q], out[0][q], n[q]), "layer %d->%d k %d, path %d, output %d", C, O,
                              k, level, q);
        }
        for (int level = 0; level <= best; level++)
            for (int q = 0; q < 4; q++) dt_free(out[level][q]);
        dt_free(x), dt_free(W), dt_free(b), dt_free(dy), dt_free(cols);
    }
    dt_gemm_set_level(best);
}
END_TEST

/* the size rule, and dt_conv2d_forward/backward taking the path it names:
 * the same bits as the Winograd calls for the CycleGAN's second layers */
START_TEST(winograd_chosen_by_size_rule)
{
    ck_assert(dt_conv2d_winograd_fits(32, 40, 28, 28, 3, 1));
    ck_assert(dt_conv2d_winograd_fits(32, 64, 14, 14, 3, 1));
    ck_assert(!dt_conv2d_winograd_fits(3, 32, 28, 28, 3, 1));  /* first layers: im2col */
    ck_assert(!dt_conv2d_winograd_fits(40, 3, 28, 28, 1, 0));  /* 1x1 */
    ck_assert(!dt_conv2d_winograd_fits(32, 40, 7, 7, 3, 1));   /* odd planes */
    ck_assert(dt_conv2d_winograd_fits(8, 8, 28, 28, 3, 1));
    ck_assert(!dt_conv2d_winograd_fits(32, 4, 28, 28, 3, 1));  /* thin output */
    ck_assert(!dt_conv2d_winograd_fits(4, 32, 28, 28, 3, 1));  /* thin input */
    ck_assert_uint_eq(dt_conv2d_cols_size(64, 32, 40, 28, 28, 3), dt_conv2d_winograd_size(64, 32, 40, 28, 28));
    ck_assert_uint_eq(dt_conv2d_cols_size(64, 3, 32, 28, 28, 3), (size_t)64 * 27 * 784);

    shape s = {3, 32, 64, 14, 14};
    bufs u = make(s, 1000);
    float *y = dt_alloc_floats(u.ny), *dx = dt_alloc_floats(u.nx), *dx1 = dt_alloc_floats(u.nx);
    float *dW = dt_alloc_floats(u.nw), *dW1 = dt_alloc_floats(u.nw), *db = dt_alloc_floats(s.O);
    float *cols = dt_alloc_floats(dt_conv2d_cols_size(s.B, s.C, s.O, s.H, s.W, 3));
    memset(dW, 0, u.nw * sizeof(float)), memset(dW1, 0, u.nw * sizeof(float)), memset(db, 0, (size_t)s.O * 4);
    dt_conv2d_forward_relu(y, cols, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, 3, 1);
    dt_conv2d_backward_relu(dx, dW, db, cols, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, 3, 1);
    dt_conv2d_winograd_forward(u.y, u.ws, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, 1);
    dt_conv2d_winograd_backward(dx1, dW1, 0, u.ws, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, 1);
    ck_assert(same_bits(y, u.y, u.ny));
    ck_assert(same_bits(dx, dx1, u.nx));
    ck_assert(same_bits(dW, dW1, u.nw));
    float *all[] = {y, dx, dx1, dW, dW1, db, cols};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) dt_free(all[i]);
    unmake(&u);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("winograd");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, winograd_forward_matches_naive, 0, NSHAPES);
    tcase_add_loop_test(tc, winograd_backward_matches_naive, 0, NSHAPES);
    tcase_add_loop_test(tc, winograd_images_independent, 0, 3);
    tcase_add_test(tc, winograd_chosen_by_size_rule);
    tcase_add_test(tc, conv_same_bits_on_every_path);
    suite_add_tcase(s, tc);
    int failed = dt_check_run(s);
    return failed ? 1 : 0;
}
