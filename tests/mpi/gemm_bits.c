/* gemm_bits: the product kernels and the convolutions built on them, run on
 * small ragged shapes, then a 64-bit FNV-1a hash of every output. The same
 * hash on every x86-64 CPU is what "the same bits whatever the vector width"
 * means for dtrain's products: t_dist.sh compares this machine's hash (its
 * fastest path, e.g. AVX-512) with the ones CPUs without AVX-512 or without
 * AVX2 and FMA give (qemu-x86_64 -cpu Haswell, -cpu Nehalem), when qemu is at
 * hand. The path taken is printed after the hash. */
#include <stdint.h>
#include <stdio.h>

#include "dtrain/conv.h"
#include "dtrain/core.h"
#include "dtrain/nn.h"

static uint64_t hash(uint64_t h, const float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        union {
            float f;
            uint32_t u;
        } c = {x[i]};
        h = (h ^ c.u) * 1099511628211ull;
    }
    return h;
}

static float *drawn(size_t n, uint64_t key)
{
    float *x = dt_alloc_floats(n);
    dt_rand_uniform(x, n, (dt_stream){11, DT_RNG_SAMPLE, key, 0});
    for (size_t i = 0; i < n; i++) x[i] -= 0.5f;
    return x;
}

int main(void)
{
    uint64_t h = 1469598103934665603ull;
    /* products: M, N, K with row, column and k tails */
    static const int P[][3] = {{7, 37, 29}, {13, 70, 40}, {6, 33, 197}, {3, 5, 1}};
    for (size_t s = 0; s < sizeof P / sizeof *P; s++) {
        int M = P[s][0], N = P[s][1], K = P[s][2];
        float *A = drawn((size_t)M * K, 10 * s + 1), *B = drawn((size_t)K * N, 10 * s + 2);
        float *C = drawn((size_t)M * N, 10 * s + 3);
        dt_gemm_nn(C, N, A, K, B, N, M, N, K, 1);
        h = hash(h, C, (size_t)M * N);
        dt_gemm_nt(C, N, A, K, B, K, M, N, K, s % 2); /* B read as (N,K) */
        h = hash(h, C, (size_t)M * N);
        dt_free(A), dt_free(B), dt_free(C);
    }
    /* the CycleGAN's kinds of convolution, forward and backward: im2col 3x3,
     * Winograd (both plane sizes), 1x1 */
    static const int L[][5] = {{2, 3, 32, 12, 3}, {2, 32, 40, 12, 3}, {1, 32, 64, 6, 3}, {2, 40, 3, 8, 1}};
    for (size_t l = 0; l < sizeof L / sizeof *L; l++) {
        int B = L[l][0], C = L[l][1], O = L[l][2], H = L[l][3], k = L[l][4];
        size_t nx = (size_t)B * C * H * H, ny = (size_t)B * O * H * H, nw = (size_t)O * C * k * k;
        float *x = drawn(nx, 100 + l), *W = drawn(nw, 110 + l), *b = drawn((size_t)O, 120 + l);
        float *dy = drawn(ny, 130 + l), *y = dt_alloc_floats(ny), *dx = dt_alloc_floats(nx);
        float *dW = dt_alloc_floats(nw), *db = dt_alloc_floats((size_t)O);
        float *cols = dt_alloc_floats(dt_conv2d_cols_size(B, C, O, H, H, k) + 1);
        dt_conv2d_forward_relu(y, cols, x, W, b, B, C, H, H, O, k, k == 3);
        dt_conv2d_backward_relu(dx, dW, db, cols, dy, x, W, B, C, H, H, O, k, k == 3);
        h = hash(hash(hash(hash(h, y, ny), dx, nx), dW, nw), db, (size_t)O);
        float *all[] = {x, W, b, dy, y, dx, dW, db, cols};
        for (size_t i = 0; i < sizeof all / sizeof *all; i++) dt_free(all[i]);
    }
    printf("%016llx %s\n", (unsigned long long)h, dt_gemm_isa());
    return 0;
}
