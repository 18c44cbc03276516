/* Numbers of the conv kernels: im2col + sgemm against the direct loops,
 * finite-difference gradients, max pooling on hand-made inputs, accumulation
 * semantics and the layer's parameter views. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_run.h"
#include "dtrain/conv.h"
#include "dtrain/core.h"
#include "dtrain/nn.h"

static void fill(float *x, size_t n, uint64_t key, float lo, float hi)
{
    dt_rand_uniform(x, n, (dt_stream){4242, DT_RNG_SAMPLE, key, 0});
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

static double max_abs(const float *a, const float *b, size_t n)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]));
    return m;
}

typedef struct {
    int B, C, O, H, W, k, pad;
} shape;

/* odd sizes, both geometries, and the real CycleGAN layers at B = 2 */
static const shape shapes[] = {
    {2, 3, 5, 7, 6, 3, 1},  {2, 3, 5, 7, 6, 1, 0},   {1, 1, 1, 1, 1, 3, 1},   {3, 4, 2, 5, 9, 3, 1},
    {1, 2, 7, 2, 3, 3, 1},  {2, 3, 32, 28, 28, 3, 1}, {2, 32, 40, 28, 28, 3, 1}, {2, 40, 3, 28, 28, 1, 0},
    {2, 32, 64, 14, 14, 3, 1},
};
#define NSHAPES ((int)(sizeof shapes / sizeof shapes[0]))

typedef struct {
    size_t nx, ny, nw, ncols;
    float *x, *y, *yn, *W, *b, *dy, *cols;
} bufs;

static bufs make(shape s, uint64_t key)
{
    bufs u;
    size_t HW = (size_t)s.H * s.W;
    u.nx = (size_t)s.B * s.C * HW;
    u.ny = (size_t)s.B * s.O * HW;
    u.nw = (size_t)s.O * s.C * s.k * s.k;
    u.ncols = dt_conv2d_cols_size(s.B, s.C, s.O, s.H, s.W, s.k);
    u.x = dt_alloc_floats(u.nx);
    u.y = dt_alloc_floats(u.ny);
    u.yn = dt_alloc_floats(u.ny);
    u.dy = dt_alloc_floats(u.ny);
    u.W = dt_alloc_floats(u.nw);
    u.b = dt_alloc_floats(s.O);
    u.cols = u.ncols ? dt_alloc_floats(u.ncols) : NULL;
    fill(u.x, u.nx, key, -1, 1);
    fill(u.W, u.nw, key + 1, -0.5f, 0.5f);
    fill(u.b, (size_t)s.O, key + 2, -0.5f, 0.5f);
    fill(u.dy, u.ny, key + 3, -1, 1);
    return u;
}

static void unmake(bufs *u)
{
    dt_free(u->x), dt_free(u->y), dt_free(u->yn), dt_free(u->dy), dt_free(u->W), dt_free(u->b);
    dt_free(u->cols);
}

/* ---- BLAS against the direct loops ------------------------------------------ */

START_TEST(conv_forward_matches_naive)
{
    shape s = shapes[_i];
    bufs u = make(s, 10 + 10 * (uint64_t)_i);
    dt_conv2d_forward(u.y, u.cols, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_conv2d_forward_naive(u.yn, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    ck_assert_double_le(max_rel(u.y, u.yn, u.ny), 1e-5);
    unmake(&u);
}
END_TEST

START_TEST(conv_backward_matches_naive)
{
    shape s = shapes[_i];
    bufs u = make(s, 500 + 10 * (uint64_t)_i);
    float *dx = dt_alloc_floats(u.nx), *dxn = dt_alloc_floats(u.nx);
    float *dW = dt_alloc_floats(u.nw), *dWn = dt_alloc_floats(u.nw);
    float *db = dt_alloc_floats(s.O), *dbn = dt_alloc_floats(s.O);
    dt_conv2d_forward(u.y, u.cols, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_conv2d_backward(dx, dW, db, u.cols, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_conv2d_backward_naive(dxn, dWn, dbn, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    ck_assert_double_le(max_rel(dx, dxn, u.nx), 1e-5);
    ck_assert_double_le(max_rel(dW, dWn, u.nw), 1e-5);
    ck_assert_double_le(max_rel(db, dbn, (size_t)s.O), 1e-5);

    /* dx = NULL skips the input gradient and leaves dW, db the same */
    float *dW2 = dt_alloc_floats(u.nw), *db2 = dt_alloc_floats(s.O);
    dt_conv2d_forward(u.y, u.cols, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_conv2d_backward(NULL, dW2, db2, u.cols, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    ck_assert_double_le(max_rel(dW2, dWn, u.nw), 1e-5);
    ck_assert_double_le(max_rel(db2, dbn, (size_t)s.O), 1e-5);
    dt_free(dx), dt_free(dxn), dt_free(dW), dt_free(dWn), dt_free(db), dt_free(dbn), dt_free(dW2), dt_free(db2);
    unmake(&u);
}
END_TEST

/* ---- fused variants: the same bits as the separate passes ---------------------- */

static int same_bits(const void *a, const void *b, size_t nfloats) { return !memcmp(a, b, nfloats * sizeof(float)); }

/* forward_relu = forward then dt_relu_forward; backward_relu = backward then
 * dt_relu_backward against its input's mask; dW NULL leaves the weight
 * gradients alone and gives the same dx; all near the naive twins */
START_TEST(conv_fused_relu_and_input_only)
{
    shape s = shapes[_i];
    bufs u = make(s, 900 + 10 * (uint64_t)_i);
    float *yr = dt_alloc_floats(u.ny), *dx = dt_alloc_floats(u.nx), *dxr = dt_alloc_floats(u.nx);
    float *dxi = dt_alloc_floats(u.nx), *dxn = dt_alloc_floats(u.nx);
    float *dW = dt_alloc_floats(u.nw), *dWr = dt_alloc_floats(u.nw), *dWn = dt_alloc_floats(u.nw);
    float *db = dt_alloc_floats(s.O), *dbr = dt_alloc_floats(s.O), *dbn = dt_alloc_floats(s.O);
    dt_conv2d_forward(u.y, u.cols, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_relu_forward(u.y, u.y, u.ny);
    dt_conv2d_forward_relu(yr, u.cols, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    ck_assert(same_bits(yr, u.y, u.ny));
    dt_conv2d_forward_naive(u.yn, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_relu_forward(u.yn, u.yn, u.ny);
    ck_assert_double_le(max_rel(yr, u.yn, u.ny), 1e-5);
    size_t pos = 0;
    for (size_t i = 0; i < u.ny; i++) pos += yr[i] > 0;
    if (u.ny > 8) ck_assert(pos > 0 && pos < u.ny); /* the ReLU clips some, not all */

    /* x as the output of a ReLU (its zeros mask dx) */
    dt_relu_forward(u.x, u.x, u.nx);
    dt_conv2d_forward(u.y, u.cols, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_conv2d_backward(dx, dW, db, u.cols, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_relu_backward(dx, dx, u.x, u.nx);
    dt_conv2d_forward(u.y, u.cols, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_conv2d_backward_relu(dxr, dWr, dbr, u.cols, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    ck_assert(same_bits(dxr, dx, u.nx));
    ck_assert(same_bits(dWr, dW, u.nw));
    ck_assert(same_bits(dbr, db, (size_t)s.O));
    dt_conv2d_backward_naive(dxn, dWn, dbn, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_relu_backward(dxn, dxn, u.x, u.nx);
    ck_assert_double_le(max_rel(dxr, dxn, u.nx), 1e-5);
    ck_assert_double_le(max_rel(dWr, dWn, u.nw), 1e-5);

    /* the input gradient alone: same dx bits, dW and db untouched */
    for (size_t i = 0; i < u.nw; i++) dWr[i] = 7.0f;
    for (int i = 0; i < s.O; i++) dbr[i] = 7.0f;
    dt_conv2d_forward(u.y, u.cols, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_conv2d_backward(dx, dW, db, u.cols, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_conv2d_forward(u.y, u.cols, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_conv2d_backward(dxi, NULL, dbr, u.cols, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    ck_assert(same_bits(dxi, dx, u.nx));
    for (size_t i = 0; i < u.nw; i++) ck_assert(dWr[i] == 7.0f);
    for (int i = 0; i < s.O; i++) ck_assert(dbr[i] == 7.0f);
    float *all[] = {yr, dx, dxr, dxi, dxn, dW, dWr, dWn, db, dbr, dbn};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) dt_free(all[i]);
    unmake(&u);
}
END_TEST

/* ReLU + pooling in one pass = dt_relu_forward then dt_maxpool2_forward, and
 * its backward = dt_maxpool2_backward then dt_relu_backward, bit for bit:
 * negative windows, ties, NaN and -0 included */
START_TEST(relu_maxpool_matches_separate_passes)
{
    enum { B = 2, C = 3, H = 6, W = 8, N = B * C * H * W, M = N / 4 };
    float x[N], r[N], y0[M], y1[M], dy[M], dx0[N], dx1[N];
    int32_t a0[M], a1[M];
    fill(x, N, 77, -1, 1);
    fill(dy, M, 78, -1, 1);
    for (int i = 0; i < 12; i++) x[i] = 0.25f;        /* ties */
    for (int i = 16; i < 20; i++) x[i] = -0.5f;       /* a window all negative */
    x[40] = NAN, x[41] = -0.0f, x[56] = 0.0f, x[57] = -0.0f, dy[3] = -0.0f;
    memcpy(r, x, sizeof r);
    dt_relu_forward(r, r, N);
    dt_maxpool2_forward(y0, a0, r, B, C, H, W);
    dt_maxpool2_backward(dx0, dy, a0, B, C, H, W);
    dt_relu_backward(dx0, dx0, r, N);
    dt_relu_maxpool2_forward(y1, a1, x, B, C, H, W);
    for (int i = 0; i < N; i++) dx1[i] = 123.0f; /* every element is written */
    dt_relu_maxpool2_backward(dx1, dy, y1, a1, B, C, H, W);
    ck_assert(same_bits(y1, y0, M));
    ck_assert(!memcmp(a1, a0, sizeof a0));
    ck_assert(same_bits(dx1, dx0, N));
    size_t nz = 0;
    for (int i = 0; i < N; i++) nz += dx1[i] != 0.0f;
    ck_assert(nz > M / 2); /* most windows pass a gradient */
}
END_TEST

/* ---- finite differences ------------------------------------------------------- */

/* L = sum(r ⊙ conv(x)), in double from the float output */
static double loss(bufs *u, const float *r, shape s)
{
    dt_conv2d_forward(u->y, u->cols, u->x, u->W, u->b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    double L = 0;
    for (size_t i = 0; i < u->ny; i++) L += (double)r[i] * u->y[i];
    return L;
}

/* central difference of L in p[j], h = 1e-2 (L is linear in each of x, W, b,
 * so the only error is float rounding of L divided by 2h) */
static double fd(bufs *u, const float *r, shape s, float *p, size_t j)
{
    const float h = 1e-2f;
    float keep = p[j];
    p[j] = keep + h;
    double lp = loss(u, r, s);
    p[j] = keep - h;
    double lm = loss(u, r, s);
    p[j] = keep;
    return (lp - lm) / (2.0 * h);
}

static const shape fd_shapes[] = {{2, 2, 3, 5, 4, 3, 1}, {2, 3, 2, 4, 3, 1, 0}, {1, 3, 4, 3, 3, 3, 1}};

START_TEST(conv_finite_differences)
{
    shape s = fd_shapes[_i];
    bufs u = make(s, 900 + 10 * (uint64_t)_i);
    float *dx = dt_alloc_floats(u.nx), *dW = dt_alloc_floats(u.nw), *db = dt_alloc_floats(s.O);
    /* r plays dy */
    dt_conv2d_forward(u.y, u.cols, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_conv2d_backward(dx, dW, db, u.cols, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    double worst = 0;
    for (size_t j = 0; j < u.nx; j++) worst = fmax(worst, fabs(fd(&u, u.dy, s, u.x, j) - dx[j]));
    for (size_t j = 0; j < u.nw; j++) worst = fmax(worst, fabs(fd(&u, u.dy, s, u.W, j) - dW[j]));
    for (int j = 0; j < s.O; j++) worst = fmax(worst, fabs(fd(&u, u.dy, s, u.b, (size_t)j) - db[j]));
    ck_assert_double_le(worst, 1e-3);
    /* the gradients are O(1), so 1e-3 absolute is a real check */
    double big = 0;
    for (size_t j = 0; j < u.nw; j++) big = fmax(big, fabs(dW[j]));
    ck_assert_double_ge(big, 0.1);
    dt_free(dx), dt_free(dW), dt_free(db);
    unmake(&u);
}
END_TEST

/* ---- accumulation semantics ---------------------------------------------------- */

START_TEST(conv_backward_accumulates_and_overwrites)
{
    shape s = {2, 3, 5, 7, 6, 3, 1};
    bufs u = make(s, 1300);
    float *dx0 = dt_alloc_floats(u.nx), *dW0 = dt_alloc_floats(u.nw), *db0 = dt_alloc_floats(s.O);
    float *dx = dt_alloc_floats(u.nx), *dW = dt_alloc_floats(u.nw), *db = dt_alloc_floats(s.O);
    float *Ws = dt_alloc_floats(u.nw), *bs = dt_alloc_floats(s.O);
    /* the gradient alone, from zero */
    dt_conv2d_forward(u.y, u.cols, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_conv2d_backward(dx0, dW0, db0, u.cols, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    /* nonzero starts: dW, db accumulate; dx is overwritten */
    fill(Ws, u.nw, 1301, -3, 3);
    fill(bs, (size_t)s.O, 1302, -3, 3);
    memcpy(dW, Ws, u.nw * sizeof(float));
    memcpy(db, bs, (size_t)s.O * sizeof(float));
    for (size_t i = 0; i < u.nx; i++) dx[i] = 1e6f;
    dt_conv2d_forward(u.y, u.cols, u.x, u.W, u.b, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    dt_conv2d_backward(dx, dW, db, u.cols, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    for (size_t i = 0; i < u.nw; i++) ck_assert_float_eq_tol(dW[i], Ws[i] + dW0[i], 1e-5f);
    for (int i = 0; i < s.O; i++) ck_assert_float_eq_tol(db[i], bs[i] + db0[i], 1e-5f);
    ck_assert_double_eq(max_abs(dx, dx0, u.nx), 0.0);
    /* the naive twin follows the same contract */
    memcpy(dW, Ws, u.nw * sizeof(float));
    memcpy(db, bs, (size_t)s.O * sizeof(float));
    for (size_t i = 0; i < u.nx; i++) dx[i] = 1e6f;
    dt_conv2d_backward_naive(dx, dW, db, u.dy, u.x, u.W, s.B, s.C, s.H, s.W, s.O, s.k, s.pad);
    for (size_t i = 0; i < u.nw; i++) ck_assert_float_eq_tol(dW[i], Ws[i] + dW0[i], 1e-5f);
    for (int i = 0; i < s.O; i++) ck_assert_float_eq_tol(db[i], bs[i] + db0[i], 1e-5f);
    ck_assert_double_le(max_rel(dx, dx0, u.nx), 1e-5);
    dt_free(dx0), dt_free(dW0), dt_free(db0), dt_free(dx), dt_free(dW), dt_free(db), dt_free(Ws), dt_free(bs);
    unmake(&u);
}
END_TEST

/* A 3x3 kernel with a single 1 at (ki,kj) shifts the image; checks the padding
 * and orientation (cross-correlation, as in PyTorch) by hand. */
START_TEST(conv_shift_kernel_by_hand)
{
    enum { H = 3, Wd = 4 };
    float x[H * Wd], y[H * Wd], W[9] = {0}, b[1] = {0.5f};
    float *cols = dt_alloc_floats(dt_conv2d_cols_size(1, 1, 1, H, Wd, 3));
    for (int i = 0; i < H * Wd; i++) x[i] = (float)(i + 1);
    W[0 * 3 + 2] = 1.0f; /* ki = 0, kj = 2: y[h][w] = x[h-1][w+1] + b */
    dt_conv2d_forward(y, cols, x, W, b, 1, 1, H, Wd, 1, 3, 1);
    const float want[H * Wd] = {0.5f, 0.5f, 0.5f, 0.5f, 2.5f, 3.5f, 4.5f, 0.5f, 6.5f, 7.5f, 8.5f, 0.5f};
    for (int i = 0; i < H * Wd; i++) ck_assert_float_eq(y[i], want[i]);
    dt_free(cols);
}
END_TEST

/* ---- max pooling --------------------------------------------------------------- */

START_TEST(maxpool_forward_by_hand)
{
    /* B=1, C=2, 4x4; plane 1 has ties: the first in row-major order wins */
    const float x[2 * 16] = {
        1, 2,  5, 3, /* */
        4, 0,  1, 1, /* */
        -1, -2, 9, 9, /* */
        -3, -4, 9, 8, /* */
        7, 7,  0, 0, /* */
        7, 7,  0, 0, /* */
        1, 2,  3, 4, /* */
        3, 2,  4, 4, /* */
    };
    float y[8];
    int32_t am[8];
    dt_maxpool2_forward(y, am, x, 1, 2, 4, 4);
    const float wy[8] = {4, 5, -1, 9, 7, 0, 3, 4};
    const int32_t wa[8] = {4, 2, 8, 10, 0, 2, 12, 11};
    for (int i = 0; i < 8; i++) {
        ck_assert_float_eq(y[i], wy[i]);
        ck_assert_int_eq(am[i], wa[i]);
    }
    /* NaN propagates instead of being pooled away */
    float xn[4] = {1, NAN, 3, 2}, yn;
    int32_t an;
    dt_maxpool2_forward(&yn, &an, xn, 1, 1, 2, 2);
    ck_assert(isnan(yn));
    ck_assert_int_eq(an, 1);
}
END_TEST

START_TEST(maxpool_backward_routes_to_argmax)
{
    enum { B = 2, C = 3, H = 6, W = 4, N = B * C * H * W, M = N / 4 };
    float x[N], y[M], dy[M], dx[N];
    int32_t am[M];
    fill(x, N, 1700, -1, 1);
    fill(dy, M, 1701, -1, 1);
    for (int i = 0; i < N; i++) dx[i] = 123.0f; /* overwritten */
    dt_maxpool2_forward(y, am, x, B, C, H, W);
    dt_maxpool2_backward(dx, dy, am, B, C, H, W);
    int nonzero = 0;
    for (int pl = 0; pl < B * C; pl++)
        for (int q = 0; q < (H / 2) * (W / 2); q++) {
            int i = q / (W / 2), j = q % (W / 2), a = am[pl * M / (B * C) + q];
            /* the argmax lies in its window and holds the maximum */
            ck_assert_int_eq(a / W / 2, i);
            ck_assert_int_eq(a % W / 2, j);
            ck_assert_float_eq(x[pl * H * W + a], y[pl * M / (B * C) + q]);
            ck_assert_float_eq(dx[pl * H * W + a], dy[pl * M / (B * C) + q]);
        }
    for (int i = 0; i < N; i++) nonzero += dx[i] != 0.0f;
    ck_assert_int_eq(nonzero, M);
}
END_TEST

START_TEST(maxpool_finite_differences)
{
    /* distinct values at least 0.05 apart: no ties, and h = 1e-2 cannot change a winner */
    enum { B = 2, C = 2, H = 4, W = 6, N = B * C * H * W, M = N / 4 };
    float x[N], y[M], r[M], dx[N];
    int32_t am[M];
    uint32_t perm[N];
    dt_rand_permutation(perm, N, (dt_stream){4242, DT_RNG_SAMPLE, 1800, 0});
    for (int i = 0; i < N; i++) x[i] = 0.05f * (float)perm[i] - 1.0f;
    fill(r, M, 1801, -1, 1);
    dt_maxpool2_forward(y, am, x, B, C, H, W);
    dt_maxpool2_backward(dx, r, am, B, C, H, W);
    double worst = 0;
    for (int j = 0; j < N; j++) {
        const float h = 1e-2f;
        float keep = x[j];
        double lp = 0, lm = 0;
        x[j] = keep + h;
        dt_maxpool2_forward(y, am, x, B, C, H, W);
        for (int i = 0; i < M; i++) lp += (double)r[i] * y[i];
        x[j] = keep - h;
        dt_maxpool2_forward(y, am, x, B, C, H, W);
        for (int i = 0; i < M; i++) lm += (double)r[i] * y[i];
        x[j] = keep;
        worst = fmax(worst, fabs((lp - lm) / (2.0 * h) - dx[j]));
    }
    ck_assert_double_le(worst, 1e-3);
}
END_TEST

/* ---- the layer ------------------------------------------------------------------ */

START_TEST(conv_layer_views_and_init)
{
    dt_params p;
    dt_conv2d a, c;
    dt_params_init(&p, "disc");
    dt_conv2d_declare(&a, &p, "conv1", 3, 32, 3, 1);
    dt_conv2d_declare(&c, &p, "conv3", 40, 3, 1, 0);
    dt_params_alloc(&p);
    dt_conv2d_bind(&a, &p);
    dt_conv2d_bind(&c, &p);
    ck_assert_uint_ge(p.n, 32 * 3 * 9 + 32 + 3 * 40 + 3); /* views may be aligned */
    const dt_view *v = dt_params_find(&p, "conv1.weight");
    ck_assert_ptr_nonnull(v);
    ck_assert_uint_eq(v->n, 32 * 3 * 9);
    ck_assert_int_eq(v->ndim, 4);
    ck_assert_int_eq(v->dims[0], 32);
    ck_assert_int_eq(v->dims[1], 3);
    ck_assert_int_eq(v->dims[2], 3);
    ck_assert_int_eq(v->dims[3], 3);
    ck_assert_ptr_eq(a.w, p.w + v->off);
    ck_assert_ptr_eq(a.dw, p.g + v->off);
    v = dt_params_find(&p, "conv3.bias");
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(v->dims[0], 3);
    ck_assert_ptr_eq(c.b, p.w + v->off);

    dt_conv2d_init(&a, 9, 0);
    dt_conv2d_init(&c, 9, 1);
    float ba = 1.0f / sqrtf(27.0f), bc = 1.0f / sqrtf(40.0f), wmax = 0;
    for (int i = 0; i < 32 * 27; i++) {
        ck_assert(fabsf(a.w[i]) <= ba);
        wmax = fmaxf(wmax, fabsf(a.w[i]));
    }
    ck_assert_float_ge(wmax, 0.9f * ba); /* spans the range, not a tiny one */
    for (int i = 0; i < 32; i++) ck_assert(fabsf(a.b[i]) <= ba);
    for (int i = 0; i < 120; i++) ck_assert(fabsf(c.w[i]) <= bc);
    /* drawn from (seed, DT_RNG_INIT, key, 0 for W / 1 for b) */
    float u[3];
    dt_rand_uniform(u, 3, (dt_stream){9, DT_RNG_INIT, 1, 1});
    for (int i = 0; i < 3; i++) ck_assert_float_eq(c.b[i], (2.0f * u[i] - 1.0f) * bc);
    dt_rand_uniform(u, 1, (dt_stream){9, DT_RNG_INIT, 0, 0});
    ck_assert_float_eq(a.w[0], (2.0f * u[0] - 1.0f) * ba);

    ck_assert_uint_eq(dt_conv2d_cols_size(64, 3, 32, 28, 28, 3), (size_t)64 * 27 * 784);
    ck_assert_uint_eq(dt_conv2d_cols_size(64, 40, 3, 28, 28, 1), 0);
    dt_params_free(&p);
}
END_TEST

/* A 1x1 convolution multiplies the input itself: handed an image one channel
 * short, the product's AddressSanitizer check ends the job. */
static float c1_x[2 * 3 * 16 - 16], c1_W[4 * 3], c1_b[4], c1_y[2 * 4 * 16];
START_TEST(conv1x1_short_input_caught)
{
    dt_conv2d_forward(c1_y, NULL, c1_x, c1_W, c1_b, 2, 3, 4, 4, 4, 1, 0); /* x must be (2,3,4,4) */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("conv");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    tcase_add_loop_test(tc, conv_forward_matches_naive, 0, NSHAPES);
    tcase_add_loop_test(tc, conv_backward_matches_naive, 0, NSHAPES);
    tcase_add_loop_test(tc, conv_finite_differences, 0, (int)(sizeof fd_shapes / sizeof fd_shapes[0]));
    tcase_add_loop_test(tc, conv_fused_relu_and_input_only, 0, NSHAPES);
    tcase_add_test(tc, relu_maxpool_matches_separate_passes);
    tcase_add_test(tc, conv_backward_accumulates_and_overwrites);
    tcase_add_test(tc, conv_shift_kernel_by_hand);
    tcase_add_test(tc, maxpool_forward_by_hand);
    tcase_add_test(tc, maxpool_backward_routes_to_argmax);
    tcase_add_test(tc, maxpool_finite_differences);
    tcase_add_test(tc, conv_layer_views_and_init);
    if (DT_ASAN)
        tcase_add_exit_test(tc, conv1x1_short_input_caught, DT_EXIT_INTERNAL);
    else
        printf("test_conv: conv1x1_short_input_caught skipped: needs an AddressSanitizer build (make SANITIZE=1)\n");
    suite_add_tcase(s, tc);
    int failed = dt_check_run(s);
    return failed ? 1 : 0;
}
