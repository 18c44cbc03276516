/* Numbers of the nn kernels: BLAS against plain loops, finite-difference
 * gradients, Adam against hand-computed steps, the RNG's known answers. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_run.h"
#include "dtrain/core.h"
#include "dtrain/nn.h"
#include "dtrain/vae.h"
#include "dtrain/vae_analysis.h"

static void fill(float *x, size_t n, uint64_t key, float lo, float hi)
{
    dt_rand_uniform(x, n, (dt_stream){12345, DT_RNG_SAMPLE, key, 0});
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * x[i];
}

static double dot(const float *a, const float *b, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static double max_rel(const float *a, const float *b, size_t n)
{
    double m = 0, scale = 1e-6;
    for (size_t i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (size_t i = 0; i < n; i++) m = fmax(m, fabs((double)a[i] - b[i]) / scale);
    return m;
}

/* ---- exact sums ----------------------------------------------------------- */

/* dt_xsum: 3000 terms of magnitudes 1e-9 to 1e9, both signs, summed in order,
 * in reverse, and cut into 1, 2, 3, 7 parts merged in both orders (the ranks
 * of a job), give the same bits; the value is within one grid step per term
 * of the exact sum; NaN and infinities are counted, not lost. */
static double xsum_term(int i)
{
    float u[2];
    dt_rand_uniform(u, 2, (dt_stream){5, DT_RNG_SAMPLE, 77, (uint64_t)i});
    return (u[0] < 0.5f ? -1.0 : 1.0) * pow(10.0, -9.0 + 18.0 * u[1]) * (1.0 + u[0]);
}

START_TEST(xsum_order_free)
{
    enum { N = 3000 };
    double t[N];
    long double exact = 0;
    for (int i = 0; i < N; i++) t[i] = xsum_term(i), exact += t[i];
    dt_xsum fwd = {0}, rev = {0};
    for (int i = 0; i < N; i++) dt_xsum_add(&fwd, t[i]), dt_xsum_add(&rev, t[N - 1 - i]);
    double v = dt_xsum_value(&fwd), w = dt_xsum_value(&rev);
    ck_assert(memcmp(&v, &w, sizeof v) == 0);
    ck_assert_msg(fabsl((long double)v - exact) <= N * 0x1p-40 + fabsl(exact) * 0x1p-52, "%.17g vs %.17Lg", v, exact);
    const int cuts[] = {1, 2, 3, 7};
    for (size_t c = 0; c < sizeof cuts / sizeof *cuts; c++)
        for (int backwards = 0; backwards < 2; backwards++) {
            int P = cuts[c];
            dt_xsum part[7] = {{{0}}}, all = {0};
            for (int r = 0; r < P; r++)
                for (int i = N * r / P; i < N * (r + 1) / P; i++) dt_xsum_add(&part[r], t[i]);
            for (int r = 0; r < P; r++) dt_xsum_merge(&all, &part[backwards ? P - 1 - r : r]);
            double x = dt_xsum_value(&all);
            ck_assert_msg(memcmp(&x, &v, sizeof x) == 0, "%d parts: %.17g != %.17g", P, x, v);
        }
    /* a plain double sum is not order free: the reason for all this */
    double f = 0, b = 0;
    for (int i = 0; i < N; i++) f += t[i], b += t[N - 1 - i];
    ck_assert(f != b);
    dt_xsum s = {0};
    dt_xsum_add(&s, 1.5);
    dt_xsum_add(&s, INFINITY);
    ck_assert(dt_xsum_value(&s) == INFINITY);
    dt_xsum_add(&s, -1e300); /* beyond DT_XSUM_MAX: counted as -inf; +inf and -inf make NaN */
    ck_assert(isnan(dt_xsum_value(&s)));
    dt_xsum n = {0};
    dt_xsum_add(&n, NAN);
    dt_xsum_add(&n, 2.0);
    ck_assert(isnan(dt_xsum_value(&n)));
    dt_xsum z = {0};
    dt_xsum_add(&z, -0.25);
    dt_xsum_add(&z, -0.5);
    ck_assert(dt_xsum_value(&z) == -0.75);
}
END_TEST

/* ---- RNG --------------------------------------------------------------- */

START_TEST(philox_known_answer)
{
    /* Random123's kat_vectors: philox4x32_10, counter 0, key 0 */
    uint32_t ctr[4] = {0, 0, 0, 0}, key[2] = {0, 0}, out[4];
    dt_philox4x32(out, ctr, key);
    ck_assert_uint_eq(out[0], 0x6627e8d5u);
    ck_assert_uint_eq(out[1], 0xe169c58du);
    ck_assert_uint_eq(out[2], 0xbc57ac4cu);
    ck_assert_uint_eq(out[3], 0x9b00dbd8u);
    uint32_t ctr2[4] = {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, key2[2] = {0xa4093822, 0x299f31d0};
    dt_philox4x32(out, ctr2, key2);
    ck_assert_uint_eq(out[0], 0xd16cfe09u);
    ck_assert_uint_eq(out[1], 0x94fdccebu);
    ck_assert_uint_eq(out[2], 0x5001e420u);
    ck_assert_uint_eq(out[3], 0x24126ea1u);
}
END_TEST

START_TEST(rng_streams_depend_only_on_key)
{
    /* The noise of sample g at step t is the same however the batch is cut. */
    float a[6], b[2];
    dt_rand_normal(a, 6, (dt_stream){7, DT_RNG_EPS, 3, 100});
    dt_rand_normal(b, 2, (dt_stream){7, DT_RNG_EPS, 3, 100});
    ck_assert(a[0] == b[0] && a[1] == b[1]);
    dt_rand_normal(b, 2, (dt_stream){7, DT_RNG_EPS, 3, 101});
    ck_assert(a[0] != b[0]);
    dt_rand_normal(b, 2, (dt_stream){7, DT_RNG_EPS, 4, 100});
    ck_assert(a[0] != b[0]);
    dt_rand_normal(b, 2, (dt_stream){7, DT_RNG_GUMBEL, 3, 100});
    ck_assert(a[0] != b[0]);
}
END_TEST

START_TEST(rng_moments)
{
    enum { N = 200000 };
    float *x = malloc(N * sizeof *x);
    dt_rand_normal(x, N, (dt_stream){1, DT_RNG_EPS, 0, 0});
    double s = 0, s2 = 0;
    for (int i = 0; i < N; i++) s += x[i], s2 += (double)x[i] * x[i];
    ck_assert_double_le(fabs(s / N), 0.01);
    ck_assert_double_le(fabs(s2 / N - 1.0), 0.02);
    dt_rand_uniform(x, N, (dt_stream){1, DT_RNG_EPS, 0, 0});
    s = 0;
    for (int i = 0; i < N; i++) {
        ck_assert(x[i] >= 0.0f && x[i] < 1.0f);
        s += x[i];
    }
    ck_assert_double_le(fabs(s / N - 0.5), 0.005);
    free(x);
}
END_TEST

START_TEST(permutation_is_permutation)
{
    enum { N = 1000 };
    uint32_t p[N], q[N];
    int seen[N] = {0};
    dt_rand_permutation(p, N, (dt_stream){5, DT_RNG_SHUFFLE, 0, 0});
    dt_rand_permutation(q, N, (dt_stream){5, DT_RNG_SHUFFLE, 1, 0});
    int same = 0;
    for (int i = 0; i < N; i++) {
        ck_assert_uint_lt(p[i], N);
        seen[p[i]]++;
        same += p[i] == q[i];
    }
    for (int i = 0; i < N; i++) ck_assert_int_eq(seen[i], 1);
    ck_assert_int_lt(same, 20);
}
END_TEST

/* ---- linear -------------------------------------------------------------- */

START_TEST(linear_blas_matches_naive)
{
    int B = 7, in = 33, out = 19;
    float *x = dt_alloc_floats(B * in), *W = dt_alloc_floats(out * in), *b = dt_alloc_floats(out);
    float *y1 = dt_alloc_floats(B * out), *y2 = dt_alloc_floats(B * out), *dy = dt_alloc_floats(B * out);
    float *dx1 = dt_alloc_floats(B * in), *dx2 = dt_alloc_floats(B * in);
    float *dW1 = dt_alloc_floats(out * in), *dW2 = dt_alloc_floats(out * in);
    float *db1 = dt_alloc_floats(out), *db2 = dt_alloc_floats(out);
    fill(x, B * in, 1, -1, 1);
    fill(W, out * in, 2, -1, 1);
    fill(b, out, 3, -1, 1);
    fill(dy, B * out, 4, -1, 1);
    /* backward accumulates: start both from the same nonzero gradient */
    fill(dW1, out * in, 5, -1, 1);
    memcpy(dW2, dW1, sizeof(float) * out * in);
    dt_linear_forward(y1, x, W, b, B, in, out);
    dt_linear_forward_naive(y2, x, W, b, B, in, out);
    ck_assert_double_le(max_rel(y1, y2, B * out), 1e-5);
    dt_linear_backward(dx1, dW1, db1, dy, x, W, B, in, out);
    dt_linear_backward_naive(dx2, dW2, db2, dy, x, W, B, in, out);
    ck_assert_double_le(max_rel(dx1, dx2, B * in), 1e-5);
    ck_assert_double_le(max_rel(dW1, dW2, out * in), 1e-5);
    ck_assert_double_le(max_rel(db1, db2, out), 1e-5);
    float *all[] = {x, W, b, y1, y2, dy, dx1, dx2, dW1, dW2, db1, db2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) dt_free(all[i]);
}
END_TEST

/* The writing backward equals the adding one started from zero, whatever the
 * gradient held before, and a rank without images (B = 0) writes zeros. */
START_TEST(linear_backward_write_overwrites)
{
    int B = 5, in = 17, out = 9;
    float *x = dt_alloc_floats(B * in), *W = dt_alloc_floats(out * in), *dy = dt_alloc_floats(B * out);
    float *dx = dt_alloc_floats(B * in), *dW1 = dt_alloc_floats(out * in), *dW2 = dt_alloc_floats(out * in);
    float *db1 = dt_alloc_floats(out), *db2 = dt_alloc_floats(out);
    fill(x, B * in, 1, -1, 1);
    fill(W, out * in, 2, -1, 1);
    fill(dy, B * out, 3, -1, 1);
    fill(dW2, out * in, 4, -9, 9); /* stale values that must not survive */
    fill(db2, out, 5, -9, 9);
    dt_linear_backward(dx, dW1, db1, dy, x, W, B, in, out); /* dW1, db1 start at zero */
    dt_linear_backward_write(dx, dW2, db2, dy, x, W, B, in, out);
    ck_assert_mem_eq(dW1, dW2, sizeof(float) * out * in);
    ck_assert_mem_eq(db1, db2, sizeof(float) * out);
    dt_linear_backward_write(NULL, dW2, db2, dy, x, W, 0, in, out);
    for (int i = 0; i < out * in; i++) ck_assert(dW2[i] == 0.0f);
    for (int i = 0; i < out; i++) ck_assert(db2[i] == 0.0f);
    float *all[] = {x, W, dy, dx, dW1, dW2, db1, db2};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) dt_free(all[i]);
}
END_TEST

/* dt_gemm_nn and dt_gemm_nt (nt: B is (N,K)): every own path (AVX-512, AVX2,
 * scalar; those this CPU has) gives the scalar reference's bits at ragged
 * shapes (row, column and k tails, K = 1, leading dimensions wider than the
 * rows, set, add or (nn) chain); each element, and OpenBLAS's
 * (DTRAIN_GEMM=blas), is within a few ulps of the exact sum; a block of
 * columns computed alone has the bits it has inside the whole product; a
 * chain over K cut in parts has the whole product's bits; and threads
 * sharing a large product change no bit. */
static void gemm_call(int nt, float *C, int ldc, const float *A, int lda, const float *B, int ldb, int M, int N, int K,
                      int acc)
{
    if (nt)
        dt_gemm_nt(C, ldc, A, lda, B, ldb, M, N, K, acc);
    else
        dt_gemm_nn(C, ldc, A, lda, B, ldb, M, N, K, acc);
}

static double gemm_case(int nt, int level, int M, int N, int K, int acc, uint64_t seed)
{
    int lda = K + 3, ldb = nt ? K + 5 : N + 5, ldc = N + 2, nb = nt ? N * ldb : (K ? K : 1) * ldb;
    float *A = malloc(sizeof(float) * (size_t)M * lda + 4), *B = malloc(sizeof(float) * (size_t)nb);
    float *C0 = malloc(sizeof(float) * (size_t)M * ldc), *C = malloc(sizeof(float) * (size_t)M * ldc);
    float *S = malloc(sizeof(float) * (size_t)M * ldc);
    dt_rand_uniform(A, (size_t)M * lda, (dt_stream){seed, 90, 1, 0});
    dt_rand_uniform(B, (size_t)nb, (dt_stream){seed, 90, 2, 0});
    dt_rand_uniform(C0, (size_t)M * ldc, (dt_stream){seed, 90, 3, 0});
    for (int i = 0; i < M * lda; i++) A[i] -= 0.5f;
    for (int i = 0; i < nb; i++) B[i] -= 0.5f;
    memcpy(C, C0, sizeof(float) * (size_t)M * ldc);
    memcpy(S, C0, sizeof(float) * (size_t)M * ldc);
    dt_gemm_set_level(DT_GEMM_SCALAR);
    gemm_call(nt, S, ldc, A, lda, B, ldb, M, N, K, acc);
    dt_gemm_set_level(level);
    gemm_call(nt, C, ldc, A, lda, B, ldb, M, N, K, acc);
    double worst = 0;
    for (int i = 0; i < M; i++)
        for (int j = 0; j < ldc; j++) {
            float c = C[i * ldc + j];
            if (j >= N) { /* past the columns: untouched */
                ck_assert_msg(memcmp(&c, &C0[i * ldc + j], sizeof c) == 0, "wrote past column %d", N);
                continue;
            }
            ck_assert_msg(level == DT_GEMM_BLAS || memcmp(&c, &S[i * ldc + j], sizeof c) == 0,
                          "nt %d level %d M %d N %d K %d acc %d: (%d,%d) %.9g, scalar %.9g", nt, level, M, N, K, acc, i,
                          j, c, S[i * ldc + j]);
            double e = acc ? C0[i * ldc + j] : 0.0, mag = fabs(e);
            for (int k = 0; k < K; k++) {
                double ab = (double)A[i * lda + k] * B[nt ? j * ldb + k : k * ldb + j];
                e += ab;
                mag += fabs(ab);
            }
            double err = fabs(c - e) / (mag > 0 ? mag : 1);
            if (err > worst) worst = err;
        }
    if (!nt && acc == DT_ACC_SET && K > 2 && level != DT_GEMM_BLAS) { /* K in three parts, chained */
        float *D = malloc(sizeof(float) * (size_t)M * ldc);
        memcpy(D, C0, sizeof(float) * (size_t)M * ldc);
        int k1 = K / 3, k2 = 2 * K / 3;
        gemm_call(0, D, ldc, A, lda, B, ldb, M, N, k1, DT_ACC_SET);
        gemm_call(0, D, ldc, A + k1, lda, B + (size_t)k1 * ldb, ldb, M, N, k2 - k1, DT_ACC_CHAIN);
        gemm_call(0, D, ldc, A + k2, lda, B + (size_t)k2 * ldb, ldb, M, N, K - k2, DT_ACC_CHAIN);
        ck_assert_msg(memcmp(D, C, sizeof(float) * (size_t)M * ldc) == 0, "K in parts differs (level %d M %d N %d K %d)",
                      level, M, N, K);
        free(D);
    }
    if (N > 3 && level != DT_GEMM_BLAS) { /* columns 1..N-2 alone, into fresh memory */
        float *D = calloc((size_t)M * ldc, sizeof(float));
        if (acc)
            for (int i = 0; i < M; i++) memcpy(D + i * ldc + 1, C0 + i * ldc + 1, sizeof(float) * (size_t)(N - 2));
        gemm_call(nt, D + 1, ldc, A, lda, nt ? B + ldb : B + 1, ldb, M, N - 2, K, acc);
        for (int i = 0; i < M; i++)
            ck_assert_msg(memcmp(D + i * ldc + 1, C + i * ldc + 1, sizeof(float) * (size_t)(N - 2)) == 0,
                          "columns alone differ (nt %d level %d M %d N %d K %d)", nt, level, M, N, K);
        free(D);
    }
    free(A), free(B), free(C0), free(C), free(S);
    return worst;
}

START_TEST(gemm_nn_paths_agree_bitwise)
{
    int best = dt_gemm_set_level(DT_GEMM_AVX512);
    const int shapes[][3] = {{1, 1, 1},   {6, 32, 27}, {7, 33, 1},   {13, 70, 40}, {40, 196, 32}, {32, 40, 196},
                             {5, 17, 64}, {12, 16, 3}, {3, 784, 40}, {64, 49, 32}, {2, 9, 1},     {11, 48, 5},
                             {32, 27, 784}, {9, 7, 33}, {4, 4, 17}};
    double worst = 0;
    for (int nt = 0; nt < 2; nt++)
        for (int level = 0; level <= DT_GEMM_BLAS; level += level == best ? DT_GEMM_BLAS - best : 1)
            for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
                for (int acc = 0; acc <= (nt ? DT_ACC_ADD : DT_ACC_CHAIN); acc++) {
                    double e = gemm_case(nt, level, shapes[s][0], shapes[s][1], shapes[s][2], acc, 7 + s);
                    if (e > worst) worst = e;
                }
    /* products large enough to be shared by threads: the same bits with 3 */
    for (int nt = 0; nt < 2; nt++)
        for (int wide = 0; wide < 2; wide++) { /* split by columns, by rows */
            int M = wide ? 70 : 300, N = wide ? 400 : 40, K = 80, lda = K, ldb = nt ? K : N;
            float *A = dt_alloc_floats((size_t)M * K), *B = dt_alloc_floats((size_t)N * K);
            float *C1 = dt_alloc_floats((size_t)M * N), *C3 = dt_alloc_floats((size_t)M * N);
            fill(A, (size_t)M * K, 11, -1, 1);
            fill(B, (size_t)N * K, 12, -1, 1);
            fill(C1, (size_t)M * N, 13, -1, 1);
            memcpy(C3, C1, sizeof(float) * (size_t)M * N);
            for (int t = 1; t <= 3; t += 2) {
                dt_gemm_set_threads(t);
                gemm_call(nt, t == 1 ? C1 : C3, N, A, lda, B, ldb, M, N, K, 1);
            }
            dt_gemm_set_threads(1);
            ck_assert_msg(memcmp(C1, C3, sizeof(float) * (size_t)M * N) == 0, "nt %d %s: 3 threads differ", nt,
                          wide ? "by columns" : "by rows");
            dt_free(A), dt_free(B), dt_free(C1), dt_free(C3);
        }
    dt_gemm_set_level(best);
    /* a chain of at most 784 roundings: well under that many ulps relative to sum |a b| */
    ck_assert_msg(worst < 200 * 6e-8, "relative error %g", worst);
}
END_TEST

/* The products refuse inconsistent shapes in every build: the job ends with
 * the internal-fault status before anything is read. */
START_TEST(sgemm_leading_dimension_too_small)
{
    static float A[12], B[12], C[16];
    dt_gemm_nn(C, 4, A, 2, B, 4, 4, 4, 3, 0); /* A (4,3) with lda 2 */
}
END_TEST

START_TEST(sgemm_empty_size)
{
    static float A[12], B[12], C[16];
    dt_gemm_nt(C, 4, A, 3, B, 4, 4, 0, 3, 0);
}
END_TEST

START_TEST(sgemm_output_overlaps_input)
{
    static float A[24], B[16];
    dt_gemm_nn(A + 8, 4, A, 4, B, 4, 4, 4, 4, 0); /* C = A's rows 2..5 */
}
END_TEST

/* A layer handed an input one row short of its shape: in an AddressSanitizer
 * build the product's check sees the unaddressable row (OpenBLAS's own reads
 * are invisible to ASan) and ends the job. Static buffers: still reachable at
 * exit, so the leak check has nothing to say. */
static float short_x[3 * 8], short_W[3 * 8], short_b[3], short_y[4 * 3];
START_TEST(linear_short_input_caught)
{
    dt_linear_forward(short_y, short_x, short_W, short_b, 4, 8, 3); /* x must be (4,8) */
}
END_TEST

/* L = sum(r * linear(x)); compare dL/dx, dL/dW, dL/db with central differences */
static double lin_loss(const float *x, const float *W, const float *b, const float *r, int B, int in, int out)
{
    float *y = dt_alloc_floats(B * out);
    dt_linear_forward_naive(y, x, W, b, B, in, out);
    double s = dot(y, r, (size_t)B * out);
    dt_free(y);
    return s;
}

START_TEST(linear_finite_differences)
{
    int B = 4, in = 6, out = 5;
    float x[24], W[30], b[5], r[20], dx[24], dW[30] = {0}, db[5] = {0};
    fill(x, 24, 11, -1, 1);
    fill(W, 30, 12, -1, 1);
    fill(b, 5, 13, -1, 1);
    fill(r, 20, 14, -1, 1);
    dt_linear_backward(dx, dW, db, r, x, W, B, in, out);
    const float h = 1e-2f;
    float *vars[] = {x, W, b}, *grads[] = {dx, dW, db};
    int ns[] = {24, 30, 5};
    for (int v = 0; v < 3; v++)
        for (int i = 0; i < ns[v]; i++) {
            float keep = vars[v][i];
            vars[v][i] = keep + h;
            double lp = lin_loss(x, W, b, r, B, in, out);
            vars[v][i] = keep - h;
            double lm = lin_loss(x, W, b, r, B, in, out);
            vars[v][i] = keep;
            ck_assert_double_eq_tol((lp - lm) / (2 * h), grads[v][i], 1e-3);
        }
}
END_TEST

/* ---- activations and losses ---------------------------------------------- */

START_TEST(relu_and_sigmoid)
{
    float x[5] = {-2, -0.0f, 0.5f, 3, -1e-9f}, y[5], dy[5] = {1, 2, 3, 4, 5}, dx[5];
    dt_relu_forward(y, x, 5);
    dt_relu_backward(dx, dy, y, 5);
    float ey[5] = {0, 0, 0.5f, 3, 0}, edx[5] = {0, 0, 3, 4, 0};
    for (int i = 0; i < 5; i++) {
        ck_assert_float_eq(y[i], ey[i]);
        ck_assert_float_eq(dx[i], edx[i]);
    }
    float s[3], sx[3] = {0, 100, -100};
    dt_sigmoid_forward(s, sx, 3);
    ck_assert_float_eq_tol(s[0], 0.5f, 1e-7f);
    ck_assert_float_eq_tol(s[1], 1.0f, 1e-7f);
    ck_assert_float_eq_tol(s[2], 0.0f, 1e-7f);
}
END_TEST

START_TEST(bce_values_and_gradient)
{
    /* against the textbook formula where it is finite */
    float l[4] = {-3, -0.2f, 0.7f, 5}, t[4] = {0.1f, 0.9f, 0.5f, 1};
    double want = 0;
    for (int i = 0; i < 4; i++) {
        double p = 1 / (1 + exp(-l[i]));
        want += -(t[i] * log(p) + (1 - t[i]) * log(1 - p));
    }
    double per[2];
    double got = dt_bce_logits_forward(per, l, t, 2, 2);
    ck_assert_double_eq_tol(got, want, 1e-5);
    ck_assert(per[0] + per[1] == got); /* each image's term, summed in order, is the total */
    /* stable at extreme logits: no inf, no nan */
    float big[2] = {-200, 200}, tb[2] = {1, 0};
    double e = dt_bce_logits_forward(NULL, big, tb, 1, 2);
    ck_assert(isfinite(e) && fabs(e - 400) < 1e-3);
    float dl[4];
    dt_bce_logits_backward(dl, l, t, 4, 0.5f);
    const float h = 1e-3f;
    for (int i = 0; i < 4; i++) {
        float k = l[i];
        l[i] = k + h;
        double lp = dt_bce_logits_forward(NULL, l, t, 1, 4);
        l[i] = k - h;
        double lm = dt_bce_logits_forward(NULL, l, t, 1, 4);
        l[i] = k;
        ck_assert_double_eq_tol(0.5 * (lp - lm) / (2 * h), dl[i], 2e-3);
    }
}
END_TEST

/* The CycleGAN's losses: BCE against one label is the targets' BCE with
 * every target equal to it, bit for bit; L1's gradient is the sign */
START_TEST(bce_label_and_l1)
{
    float z[5] = {-4, -0.3f, 0, 0.8f, 6}, t[5], dz[5], dt[5];
    for (int k = 0; k < 2; k++) {
        float lab = k ? 1.0f : 0.0f;
        for (int i = 0; i < 5; i++) t[i] = lab;
        ck_assert(dt_bce_label(dz, z, 5, lab, 0.25f) == dt_bce_logits_forward(NULL, z, t, 1, 5));
        dt_bce_logits_backward(dt, z, t, 5, 0.25f);
        ck_assert_mem_eq(dz, dt, sizeof dz);
        ck_assert(dt_bce_label(NULL, z, 5, lab, 1) == dt_bce_label(dz, z, 5, lab, 1));
    }
    float y[4] = {1, -2, 0.5f, 3}, x[4] = {0, -2, 1, 1}, d[4];
    ck_assert_double_eq(dt_l1(d, y, x, 4, 0.5f), 1 + 0 + 0.5 + 2);
    const float want[4] = {0.5f, 0, -0.5f, 0.5f};
    ck_assert_mem_eq(d, want, sizeof d);
}
END_TEST

START_TEST(kl_and_reparam_gradients)
{
    enum { B = 3, D = 2, N = B * D };
    float mu[N], lv[N], eps[N], r[N];
    fill(mu, N, 21, -1.5f, 1.5f);
    fill(lv, N, 22, -2, 1);
    fill(eps, N, 23, -1, 1);
    fill(r, N, 24, -1, 1);
    /* L = 0.7 * KL(mu, lv) + sum(r * z(mu, lv, eps)) */
    float dmu[N] = {0}, dlv[N] = {0};
    dt_reparam_backward(dmu, dlv, r, lv, eps, N);
    dt_kl_gauss_backward(dmu, dlv, mu, lv, N, 0.7f);
    double per[B];
    double kl = dt_kl_gauss_forward(per, mu, lv, B, D);
    ck_assert(per[0] + per[1] + per[2] == kl);
    ck_assert(kl > 0);
    const float h = 1e-3f;
    float *vars[] = {mu, lv}, *grads[] = {dmu, dlv};
    for (int v = 0; v < 2; v++)
        for (int i = 0; i < N; i++) {
            double L[2];
            for (int s = 0; s < 2; s++) {
                float keep = vars[v][i];
                vars[v][i] = keep + (s ? -h : h);
                float z[N];
                dt_reparam_forward(z, mu, lv, eps, N);
                L[s] = 0.7 * dt_kl_gauss_forward(NULL, mu, lv, B, D) + dot(z, r, N);
                vars[v][i] = keep;
            }
            ck_assert_double_eq_tol((L[0] - L[1]) / (2 * h), grads[v][i], 2e-3);
        }
    /* KL is zero exactly at the prior */
    float z0[2] = {0, 0};
    ck_assert_double_eq_tol(dt_kl_gauss_forward(NULL, z0, z0, 1, 2), 0.0, 1e-12);
}
END_TEST

/* ---- Adam ---------------------------------------------------------------- */

START_TEST(adam_hand_computed)
{
    dt_params p;
    dt_params_init(&p, "t");
    dt_params_add(&p, "w", 1, (int[]){2});
    dt_params_alloc(&p);
    p.w[0] = 1.0f;
    p.w[1] = -2.0f;
    dt_adam a;
    dt_adam_default(&a, 0.1f);
    /* step 1: m = 0.1 g, v = 0.001 g^2, mhat = g, vhat = g^2: w -= lr * sign(g) (eps aside) */
    p.g[0] = 0.5f;
    p.g[1] = -3.0f;
    dt_adam_step(&a, &p);
    ck_assert_float_eq_tol(p.w[0], 1.0f - 0.1f * 0.5f / (0.5f + 1e-8f), 1e-6f);
    ck_assert_float_eq_tol(p.w[1], -2.0f + 0.1f, 1e-6f);
    /* step 2 with g = (0.1, -3): by hand */
    p.g[0] = 0.1f;
    p.g[1] = -3.0f;
    dt_adam_step(&a, &p);
    double m = 0.9 * 0.05 + 0.1 * 0.1, v = 0.999 * 0.00025 + 0.001 * 0.01;
    double mh = m / (1 - 0.81), vh = v / (1 - 0.999 * 0.999);
    double w = (1.0 - 0.1) - 0.1 * mh / (sqrt(vh) + 1e-8);
    ck_assert_double_eq_tol(p.w[0], w, 1e-6);
    ck_assert_double_eq_tol(p.w[1], -2.0 + 0.2, 1e-6);
    ck_assert_int_eq(a.t, 2);
    /* the step consumes the gradient: cleared for the next backward */
    ck_assert(p.g[0] == 0.0f && p.g[1] == 0.0f);
    dt_params_free(&p);
}
END_TEST

/* A step taken in parts (dt_adam_next once, then dt_adam_update or
 * dt_adam_update_stream on pieces in any order, from gradients held
 * anywhere) is bit for bit dt_adam_step. */
START_TEST(adam_in_parts_equals_adam_step)
{
    size_t n = 3000, cut[] = {0, 701, 1903, 2999, 3000}; /* off 16-byte boundaries */
    dt_params a, b;
    dt_params_init(&a, "a");
    dt_params_add(&a, "w", 1, (int[]){(int)n});
    dt_params_alloc(&a);
    dt_params_init(&b, "b");
    dt_params_add(&b, "w", 1, (int[]){(int)n});
    dt_params_alloc(&b);
    float *g = dt_alloc_floats(n), *w0 = dt_alloc_floats(n);
    fill(a.w, n, 1, -1, 1);
    memcpy(b.w, a.w, n * sizeof(float));
    memcpy(w0, a.w, n * sizeof(float));
    dt_adam aa, ab;
    dt_adam_default(&aa, 1e-2f);
    dt_adam_default(&ab, 1e-2f);
    for (int step = 0; step < 3; step++) {
        fill(g, n, 10 + (uint64_t)step, -1, 1);
        memcpy(a.g, g, n * sizeof(float));
        dt_adam_step(&aa, &a);
        dt_adam_k k = dt_adam_next(&ab);
        for (int j = 3; j >= 0; j--) /* the later parts first, as the shared step may */
            (j == 1 || j == 2 ? dt_adam_update_stream : dt_adam_update)(k, b.w + cut[j], b.m + cut[j], b.v + cut[j],
                                                                      g + cut[j], cut[j + 1] - cut[j]);
    }
    ck_assert_int_eq(aa.t, ab.t);
    ck_assert_mem_eq(a.w, b.w, n * sizeof(float));
    ck_assert_mem_eq(a.m, b.m, n * sizeof(float));
    ck_assert_mem_eq(a.v, b.v, n * sizeof(float));
    for (size_t i = 0; i < n; i++) ck_assert(b.w[i] != w0[i]); /* every part moved */
    dt_free(g);
    dt_free(w0);
    dt_params_free(&a);
    dt_params_free(&b);
}
END_TEST

/* The shared step's gradient: blocks of rows [r0, r1) and columns [c0, c1)
 * of three consecutive parts of one batch (5, 0 and 7 rows), the first set
 * and the others chained, are bit for bit the whole batch's gradient
 * (dt_linear_backward_write), as if it were not cut; added instead
 * (DT_ACC_ADD), they are the three parts' gradients summed in order; a part
 * of 0 rows adds nothing; dt_linear_backward_input is backward's dx. */
START_TEST(linear_grad_blocks_sum_like_blocks)
{
    int in = 37, out = 23, Bs[3] = {5, 0, 7}, at[3] = {0, 5, 5};
    float *x = dt_alloc_floats(12 * (size_t)in), *dy = dt_alloc_floats(12 * (size_t)out), *dW[4], *db[4];
    float *W = dt_alloc_floats((size_t)out * in), *dx1 = dt_alloc_floats(7 * (size_t)in),
          *dx2 = dt_alloc_floats(7 * (size_t)in);
    fill(W, (size_t)out * in, 1, -1, 1);
    fill(x, 12 * (size_t)in, 2, -1, 1);
    fill(dy, 12 * (size_t)out, 5, -1, 1);
    for (int q = 0; q < 4; q++) { /* the three parts' gradients, and the whole batch's */
        dW[q] = dt_alloc_floats((size_t)out * in);
        db[q] = dt_alloc_floats((size_t)out);
        int n = q < 3 ? Bs[q] : 12, a = q < 3 ? at[q] : 0;
        dt_linear_backward_write(q == 2 ? dx1 : NULL, dW[q], db[q], dy + (size_t)a * out, x + (size_t)a * in, W, n,
                                 in, out);
    }
    dt_linear_backward_input(dx2, dy + 5 * (size_t)out, W, Bs[2], in, out);
    ck_assert_mem_eq(dx1, dx2, sizeof(float) * 7 * (size_t)in);
    int r0 = 3, r1 = 17, c0 = 4, c1 = 33, rows = r1 - r0, cols = c1 - c0;
    for (int chain = 0; chain < 2; chain++) {
        float blk[14 * 29], bb[14];
        for (int q = 0; q < 3; q++)
            dt_linear_grad_block(blk, bb, dy + (size_t)at[q] * out, x + (size_t)at[q] * in, Bs[q], in, out, r0, r1, c0,
                                 c1, q == 0 ? DT_ACC_SET : chain ? DT_ACC_CHAIN : DT_ACC_ADD);
        for (int o = 0; o < rows; o++) {
            size_t row = (size_t)(r0 + o) * (size_t)in;
            for (int c = 0; c < cols; c++) {
                size_t e = row + (size_t)(c0 + c);
                float want = chain ? dW[3][e] : (dW[0][e] + dW[1][e]) + dW[2][e];
                ck_assert_msg(blk[o * cols + c] == want, "chain %d: dW[%d][%d]: %.9g != %.9g", chain, r0 + o, c0 + c,
                              blk[o * cols + c], want);
            }
            ck_assert(bb[o] == (chain ? db[3][r0 + o] : (db[0][r0 + o] + db[1][r0 + o]) + db[2][r0 + o]));
        }
    }
    /* no rows and nothing to add to: zeros */
    float z[14 * 29], zb[14];
    fill(z, 14 * 29, 9, -9, 9);
    dt_linear_grad_block(z, zb, NULL, NULL, 0, in, out, r0, r1, c0, c1, 0);
    for (int i = 0; i < rows * cols; i++) ck_assert(z[i] == 0.0f);
    for (int q = 0; q < 4; q++) dt_free(dW[q]), dt_free(db[q]);
    dt_free(x);
    dt_free(dy);
    dt_free(W);
    dt_free(dx1);
    dt_free(dx2);
}
END_TEST

/* ---- whole continuous VAE: directional derivative of the loss ------------ */

/* the training objective at step 5: BCE + KLs, the discrete KL weighted as in training */
static double vae_loss(dt_vae *m, int B, const uint64_t *gidx)
{
    double s[DT_MAX_TERMS] = {0};
    dt_vae_forward(m, B, gidx, 5, 0, s);
    double beta = dt_kl_weight(&m->opts, 5), L = s[0];
    for (int k = 0; k < m->kind->nparts; k++)
        L += s[1 + k] * (strcmp(m->kind->terms[k], "kl") && strcmp(m->kind->terms[k], "kl_cont") ? beta : 1.0);
    return L;
}

static const dt_vae_kind *const KINDS[] = {&dt_vae_continuous, &dt_vae_discrete, &dt_vae_joint};

START_TEST(vae_gradient_directional)
{
    /* soft samples at a temperature below 1 and a KL weight above 1: every
     * path of the discrete part is exercised */
    dt_vae_opts o = {.seed = 3, .N = 2, .K = 3, .tau0 = 0.7f, .tau_min = 0.5f, .anneal_rate = 3e-4f,
                     .anneal_every = 100, .kl_start = 3.0f, .kl_warmup = 1000};
    enum { B = 3 };
    dt_vae *m = dt_vae_create(KINDS[_i], &o, B);
    dt_vae_init_params(m, 3);
    fill(m->x, B * DT_IMG, 31, 0, 1);
    uint64_t gidx[B] = {10, 11, 12};
    dt_params_zero_grad(&m->p);
    vae_loss(m, B, gidx);
    dt_vae_backward(m, B, 1.0f, NULL);
    /* per-view directional checks so a wrong layer cannot hide behind others */
    float *w0 = dt_alloc_floats(m->p.n), *d = dt_alloc_floats(m->p.n);
    memcpy(w0, m->p.w, m->p.n * sizeof(float));
    for (int v = 0; v < m->p.nviews; v++) {
        const dt_view *vw = &m->p.views[v];
        memset(d, 0, m->p.n * sizeof(float));
        fill(d + vw->off, vw->n, 40 + v, -1, 1);
        /* a unit direction, step large enough to stand above float rounding of L */
        double nd = sqrt(dot(d, d, m->p.n));
        for (size_t i = 0; i < m->p.n; i++) d[i] = (float)(d[i] / nd);
        double gd = dot(m->p.g, d, m->p.n);
        double h = 1e-2;
        double L[2];
        for (int s = 0; s < 2; s++) {
            for (size_t i = 0; i < m->p.n; i++) m->p.w[i] = w0[i] + (float)((s ? -h : h) * d[i]);
            L[s] = vae_loss(m, B, gidx);
        }
        memcpy(m->p.w, w0, m->p.n * sizeof(float));
        double fd = (L[0] - L[1]) / (2 * h);
        if (getenv("DT_TEST_VERBOSE")) printf("%-16s fd %.6g analytic %.6g\n", vw->name, fd, gd);
        ck_assert_msg(fabs(fd - gd) <= 2e-2 * fabs(gd) + 1e-2, "%s view %s: fd %g vs analytic %g",
                      KINDS[_i]->name, vw->name, fd, gd);
    }
    dt_free(w0);
    dt_free(d);
    dt_vae_free(m);
}
END_TEST

START_TEST(gumbel_softmax_and_cat_kl_gradients)
{
    enum { B = 2, N = 2, K = 4, R = B * N, W = R * K };
    float l[W], g[W], u[W], r[W], y[W], q[W], dl[W];
    fill(l, W, 61, -2, 2);
    fill(u, W, 62, 0, 1);
    fill(r, W, 63, -1, 1);
    dt_gumbel_noise(g, u, W);
    const float tau = 0.6f, w = 1.7f;
    /* L = sum(r * gumbel_softmax(l)) + w * KL(softmax(l)) */
    dt_gumbel_softmax_forward(y, l, g, R, K, tau);
    for (int i = 0; i < R; i++) {
        double s = 0;
        for (int k = 0; k < K; k++) s += y[i * K + k];
        ck_assert_double_eq_tol(s, 1.0, 1e-6);
    }
    dt_gumbel_softmax_backward(dl, r, y, R, K, tau);
    double per[B];
    double kl = dt_cat_kl_forward(per, q, l, B, N, K);
    ck_assert(per[0] + per[1] == kl);
    dt_cat_kl_backward(dl, q, R, K, w);
    const float h = 1e-3f;
    for (int i = 0; i < W; i++) {
        double L[2];
        for (int s = 0; s < 2; s++) {
            float keep = l[i];
            l[i] = keep + (s ? -h : h);
            dt_gumbel_softmax_forward(y, l, g, R, K, tau);
            L[s] = dot(y, r, W) + w * dt_cat_kl_forward(NULL, q, l, B, N, K);
            l[i] = keep;
        }
        ck_assert_double_eq_tol((L[0] - L[1]) / (2 * h), dl[i], 2e-3);
    }
    /* KL is 0 for uniform q and log K for a one-hot q */
    float flat[K] = {0.3f, 0.3f, 0.3f, 0.3f}, sharp[K] = {60, 0, 0, 0};
    ck_assert_double_eq_tol(dt_cat_kl_forward(NULL, q, flat, 1, 1, K), 0.0, 1e-6);
    ck_assert_double_eq_tol(dt_cat_kl_forward(NULL, q, sharp, 1, 1, K), log(4.0), 1e-5);
    /* straight-through forward: a one-hot at the argmax */
    float yy[K] = {0.1f, 0.6f, 0.2f, 0.1f}, z[K];
    dt_onehot_argmax(z, yy, 1, K);
    ck_assert(z[0] == 0 && z[1] == 1 && z[2] == 0 && z[3] == 0);
}
END_TEST

/* The straight-through estimator: forward a one-hot at the soft sample's
 * argmax, backward exactly the soft sample's gradient (plus the KL's). */
START_TEST(straight_through_gradient_is_the_soft_one)
{
    dt_vae_opts o = {.seed = 4, .N = 2, .K = 5, .tau0 = 0.8f, .tau_min = 0.5f, .anneal_rate = 3e-4f,
                     .anneal_every = 100, .kl_start = 1.0f};
    enum { B = 3, W = 10 };
    float dl[2][B * W], zz[2][B * W];
    uint64_t g[B] = {7, 8, 9};
    for (int hard = 0; hard < 2; hard++) {
        o.hard = hard;
        dt_vae *m = dt_vae_create(&dt_vae_discrete, &o, B);
        fill(m->hd, B * W, 71, -2, 2);
        fill(m->dz, B * W, 72, -1, 1);
        dt_cat_part *c = &m->part[0].cat;
        dt_cat_part_forward(c, m, B, g, 3, 0, NULL);
        memcpy(zz[hard], m->z, sizeof zz[hard]);
        dt_cat_part_backward(c, m, B, 0.5f);
        memcpy(dl[hard], m->dhd, sizeof dl[hard]);
        dt_vae_free(m);
    }
    for (int i = 0; i < B * 2; i++) {
        int best = 0;
        for (int k = 0; k < 5; k++) {
            ck_assert(zz[1][i * 5 + k] == 0.0f || zz[1][i * 5 + k] == 1.0f);
            if (zz[0][i * 5 + k] > zz[0][i * 5 + best]) best = k;
        }
        ck_assert(zz[1][i * 5 + best] == 1.0f); /* the one-hot sits at the soft sample's argmax */
    }
    for (int i = 0; i < B * W; i++) ck_assert_float_eq(dl[0][i], dl[1][i]);
}
END_TEST

START_TEST(schedules_at_chosen_steps)
{
    dt_vae_opts o = {.tau0 = 1.0f, .tau_min = 0.5f, .anneal_rate = 3e-4f, .anneal_every = 100,
                     .kl_start = 20.0f, .kl_warmup = 1000};
    ck_assert_float_eq(dt_gumbel_tau(&o, 0), 1.0f);
    ck_assert_float_eq(dt_gumbel_tau(&o, 99), 1.0f);               /* held until the next 100 */
    ck_assert_float_eq_tol(dt_gumbel_tau(&o, 100), expf(-0.03f), 1e-6f);
    ck_assert_float_eq_tol(dt_gumbel_tau(&o, 1234), expf(-3e-4f * 1200), 1e-6f);
    ck_assert_float_eq(dt_gumbel_tau(&o, 5000), 0.5f);             /* exp(-1.5) < 0.5: floor */
    ck_assert_float_eq(dt_kl_weight(&o, 0), 20.0f);
    ck_assert_float_eq_tol(dt_kl_weight(&o, 500), 10.5f, 1e-5f);
    ck_assert_float_eq(dt_kl_weight(&o, 1000), 1.0f);
    ck_assert_float_eq(dt_kl_weight(&o, 99999), 1.0f);
    o.kl_warmup = 0;
    ck_assert_float_eq(dt_kl_weight(&o, 0), 1.0f);
}
END_TEST

START_TEST(vae_eval_noise_is_fixed)
{
    dt_vae_opts o = {.seed = 9};
    dt_vae *m = dt_vae_create(&dt_vae_continuous, &o, 2);
    dt_vae_init_params(m, 9);
    fill(m->x, 2 * DT_IMG, 51, 0, 1);
    uint64_t g[2] = {0, 1};
    double a[DT_MAX_TERMS] = {0}, b[DT_MAX_TERMS] = {0}, c[DT_MAX_TERMS] = {0};
    dt_vae_forward(m, 2, g, 1, 1, a);
    dt_vae_forward(m, 2, g, 2, 1, b);
    dt_vae_forward(m, 2, g, 2, 0, c);
    ck_assert(a[0] == b[0] && a[1] == b[1]);
    ck_assert(c[0] != b[0]);
    dt_vae_free(m);
}
END_TEST

/* The latent grid's codes have the model's width: z1, z2 where the grid puts
 * them, a jvae's categorical part one-hot at each variable's most frequent
 * category, nothing else. */
START_TEST(plane_codes_have_the_model_layout)
{
    enum { G = 3, NIMG = 5 };
    dt_vae_opts o = {.seed = 3, .N = 2, .K = 3, .tau0 = 1, .tau_min = 0.5f, .anneal_every = 100, .kl_start = 1};
    /* variable 0 mostly category 2, variable 1 mostly category 1 */
    const uint8_t codes[NIMG * 2] = {2, 1, 2, 0, 0, 1, 2, 1, 1, 2};
    const uint8_t digits[NIMG] = {0, 1, 2, 3, 4}, colors[NIMG] = {5, 6, 7, 8, 9};
    dt_cat_analysis a;
    dt_cat_analyze(&a, codes, digits, colors, NIMG, 2, 3);
    const float lo[2] = {-1, -4}, hi[2] = {3, 2};
    for (int k = 0; k < 2; k++) {
        dt_vae *m = dt_vae_create(k ? &dt_vae_joint : &dt_vae_continuous, &o, 4);
        ck_assert_int_eq(m->Z, k ? 2 + 2 * 3 : 2);
        float *z = dt_alloc_floats((size_t)G * G * m->Z + 1);
        z[G * G * m->Z] = 42.0f; /* one past the end: untouched */
        dt_vae_plane_codes(z, m, k ? &a : NULL, lo, hi, G);
        for (int r = 0; r < G; r++)
            for (int c = 0; c < G; c++) {
                const float *zi = z + (size_t)(r * G + c) * m->Z;
                ck_assert_float_eq_tol(zi[0], -1.0f + 2.0f * c, 1e-6f);
                ck_assert_float_eq_tol(zi[1], 2.0f - 3.0f * r, 1e-6f);
                if (k)
                    for (int j = 0; j < 6; j++) ck_assert_float_eq(zi[2 + j], j == 2 || j == 3 + 1 ? 1.0f : 0.0f);
            }
        ck_assert_float_eq(z[G * G * m->Z], 42.0f);
        dt_free(z);
        dt_vae_free(m);
    }
    dt_cat_analysis_free(&a);
}
END_TEST

/* Labels or categories out of range are a fault upstream, never an index. */
static const uint8_t ok_codes[2] = {0, 1}, ok_labels[2] = {3, 4}, bad_labels[2] = {3, 10}, bad_codes[2] = {0, 3};
START_TEST(cat_analyze_refuses_a_digit_of_10)
{
    dt_cat_analysis a;
    dt_cat_analyze(&a, ok_codes, bad_labels, ok_labels, 2, 1, 3);
}
END_TEST

START_TEST(cat_analyze_refuses_a_color_of_10)
{
    dt_cat_analysis a;
    dt_cat_analyze(&a, ok_codes, ok_labels, bad_labels, 2, 1, 3);
}
END_TEST

START_TEST(cat_analyze_refuses_a_category_of_K)
{
    dt_cat_analysis a;
    dt_cat_analyze(&a, bad_codes, ok_labels, ok_labels, 2, 1, 3);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nn");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, philox_known_answer);
    tcase_add_test(tc, rng_streams_depend_only_on_key);
    tcase_add_test(tc, rng_moments);
    tcase_add_test(tc, permutation_is_permutation);
    tcase_add_test(tc, linear_blas_matches_naive);
    tcase_add_test(tc, gemm_nn_paths_agree_bitwise);
    tcase_add_test(tc, xsum_order_free);
    tcase_add_test(tc, linear_finite_differences);
    tcase_add_test(tc, linear_backward_write_overwrites);
    tcase_add_test(tc, adam_in_parts_equals_adam_step);
    tcase_add_test(tc, linear_grad_blocks_sum_like_blocks);
    tcase_add_test(tc, relu_and_sigmoid);
    tcase_add_test(tc, bce_values_and_gradient);
    tcase_add_test(tc, bce_label_and_l1);
    tcase_add_test(tc, kl_and_reparam_gradients);
    tcase_add_test(tc, adam_hand_computed);
    tcase_add_loop_test(tc, vae_gradient_directional, 0, 3);
    tcase_add_test(tc, gumbel_softmax_and_cat_kl_gradients);
    tcase_add_test(tc, schedules_at_chosen_steps);
    tcase_add_test(tc, straight_through_gradient_is_the_soft_one);
    tcase_add_test(tc, vae_eval_noise_is_fixed);
    tcase_add_test(tc, plane_codes_have_the_model_layout);
    tcase_add_exit_test(tc, cat_analyze_refuses_a_digit_of_10, DT_EXIT_INTERNAL);
    tcase_add_exit_test(tc, cat_analyze_refuses_a_color_of_10, DT_EXIT_INTERNAL);
    tcase_add_exit_test(tc, cat_analyze_refuses_a_category_of_K, DT_EXIT_INTERNAL);
    tcase_add_exit_test(tc, sgemm_leading_dimension_too_small, DT_EXIT_INTERNAL);
    tcase_add_exit_test(tc, sgemm_empty_size, DT_EXIT_INTERNAL);
    tcase_add_exit_test(tc, sgemm_output_overlaps_input, DT_EXIT_INTERNAL);
    if (DT_ASAN)
        tcase_add_exit_test(tc, linear_short_input_caught, DT_EXIT_INTERNAL);
    else
        printf("test_nn: linear_short_input_caught skipped: needs an AddressSanitizer build (make SANITIZE=1)\n");
    suite_add_tcase(s, tc);
    int failed = dt_check_run(s);
    return failed ? 1 : 0;
}
